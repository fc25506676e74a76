"""``harness serve``: real HTTP requests against a server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
import uvicorn
from PIL import Image

from harness.inference import Upscaler, to_uint8
from harness.plugins import get_registry
from harness.serve import create_app, parse_size

MAX_BYTES = 200_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def generator() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(21)
    return get_registry().factory("generator", "srresnet")(scale=4, blocks=1, filters=8)


@pytest.fixture(scope="module")
def upscaler(generator) -> Upscaler:
    return Upscaler.from_generator(generator, tile=12)


@pytest.fixture(scope="module")
def server(upscaler):
    """uvicorn in a thread, serving the tiny generator as "srgan"."""
    port = free_port()
    app = create_app(upscaler, name="srgan", max_bytes=MAX_BYTES, max_pixels=64 * 64)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client
    srv.should_exit = True
    thread.join(10)


def lr_batch(n: int = 2, h: int = 10, w: int = 14, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, h, w, 3)).astype(np.float32)


def reference(generator, lr: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(generator(lr, training=False)) + 1) / 2, 0, 1)


def test_status_and_health(server) -> None:
    assert server.get("/health").json() == {"status": "ok", "model": "srgan", "scale": 4}
    status = server.get("/v1/models/srgan").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    meta = server.get("/v1/models/srgan/metadata").json()
    assert "lr" in meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    missing = server.get("/v1/models/other")
    assert missing.status_code == 404 and "srgan" in missing.json()["error"]


def test_tf_serving_predict(server, generator) -> None:
    lr = lr_batch()
    response = server.post("/v1/models/srgan:predict", json={"instances": lr.tolist()})
    assert response.status_code == 200, response.text
    predictions = np.asarray(response.json()["predictions"], np.float32)
    assert predictions.shape == (2, 40, 56, 3)
    np.testing.assert_allclose(predictions, reference(generator, lr), atol=1e-5)
    # Named instances, the versioned route, and the columnar format.
    named = [{"lr": image} for image in lr.tolist()]
    response = server.post("/v1/models/srgan/versions/1:predict", json={"instances": named})
    np.testing.assert_allclose(response.json()["predictions"], predictions, atol=1e-6)
    response = server.post("/v1/models/srgan:predict", json={"inputs": lr.tolist()})
    np.testing.assert_allclose(response.json()["outputs"], predictions, atol=1e-6)


def test_tiled_request_matches_whole(server, generator) -> None:
    lr = lr_batch(1, 30, 26, seed=3)  # larger than the 12-pixel tiles
    response = server.post("/invocations", json={"inputs": lr.tolist()})
    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["predictions"])
    assert np.abs(got - reference(generator, lr)).max() * 255 < 1


def test_png_routes(server, generator) -> None:
    image = (lr_batch(1, 12, 16, seed=5)[0] * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    png = buffer.getvalue()
    want = to_uint8(reference(generator, image[None].astype(np.float32) / 255)[0])
    for kwargs in (
        {"files": {"image": ("in.png", png, "image/png")}},
        {"json": {"image": base64.b64encode(png).decode()}},
        {"content": png, "headers": {"content-type": "image/png"}},
    ):
        response = server.post("/upscale", **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        got = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("route", "body", "status", "words"),
    [
        ("/v1/models/srgan:predict", {"instances": [[[0.5, 0.5, 0.5]]]}, 400, "4-D tensor"),
        (
            "/v1/models/srgan:predict",
            {"instances": np.zeros((1, 4, 4, 4)).tolist()},
            400,
            "3 channels",
        ),
        ("/v1/models/srgan:predict", {"instances": [[[["a", 0, 0]]]]}, 400, "non-numeric"),
        (
            "/v1/models/srgan:predict",
            {"instances": [[[[0.1, 0.1, 0.1]]], [[[0.1, 0.1]]]]},
            400,
            "ragged",
        ),
        (
            "/v1/models/srgan:predict",
            {"instances": np.full((1, 4, 4, 3), 2.0).tolist()},
            400,
            "[0, 1]",
        ),
        (
            "/v1/models/srgan:predict",
            {"instances": np.full((1, 4, 4, 3), 255).tolist()},
            400,
            "255",
        ),
        ("/v1/models/srgan:predict", {"examples": []}, 400, '"instances"'),
        ("/v1/models/srgan:classify", {"instances": []}, 400, "predict"),
        ("/v1/models/nope:predict", {"instances": []}, 404, "srgan"),
        ("/invocations", {"dataframe_split": {}}, 400, '"inputs"'),
        ("/invocations", {"inputs": np.zeros((1, 70, 70, 3)).tolist()}, 413, "limit"),
        ("/upscale", {"image": base64.b64encode(b"not an image").decode()}, 400, "decoded"),
        ("/upscale", {"image": "%%%"}, 400, "base64"),
    ],
)
def test_bad_requests_get_clear_4xx(server, route, body, status, words) -> None:
    response = server.post(route, json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_malformed_and_oversized_bodies_then_still_serving(server) -> None:
    response = server.post(
        "/invocations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    big = b"[" + b"0.5," * (MAX_BYTES // 4) + b"0.5]"
    response = server.post(
        "/invocations", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert str(MAX_BYTES) in response.json()["error"]

    # A chunked upload (no Content-Length) is counted as it arrives.
    def chunks():
        for _ in range(MAX_BYTES // 10_000 + 2):
            yield b" " * 10_000

    response = server.post("/upscale", content=chunks(), headers={"content-type": "image/png"})
    assert response.status_code == 413
    lr = lr_batch(1, 4, 4)
    response = server.post("/v1/models/srgan:predict", json={"instances": lr.tolist()})
    assert response.status_code == 200
    assert server.get("/health").status_code == 200


def test_parse_size() -> None:
    assert parse_size("16MB") == 16 << 20
    assert parse_size("512k") == 512 << 10
    assert parse_size("1000") == 1000
    with pytest.raises(Exception, match="not a size"):
        parse_size("lots")


@pytest.mark.slow
def test_harness_serve_subprocess(tmp_path, generator) -> None:
    """The real console command, started as users start it, answering TF Serving requests."""
    model = tmp_path / "generator.keras"
    generator.save(model)
    port = free_port()
    harness = Path(sys.executable).with_name("harness")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [str(harness), "serve", str(model), "--port", str(port), "--name", "sr"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                output = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"harness serve did not come up: {output[-2000:]}")
            time.sleep(0.5)
        lr = lr_batch(1, 6, 6)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/models/sr:predict",
            json={"instances": lr.tolist()},
            timeout=60,
        )
        assert response.status_code == 200
        np.testing.assert_allclose(
            response.json()["predictions"], reference(generator, lr), atol=1e-5
        )
    finally:
        proc.terminate()
        proc.wait(20)
