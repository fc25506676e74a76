"""``harness serve``: real HTTP requests against a server on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
import uvicorn
from PIL import Image

from harness.data.images import to_uint8
from harness.deploy.models import load_upscaler
from harness.deploy.serve import create_app, parse_size
from harness.deploy.upscaler import Upscaler

MAX_BYTES = 200_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def generator(registry) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(21)
    return registry.factory("generator", "srresnet")(scale=4, blocks=1, filters=8)


@pytest.fixture(scope="module")
def upscaler(generator) -> Upscaler:
    return Upscaler.from_generator(generator, tile=12)


@contextlib.contextmanager
def serving(app) -> Iterator[httpx.Client]:
    """``app`` on uvicorn in a thread; a client for it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(upscaler):
    """uvicorn in a thread, serving the tiny generator as "srgan"."""
    app = create_app(upscaler, name="srgan", max_bytes=MAX_BYTES, max_pixels=64 * 64)
    with serving(app) as client:
        yield client


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


def test_openapi_schema_docs_and_ping(server) -> None:
    schema = server.get("/openapi.json")
    assert schema.status_code == 200, schema.text
    paths = schema.json()["paths"]
    for route in ("/invocations", "/upscale", "/ping", "/health", "/version", "/v1/models/{model}"):
        assert route in paths, sorted(paths)
    ping = server.get("/ping")
    assert ping.status_code == 200


def test_the_openapi_document_describes_the_api_as_it_answers(server) -> None:
    schema = server.get("/openapi.json").json()
    paths = schema["paths"]
    predict = paths["/v1/models/{target}"]["post"]
    body = predict["requestBody"]["content"]["application/json"]
    assert "instances" in body["schema"]["properties"] and body["example"]["instances"]
    invocations = paths["/invocations"]["post"]["requestBody"]["content"]["application/json"]
    assert "inputs" in invocations["schema"]["properties"]
    upload = paths["/upscale"]["post"]["requestBody"]["content"]
    image = upload["multipart/form-data"]["schema"]["properties"]["image"]
    assert image == {"type": "string", "format": "binary"} and "image/png" in upload
    assert list(paths["/upscale"]["post"]["responses"]["200"]["content"]) == ["image/png"]
    for route in ("/v1/models/{target}", "/invocations", "/upscale"):
        answers = paths[route]["post"]["responses"]
        assert "422" not in answers
        error = answers["400"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    assert "422" not in str(schema) and "HTTPValidationError" not in str(schema)
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    for route in ("/v1/models/{model}", "/v1/models/{model}/metadata"):  # an unknown name
        error = paths[route]["get"]["responses"]["404"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/Error"}
    # the description is for users: what to send, not the module's docstring
    description = schema["info"]["description"]
    assert "[0, 1]" in description and "``" not in description and ":mod:" not in description
    # the 400 the document promises is what a bad request gets
    bad = server.post("/v1/models/srgan:predict", json={"instances": [[[[2.0, 0, 0]]]]})
    assert bad.status_code == 400 and list(bad.json()) == ["error"]


def test_every_operation_answers_its_documented_example(server) -> None:
    """What Swagger UI's "Try it out" sends when nothing is edited: each path parameter's
    example and the JSON body's example (tests/test_swagger_browser.py clicks it in a browser)."""
    document = server.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, spec in operations.items():
            url = path
            for parameter in spec.get("parameters", []):
                examples = list(parameter.get("examples", {}).values())
                assert examples, f"{method} {path}: {parameter['name']} has no example"
                url = url.replace(f"{{{parameter['name']}}}", examples[0]["value"])
            body = None
            if "requestBody" in spec:
                body = spec["requestBody"]["content"]["application/json"]["example"]
            response = server.request(method, url, json=body)
            assert response.status_code == 200, (method, url, response.text)
            expected = list(spec["responses"]["200"]["content"])
            assert response.headers["content-type"].split(";")[0] in expected


def test_swagger_ui_is_served_without_internet(server) -> None:
    docs = server.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", docs.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is fetched from elsewhere"
        assert server.get(asset).status_code == 200, asset


def test_version_names_the_harness_and_the_model(server) -> None:
    from harness import __version__

    version = server.get("/version").json()
    assert version["harness"] == __version__ and version["model"] == "srgan"
    assert version["scale"] == 4 and "reference" in version


def test_each_request_is_logged_in_one_line(upscaler) -> None:
    lines: list[str] = []
    app = create_app(upscaler, max_bytes=MAX_BYTES, reference="runs/x", access_log=lines.append)
    with serving(app) as client:
        assert client.get("/version").json()["reference"] == "runs/x"
        client.post("/v1/models/srgan:predict", json={"instances": lr_batch(1, 4, 4).tolist()})
        client.post("/invocations", content=b"{")
    pattern = r'127\.0\.0\.1 "(GET|POST) (/\S*)" (\d{3}) \d+\.\d ms'
    got = [re.fullmatch(pattern, line).groups() for line in lines]
    assert got == [
        ("GET", "/version", "200"),
        ("POST", "/v1/models/srgan:predict", "200"),
        ("POST", "/invocations", "400"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"files": {"image": ("in.png", b"\x89PNG garbage \x00\xff" * 8, "image/png")}},
        {"json": {"image": base64.b64encode(b"\x00\xffgarbage" * 8).decode()}},
        {"content": b"GIF89a garbage" * 8, "headers": {"content-type": "image/png"}},
        {"content": b"\xff\xd8\xff truncated", "headers": {"content-type": "image/jpeg"}},
        {"content": b"\x00" * 64, "headers": {"content-type": "application/octet-stream"}},
    ],
)
def test_garbage_uploads_get_a_400_without_python_reprs(server, kwargs) -> None:
    response = server.post("/upscale", **kwargs)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "could not be decoded" in error and "PNG or JPEG" in error
    for leak in ("0x", "<_io", "object at", "BytesIO"):
        assert leak not in error, error


def test_a_model_of_either_training_policy_is_served_in_float32(trained, registry) -> None:
    upscaler = load_upscaler(trained.path, registry=registry, tile=12)
    lr = lr_batch(1, 9, 15, seed=3)
    with serving(create_app(upscaler, max_bytes=MAX_BYTES)) as client:
        response = client.post("/v1/models/srgan:predict", json={"instances": lr.tolist()})
    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["predictions"], np.float32)
    np.testing.assert_allclose(got, reference(trained.float32, lr), atol=1e-5)


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


