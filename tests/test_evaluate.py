"""``harness evaluate`` through the real CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import new_store
from PIL import Image

import harness.deploy.models
from harness.cli import cli
from harness.data.folders import DataWarning
from harness.measures.bicubic import bicubic_upscaler
from harness.measures.scoring import evaluate
from harness.references import parse_reference


def _run(*args: str):
    result = CliRunner().invoke(cli, ["evaluate", *args])
    return result


def _frames(folder, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    for i in range(count):
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / f"{i:03d}.png")


def test_bicubic_baseline_on_set5_and_set14(shared_data, tmp_path):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    result = _run(
        "--model",
        "bicubic",
        "--data",
        str(shared_data / "set5"),
        str(shared_data / "set14"),
        "--json",
        str(out_json),
        "--csv",
        str(out_csv),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text())
    assert abs(report["datasets"]["set5"]["mean"]["psnr_y"] - 28.43) <= 0.02
    assert abs(report["datasets"]["set14"]["mean"]["psnr_y"] - 26.09) <= 0.02
    assert report["datasets"]["set14"]["count"] == 14 and report["scale"] == 4
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 5 + 1 + 14 + 1
    assert rows[0]["dataset"] == "set5" and rows[0]["image"] == "baby"
    assert rows[5]["image"] == "mean" and abs(float(rows[5]["psnr_y"]) - 28.43) <= 0.02
    # the printed tables: per image, and a summary per data set
    assert "butterfly" in result.output and "comic" in result.output
    assert "set5" in result.output and "28.43" in result.output and "26.09" in result.output


def test_video_frame_folders_report_per_clip_and_average(tmp_path):
    _frames(tmp_path / "vid" / "calm", 3, 1)
    _frames(tmp_path / "vid" / "busy", 2, 2)
    out = tmp_path / "v.json"
    result = _run("--data", str(tmp_path / "vid"), "--json", str(out), "--summary")
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["datasets"]) == {"vid/busy", "vid/calm"}
    assert report["datasets"]["vid/calm"]["count"] == 3
    clip_means = [report["datasets"][c]["mean"]["psnr_y"] for c in ("vid/busy", "vid/calm")]
    assert report["groups"]["vid"]["psnr_y"] == pytest.approx(np.mean(clip_means))
    assert "vid (mean of clips)" in result.output and "000" not in result.output  # --summary


def test_clear_errors(tmp_path):
    result = _run("--data", str(tmp_path / "set14"))
    assert result.exit_code == 2
    assert (
        "set14 does not exist" in result.output and "harness data download set14" in result.output
    )
    result = _run("--model", "bicubic")
    assert result.exit_code == 2 and "--data DIR" in result.output
    (tmp_path / "empty").mkdir()
    result = _run("--data", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "holds no images" in result.output


def _fake_loader(scale: int, seen: list[str]):
    def load_upscaler(ref, **kwargs):
        seen.append(ref)
        return bicubic_upscaler(scale)

    return load_upscaler


def test_model_reference_goes_to_load_upscaler_and_scale_is_checked(tmp_path, monkeypatch):
    _frames(tmp_path / "imgs", 2, 3)
    seen: list[str] = []
    monkeypatch.setattr(harness.deploy.models, "load_upscaler", _fake_loader(2, seen))
    out = tmp_path / "m.json"
    result = _run("--model", "runs/x", "--data", str(tmp_path / "imgs"), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert seen == [parse_reference("runs/x")]  # the command line's parsed reference
    report = json.loads(out.read_text())
    assert report["scale"] == 2 and report["border"] == 2
    result = _run("--model", "runs/x", "--scale", "4", "--data", str(tmp_path / "imgs"))
    assert result.exit_code == 2 and "does not match the model's scale 2" in result.output


def test_mlflow_run_reference_logs_eval_metrics(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    _frames(tmp_path / "clipset", 2, 4)
    uri = new_store(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("e"))
    run_id = run.info.run_id
    monkeypatch.setattr(harness.deploy.models, "load_upscaler", _fake_loader(4, []))
    result = _run(
        "--model",
        f"runs:/{run_id}/generator",
        "--data",
        str(tmp_path / "clipset"),
        "--tracking-uri",
        uri,
    )
    assert result.exit_code == 0, result.output
    logged = client.get_run(run_id).data.metrics
    assert set(logged) == {"eval/clipset/psnr_y", "eval/clipset/ssim_y", "eval/clipset/psnr_rgb"}
    expected = evaluate(
        bicubic_upscaler(4),
        [(p.stem, np.asarray(Image.open(p))) for p in sorted((tmp_path / "clipset").iterdir())],
        4,
    )
    assert logged["eval/clipset/psnr_y"] == pytest.approx(expected.psnr_y)
    assert parse_reference("runs/x").run_id == ""
    assert parse_reference(run_id).run_id == run_id

    # a run directory and its kept generator log to its run, in the run's own store
    folder = tmp_path / "runs" / "x"
    folder.mkdir(parents=True)
    (folder / "mlflow_run_id").write_text(run_id + "\n")
    (folder / "experiment.toml").write_text(f'[tracking]\nuri = "{uri}"\n')
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    for ref in (str(folder), f"{folder}@best_lpips"):
        result = _run("--model", ref, "--data", str(tmp_path / "clipset"), "--summary")
        assert result.exit_code == 0, result.output
        assert f"logged 3 metrics to MLflow run {run_id} ({uri})" in result.output
    logged = client.get_run(run_id).data.metrics
    assert {"eval/clipset/psnr_y", "eval/best_lpips/clipset/psnr_y"} <= set(logged)
    assert logged["eval/clipset/psnr_y"] == logged["eval/best_lpips/clipset/psnr_y"]
    assert not (tmp_path / "other.db").exists()


def test_a_saved_keras_generator_end_to_end(tmp_path):
    """A real .keras generator (LR [0,1] -> SR [-1,1]) through harness.deploy.models."""
    import keras

    lr = keras.Input((None, None, 3))
    nearest = keras.layers.Conv2DTranspose(3, 4, strides=4, use_bias=False)
    sr = keras.layers.Rescaling(2.0, offset=-1.0, dtype="float32")(nearest(lr))
    nearest.set_weights([np.tile(np.eye(3, dtype="float32"), (4, 4, 1, 1))])
    path = tmp_path / "g.keras"
    keras.Model(lr, sr).save(path)
    _frames(tmp_path / "imgs", 1, 5)
    out = tmp_path / "k.json"
    result = _run("--model", str(path), "--data", str(tmp_path / "imgs"), "--json", str(out))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["scale"] == 4
    score = report["datasets"]["imgs"]["images"][0]
    assert 5 < score["psnr_y"] < 40 and 0 < score["ssim_y"] < 1


def test_an_image_over_the_pixel_limit_is_skipped_unread(tmp_path, bomb_png, no_big_decodes):
    _frames(tmp_path / "imgs", 1, 4)
    (tmp_path / "imgs" / "bomb.png").write_bytes(bomb_png.read_bytes())
    out = tmp_path / "r.json"
    with pytest.warns(DataWarning, match=r"bomb.png \(20000x20000\)"):
        result = _run("--data", str(tmp_path / "imgs"), "--json", str(out), "--summary")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["datasets"]["imgs"]["count"] == 1
    (tmp_path / "imgs" / "000.png").unlink()
    with pytest.warns(DataWarning, match="HARNESS_MAX_IMAGE_PIXELS"):
        result = _run("--data", str(tmp_path / "imgs"))
    assert result.exit_code == 2 and "no usable evaluation images" in result.output


def test_a_model_of_either_training_policy_is_scored_in_float32(trained, tmp_path):
    """A generator trained under mixed_bfloat16 is scored as the float32 network (its own
    output, not bf16 rounding): the scores equal those of its float32 twin."""
    from harness.deploy.upscaler import Upscaler

    _frames(tmp_path / "imgs", 2, 6)
    out = tmp_path / "r.json"
    result = _run(
        "--model", str(trained.path), "--data", str(tmp_path / "imgs"), "--json", str(out)
    )
    assert result.exit_code == 0, result.output
    images = [(p.stem, np.asarray(Image.open(p))) for p in sorted((tmp_path / "imgs").iterdir())]
    want = evaluate(Upscaler.from_generator(trained.float32), images, 4)
    got = json.loads(out.read_text())["datasets"]["imgs"]["mean"]
    assert got["psnr_y"] == pytest.approx(want.psnr_y, abs=1e-9)
    assert got["ssim_y"] == pytest.approx(want.ssim_y, abs=1e-9)
