"""Scales 2 and 3 end to end: a tiny run trains, and what it produces upscales by exactly its
scale through ``harness upscale``, the kept and MLflow models, the exported SavedModel,
``harness serve``'s app and ``harness evaluate`` (which reads the scale from the model)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import new_store
from mlflow.tracking import MlflowClient
from PIL import Image

from harness.cli import cli
from harness.data.folders import SKIMAGE, resolve
from harness.data.images import read_image, to_uint8
from harness.measures.bicubic import bicubic_upscaler

ROOT = Path(__file__).resolve().parents[1]
PATCH = {2: 24, 3: 36}  # HR crops of 12 LR pixels at either scale


def _photos(folder: Path, count: int, side: int, seed: int) -> Path:
    """``count`` small crops of scikit-image's bundled photographs as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = resolve(SKIMAGE)
    for i, f in enumerate(files[seed : seed + count]):
        image = read_image(f)
        Image.fromarray(image[100 : 100 + side, 120 : 120 + side]).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "train": _photos(root / "train", 2, 72, 0),
        "val": _photos(root / "val", 1, 36, 2),
        "eval": _photos(root / "eval", 2, 30, 3),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


def invoke(registry, *args: object, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args], obj={"registry": registry})
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module", params=[2, 3], ids=lambda s: f"x{s}")
def run(request, data, store, registry, tmp_path_factory) -> tuple[int, Path]:
    """``(scale, run directory)`` of a two-step MSE run of a one-block MSRResNet."""
    scale = request.param
    runs = tmp_path_factory.mktemp(f"runs_x{scale}")
    experiment = runs / "tiny.toml"
    experiment.write_text(
        f"""[experiment]
name = "tiny_x{scale}"
runs_dir = "{runs}"

[data]
train = ["{data["train"]}"]
val = ["{data["val"]}"]
patch = {PATCH[scale]}
scale = {scale}
val_limit = 1

[generator]
name = "msrresnet"
blocks = 1
filters = 8

[losses.mse]
weight = 1.0

[train]
steps = 2
batch_size = 2
log_every = 1
checkpoint_every = 2

[validation]
every = 2
samples = 1
"""
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        result = invoke(registry, "run", experiment)
    assert "validation PSNR-Y" in result.output
    return scale, runs / f"tiny_x{scale}"


def lr_image(h: int = 10, w: int = 14, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_training_keeps_models_of_its_scale(run, registry, store, monkeypatch) -> None:
    from harness.deploy.models import load_upscaler
    from harness.training.validation import _GAP, caption_height, tile_factor

    scale, folder = run
    assert (folder / "generator.keras").is_file()
    for ref in (folder, f"{folder}@best_psnr_y", folder / "checkpoints"):
        assert load_upscaler(ref, registry=registry).scale == scale, ref
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    run_id = (folder / "mlflow_run_id").read_text().strip()
    logged = load_upscaler(f"runs:/{run_id}/generator", registry=registry)
    assert logged.scale == scale
    client = MlflowClient(store)
    pngs = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    step_2 = [p for p in pngs if p.split("/")[1].startswith("samples+step+2+")]
    assert len(step_2) == 1, pngs  # the stepped image "samples" of the validation at step 2
    sample = Image.open(client.download_artifacts(run_id, step_2[0], str(folder.parent)))
    # the 36-pixel validation image: LR (nearest), bicubic, model and HR, enlarged to legible
    # tiles, 4-pixel gaps, and a caption band above them
    side = 36 * tile_factor(36)
    assert sample.size == (4 * side + 3 * _GAP, caption_height(side) + side)


def test_upscale_command(run, registry, tmp_path) -> None:
    from harness.deploy.models import load_upscaler

    scale, folder = run
    image = lr_image(20, 26)
    source = tmp_path / "in.png"
    Image.fromarray(image).save(source)
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    result = invoke(registry, "upscale", source, "-o", whole, "-m", folder, "--compare")
    assert f"upscaled x{scale}" in result.output
    sr = read_image(whole)
    assert sr.shape == (20 * scale, 26 * scale, 3)
    upscaler = load_upscaler(folder, registry=registry)
    want = to_uint8(upscaler(image.astype(np.float32)[None] / 255)[0])
    np.testing.assert_array_equal(sr, want)
    side = read_image(tmp_path / "whole_compare.png")
    assert side.shape == (20 * scale, 2 * 26 * scale, 3)
    bicubic = to_uint8(bicubic_upscaler(scale)(image.astype(np.float32)[None] / 255)[0])
    np.testing.assert_array_equal(side[:, : 26 * scale], bicubic)
    # tiles of 8 LR pixels with the measured overlap give the whole-image result, up to
    # float32 summation order (oneDNN picks kernels by input size): a value on a rounding
    # boundary may land one level apart, nothing more
    invoke(registry, "upscale", source, "-o", tiled, "-m", folder, "--tile", "8", "-q")
    diff = np.abs(read_image(tiled).astype(int) - sr.astype(int))
    assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 1000, diff.max()


@pytest.fixture(scope="module")
def exported(run, registry, tmp_path_factory) -> tuple[int, Path, Path]:
    scale, folder = run
    target = tmp_path_factory.mktemp(f"export_x{scale}") / "model"
    invoke(registry, "export", folder, "-o", target, "--version", "1")
    return scale, folder, target / "1"


def test_exported_saved_model(exported, registry) -> None:
    import tensorflow as tf

    from harness.deploy.models import load_upscaler

    scale, folder, saved = exported
    loaded = tf.saved_model.load(str(saved))
    assert int(loaded.scale.numpy()) == scale
    lr = lr_image(9, 11).astype(np.float32)[None] / 255
    sr = loaded.signatures["serving_default"](lr=tf.constant(lr))["sr"].numpy()
    assert sr.shape == (1, 9 * scale, 11 * scale, 3)
    np.testing.assert_allclose(sr, load_upscaler(folder, registry=registry)(lr), atol=1e-5)
    assert load_upscaler(saved, registry=registry).scale == scale


def test_serve_app(exported, registry) -> None:
    from fastapi.testclient import TestClient

    from harness.deploy.models import load_upscaler
    from harness.deploy.serve import create_app

    scale, folder, saved = exported
    app = create_app(load_upscaler(saved, registry=registry, tile=8), name="sr")
    reference = load_upscaler(folder, registry=registry)
    with TestClient(app) as client:
        assert client.get("/health").json()["scale"] == scale
        assert client.get("/v1/models/sr/metadata").json()["metadata"]["scale"] == scale
        lr = lr_image(12, 17, seed=1).astype(np.float32)[None] / 255
        response = client.post("/v1/models/sr:predict", json={"instances": lr.tolist()})
        assert response.status_code == 200, response.text
        predictions = np.asarray(response.json()["predictions"], np.float32)
        assert predictions.shape == (1, 12 * scale, 17 * scale, 3)
        np.testing.assert_allclose(predictions, reference(lr), atol=1e-5)
        buffer = io.BytesIO()
        Image.fromarray(lr_image(7, 9, seed=2)).save(buffer, format="PNG")
        response = client.post(
            "/upscale", content=buffer.getvalue(), headers={"content-type": "image/png"}
        )
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == (9 * scale, 7 * scale)


def test_evaluate_reads_the_scale_from_the_model(run, data, registry, tmp_path) -> None:
    scale, folder = run
    report = tmp_path / "report.json"
    args = ["evaluate", "--model", folder, "--data", data["eval"], "--no-mlflow"]
    result = invoke(registry, *args, "--json", report)
    assert f"scale {scale}  border {scale}" in result.output
    written = json.loads(report.read_text())
    assert written["scale"] == scale and written["border"] == scale
    assert all(np.isfinite(s["psnr_y"]) for s in written["datasets"]["eval"]["images"])
    invoke(registry, *args, "--scale", scale)  # the model's own scale is accepted
    wrong = invoke(registry, *args, "--scale", 4, code=2)
    assert f"does not match the model's scale {scale}" in wrong.output


@pytest.mark.parametrize("scale", [2, 3])
def test_shipped_recipe_shows(scale, registry) -> None:
    path = ROOT / "experiments" / f"msrresnet_x{scale}_291.toml"
    result = invoke(registry, "show", path)
    assert f"scale = {scale}" in result.output


def test_a_report_shows_only_published_references_of_its_scale() -> None:
    from harness.evaluation.report import load_references

    x4 = load_references(4)
    assert {"Bicubic", "SRResNet"} <= set(x4["methods"]) and {"spsr", "srgan"} <= set(x4["sources"])
    assert all(m["scale"] == 4 for m in x4["methods"].values())
    for scale in (2, 3):
        assert load_references(scale) == {"sources": {}, "methods": {}}
    assert load_references()["methods"].keys() == x4["methods"].keys()


def test_report_of_a_run(run, data, registry, store, tmp_path) -> None:
    import shutil

    from harness.evaluation.report import report_scale, resolve_runs, write_report

    scale, folder = run
    copied = tmp_path / "copied"  # a run directory holding only its model
    copied.mkdir()
    shutil.copy(folder / "generator.keras", copied)
    runs = resolve_runs([str(copied)], tracking_uri=store, say=lambda _: None)
    assert runs[0].scale is None and report_scale(runs, registry) == scale
    report = write_report(
        [str(folder)],
        tmp_path / "report",
        registry=registry,
        data=[str(data["eval"])],
        metrics=[],
        tracking_uri=store,
        crops=1,
        log_to_mlflow=False,
        say=lambda _: None,
        progress=False,
    )
    markdown = report.markdown.read_text()
    assert f"Scale x{scale}: HR cropped to a multiple of {scale}" in markdown
    assert f"None at x{scale}" in markdown and "SRResNet" not in markdown
    assert json.loads(report.json.read_text())["scale"] == scale