class _Counting:
    """An upscaler that counts its calls (to show a refused request never reaches the model)."""

    def __init__(self, upscaler: Upscaler) -> None:
        self.upscaler, self.scale, self.calls = upscaler, upscaler.scale, 0

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.upscaler(lr)


def _client(upscaler, **limits):
    return serving(create_app(upscaler, name="srgan", **limits))


def test_work_is_bounded_by_output_pixels_before_the_model_runs(upscaler) -> None:
    counting = _Counting(upscaler)
    lr = lr_batch(2, 10, 14)  # 280 LR pixels -> 2 x 40 x 56 = 4480 SR pixels
    with _client(counting, max_pixels=64 * 64, max_output_pixels=4479) as client:
        for route in ("/v1/models/srgan:predict", "/invocations"):
            response = client.post(route, json={"instances": lr.tolist()})
            assert response.status_code == 413, response.text
            error = response.json()["error"]
            assert "4480 output pixels" in error and "limit of 4479" in error
            assert "--max-output-pixels" in error
        png = io.BytesIO()
        Image.fromarray(np.zeros((12, 24, 3), np.uint8)).save(png, format="PNG")  # 48x96 out
        response = client.post(
            "/upscale", content=png.getvalue(), headers={"content-type": "image/png"}
        )
        assert response.status_code == 413 and "4608 output pixels" in response.json()["error"]
        assert counting.calls == 0
    with _client(counting, max_output_pixels=4480) as client:
        response = client.post("/invocations", json={"inputs": lr.tolist()})
        assert response.status_code == 200 and counting.calls == 1


def test_json_responses_are_compact_and_exact(upscaler) -> None:
    lr = lr_batch(1, 10, 14, seed=7)
    want = upscaler(lr)
    with _client(upscaler) as client:
        for route, key in (
            ("/invocations", "predictions"),
            ("/v1/models/srgan:predict", "outputs"),
        ):
            response = client.post(route, json={"inputs": lr.tolist()})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/json"
            got = np.asarray(response.json()[key], np.float32)
            np.testing.assert_array_equal(got, want)  # float32 round-trips exactly
            # json.dumps(sr.tolist()) spends about 62 bytes per output pixel
            assert len(response.content) <= 40 * want.size // 3, len(response.content)


def test_parsing_upscaling_and_encoding_run_one_request_at_a_time(upscaler, monkeypatch) -> None:
    import harness.deploy.routes

    active, seen = [0], []

    def exclusive(fn):
        def wrapped(*args):
            active[0] += 1
            seen.append(active[0])
            time.sleep(0.02)
            try:
                return fn(*args)
            finally:
                active[0] -= 1

        return wrapped

    for name in ("parse_json", "tensor_json"):
        monkeypatch.setattr(
            harness.deploy.routes, name, exclusive(getattr(harness.deploy.routes, name))
        )
    model = _Counting(upscaler)
    model.upscaler = exclusive(upscaler)
    body = {"instances": lr_batch(1, 4, 4).tolist()}
    codes: list[int] = []
    with _client(model) as client:

        def post() -> None:
            codes.append(client.post("/v1/models/srgan:predict", json=body).status_code)

        threads = [threading.Thread(target=post) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert codes == [200] * 4
    assert len(seen) == 12 and max(seen) == 1, seen  # never two at once


@pytest.mark.parametrize("route", ["/v1/models/srgan:predict", "/invocations", "/upscale"])
def test_deeply_nested_json_is_a_400(upscaler, route) -> None:
    deep = b'{"instances": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with _client(upscaler) as client:
        response = client.post(route, content=deep, headers={"content-type": "application/json"})
        assert response.status_code == 400, response.text
        assert "nested too deeply" in response.json()["error"]
        nested = {"inputs": [[[[[[[[[0.5]]]]]]]]]}  # within the parser's depth, not a tensor
        response = client.post("/invocations", json=nested)
        assert response.status_code == 400 and "4-D tensor" in response.json()["error"]


def test_an_upload_over_the_pixel_limit_is_refused_unread(upscaler, bomb_png, no_big_decodes):
    bomb = bomb_png.read_bytes()
    with _client(upscaler, max_pixels=10**9, max_output_pixels=10**12) as client:
        for kwargs in (
            {"content": bomb, "headers": {"content-type": "image/png"}},
            {"json": {"image": base64.b64encode(bomb).decode()}},
            {"files": {"image": ("bomb.png", bomb, "image/png")}},
        ):
            response = client.post("/upscale", **kwargs)
            assert response.status_code == 413, response.text
            error = response.json()["error"]
            assert "20000x20000 = 400000000 pixels" in error and "HARNESS_MAX_IMAGE_PIXELS" in error
    with _client(upscaler) as client:  # the default LR limit answers first
        response = client.post("/upscale", content=bomb, headers={"content-type": "image/png"})
        assert response.status_code == 413 and "--max-pixels" in response.json()["error"]


def half_level_upscaler() -> Upscaler:
    """An x2 "model" whose every output value lies half-way between two 8-bit levels
    ((k + 0.5) / 255 for k = 0..255, and 0.5 = 127.5 / 255 exactly)."""

    def fn(lr: np.ndarray) -> np.ndarray:
        n, h, w, _ = np.shape(lr)
        levels = (np.arange(n * 2 * h * 2 * w * 3) % 256 + 0.5) / 255.0
        sr = levels.astype(np.float32).reshape(n, 2 * h, 2 * w, 3)
        sr[:, 0, 0] = 0.5
        return sr

    return Upscaler(fn, 2)


def test_served_png_rounds_as_evaluation_does() -> None:
    upscaler = half_level_upscaler()
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="PNG")
    with _client(upscaler) as client:
        response = client.post(
            "/upscale", content=buffer.getvalue(), headers={"content-type": "image/png"}
        )
    assert response.status_code == 200, response.text
    got = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    scored = to_uint8(upscaler(np.zeros((1, 8, 8, 3), np.float32))[0])
    np.testing.assert_array_equal(got, scored)  # what is served is what evaluation scores
    assert got[0, 0].tolist() == [128, 128, 128]  # 127.5 rounds half up, not to even


def test_a_busy_port_or_a_bad_host_is_one_error_line_before_serving(tmp_path) -> None:
    from click.testing import CliRunner

    from harness.cli import cli

    model = tmp_path / "generator.keras"
    model.write_bytes(b"never loaded")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", str(model), "--port", str(port)])
    assert result.exit_code != 0
    assert result.output.splitlines() == [result.output.strip()]  # one line
    assert result.output.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "another --port" in result.output and "serving" not in result.output
    result = CliRunner().invoke(cli, ["serve", str(model), "--host", "no.such.host.invalid"])
    assert result.exit_code != 0 and "serving" not in result.output
    assert result.output.startswith("error: --host no.such.host.invalid is not an address")


def test_answers_held_for_slow_readers_are_bounded(upscaler) -> None:
    """A client that does not read its 8 MB answer holds it; while it does, a new answer that
    would go over --max-held-bytes gets 503; once the slow client leaves, answers flow again."""
    app = create_app(upscaler, max_bytes=4 << 20, max_pixels=1 << 20, max_held_bytes=1 << 20)
    with serving(app) as client:
        port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
        body = f'{{"instances": {lr_batch(1, 96, 96).tolist()}}}'.encode()
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", port))
        slow.sendall(
            b"POST /v1/models/srgan:predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        small = {"instances": lr_batch(1, 4, 4).tolist()}
        deadline = time.time() + 30
        while (answer := client.post("/v1/models/srgan:predict", json=small)).status_code == 200:
            assert time.time() < deadline, "the slow reader's answer was never held"
            time.sleep(0.1)  # the slow request may not have been answered yet
        assert answer.status_code == 503, answer.text
        assert "have not read yet" in answer.json()["error"]
        slow.close()
        deadline = time.time() + 30
        while (answer := client.post("/v1/models/srgan:predict", json=small)).status_code != 200:
            assert answer.status_code == 503 and time.time() < deadline, answer.text
            time.sleep(0.1)
