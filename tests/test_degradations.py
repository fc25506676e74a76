"""Degradation plugins, paired LQ/HQ folders, evaluation with given LR and `harness data degrade`.

Images are small crops of scikit-image's astronaut written to tmp folders; models are tiny.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import new_store

from harness import config, hookimpl
from harness.cli import cli
from harness.config import DataConfig, PairedFolder
from harness.data import images as imageio
from harness.data import pipeline as data
from harness.data import resize
from harness.data.degrade import degrade_folder
from harness.data.folders import skimage_folder
from harness.data.pairs import PairingError, load_pairs
from harness.errors import ConfigError
from harness.evaluation.suite import evaluate_folders
from harness.measures.bicubic import bicubic_downsample, bicubic_upscaler, resize_matrix
from harness.measures.scoring import evaluate
from harness.plugin_api import contracts
from harness.plugin_api.registry import build_registry

# --------------------------------------------------------------------------- a test plugin


def _pool(hr: tf.Tensor, scale: int) -> tf.Tensor:
    return tf.nn.avg_pool2d(hr[None], scale, scale, "VALID")[0]


def shade(scale: int, level: float = 0.5):
    """Block mean times ``level``: easy to recompute from the HR crop."""

    def degrade(hr, seed):
        return _pool(hr, scale) * level

    return degrade


def noisy(scale: int, sigma: float = 0.05):
    """Block mean plus Gaussian noise drawn from the seed."""

    def degrade(hr, seed):
        lr = _pool(hr, scale)
        return lr + sigma * tf.random.stateless_normal(tf.shape(lr), seed)

    return degrade


class _Plugin:
    @hookimpl
    def harness_register_degradations(self):
        return {"shade": shade, "noisy": noisy}


@pytest.fixture(scope="module")
def reg():
    """The installed plugins plus the test degradations."""
    return build_registry(extra=[(_Plugin(), "testdeg", "harness-testdeg")])


def _photo(h: int, w: int, top: int = 0, left: int = 0) -> np.ndarray:
    photo = imageio.read_image(skimage_folder() / "astronaut.png")
    return np.ascontiguousarray(photo[top : top + h, left : left + w])


def _block_mean(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    blocks = hr[: h * scale, : w * scale].astype(np.float64).reshape(h, scale, w, scale, 3)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """``hr``: 3 photos (one 2 px wider than a multiple of 4); ``lr``: their 4x4 block means
    named BasicSR-style (``<stem>x4.png``); ``bic``: their MATLAB bicubic LR."""
    base = tmp_path_factory.mktemp("paired")
    out = {k: base / k for k in ("hr", "lr", "bic")}
    for folder in out.values():
        folder.mkdir()
    for i, (h, w) in enumerate([(96, 80), (80, 98), (88, 88)]):
        hr = _photo(h, w, 40 * i + 100, 30 * i + 150)
        imageio.write_png(out["hr"] / f"img{i}.png", hr)
        imageio.write_png(out["lr"] / f"img{i}x4.png", _block_mean(hr, 4))
        bic = bicubic_downsample(imageio.modcrop(hr, 4), 4)
        imageio.write_png(out["bic"] / f"img{i}.png", imageio.to_uint8(bic))
    return out


def _batches(cfg: DataConfig, registry, seed: int, n: int = 2, batch: int = 3):
    it = iter(data.training_dataset(cfg, batch, seed, registry))
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


def _levels(x: np.ndarray) -> np.ndarray:
    return np.round(x * 255.0).astype(np.int64)


# --------------------------------------------------------------------------- bicubic


@pytest.mark.parametrize("n,scale", [(96, 4), (321, 3), (50, 2), (9, 3)])
def test_tf_resize_matrix_is_the_protocol_matrix(n: int, scale: int) -> None:
    tf_matrix = resize.resize_matrix(tf.constant(n), tf.constant(n // scale), 1.0 / scale)
    np.testing.assert_allclose(
        tf_matrix.numpy(), resize_matrix(n, n // scale, 1.0 / scale), atol=1e-12
    )


def _batched_bicubic(hr_uint8: tf.Tensor, scale: int) -> tf.Tensor:
    """The batched MATLAB-bicubic LR the pipeline made before degradations were plugins: two
    matrix products over a uint8 ``(B, P, P, 3)`` batch, rounded to 8-bit levels."""
    h, w = hr_uint8.shape[1], hr_uint8.shape[2]
    rows = tf.constant(resize_matrix(h, h // scale, 1.0 / scale), tf.float32)
    cols = tf.constant(resize_matrix(w, w // scale, 1.0 / scale), tf.float32)
    x = tf.cast(hr_uint8, tf.float32)
    x = tf.einsum("oh,bhwc->bowc", rows, x)
    x = tf.einsum("pw,bowc->bopc", cols, x)
    return tf.clip_by_value(tf.floor(x + 0.5), 0.0, 255.0) / 255.0


def test_bicubic_is_the_default_and_gives_todays_lr(folders, registry) -> None:
    cfg = DataConfig(train=(str(folders["hr"]),), patch=32, scale=4)
    assert cfg.degradation.name == "bicubic"
    for lr, hr in _batches(cfg, registry, seed=5, n=2):
        hr8 = np.round((hr + 1.0) * 127.5).astype(np.uint8)
        before = _batched_bicubic(tf.constant(hr8), 4).numpy()  # the batched path
        assert np.array_equal(_levels(lr), _levels(before))
        assert np.array_equal(_levels(lr), _levels(bicubic_downsample(hr8, 4)))


def test_bicubic_of_any_size_in_a_traced_function(registry) -> None:
    degrade = registry.factory("degradation", "bicubic")(scale=3)
    traced = tf.function(
        degrade,
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2], tf.int64)],
    )
    hr = _photo(33, 51)
    lr = traced(tf.constant(hr, tf.float32) / 255.0, tf.constant([0, 0], tf.int64)).numpy()
    assert np.array_equal(_levels(lr), _levels(bicubic_downsample(hr, 3)))


# --------------------------------------------------------------------------- plugins


def test_a_plugin_degradation_is_used_by_name_and_reaches_the_batch(folders, reg) -> None:
    exp = config.from_dict(
        {
            "data": {
                "train": [str(folders["hr"])],
                "patch": 32,
                "degradation": {"name": "shade", "level": 0.5},
            }
        },
        registry=reg,
    )
    assert exp.data.degradation == config.PluginConfig("shade", {"level": 0.5})
    assert exp.flat_params()["data.degradation.level"] == "0.5"
    assert (
        config.from_dict(__import__("tomllib").loads(exp.to_toml()), registry=reg) == exp
    )  # harness show round-trips
    (lr, hr), *_ = _batches(exp.data, reg, seed=1, n=1)
    hr8 = np.round((hr + 1.0) * 127.5).astype(np.float64)
    pooled = hr8.reshape(3, 8, 4, 8, 4, 3).mean(axis=(2, 4)) / 255.0 * 0.5
    diff = _levels(lr) - np.floor(pooled * 255.0 + 0.5)
    assert np.abs(diff).max() <= 1 and np.mean(diff == 0) > 0.97  # ties at half levels may go
    # either way in float32


def test_degradation_table_errors_name_the_key(reg) -> None:
    with pytest.raises(ConfigError, match='Did you mean "level"'):
        config.from_dict({"data": {"degradation": {"name": "shade", "levl": 1}}}, registry=reg)
    with pytest.raises(ConfigError, match='Did you mean "shade"'):
        config.from_dict({"data": {"degradation": {"name": "shad"}}}, registry=reg)
    with pytest.raises(ConfigError, match="scale"):  # host-supplied, not settable
        config.from_dict({"data": {"degradation": {"name": "shade", "scale": 2}}}, registry=reg)
    raw = {"data": {"degradation": {"name": "noisy"}}}
    config.set_dotted(raw, "data.degradation.sigma", 0.1)  # a --set key's path
    assert config.from_dict(raw, registry=reg).data.degradation.params == {"sigma": 0.1}
    raw["sweep"] = {"params": {"data.degradation.sigma": {"type": "float", "low": 0, "high": 1}}}
    assert (
        "data.degradation.sigma" in config.check_sweep(config.from_dict(raw, registry=reg)).params
    )


def test_batches_with_a_random_degradation_follow_the_seed(folders, reg) -> None:
    cfg = DataConfig(
        train=(str(folders["hr"]),), patch=32, degradation=config.PluginConfig("noisy", {})
    )
    first, again, other = (_batches(cfg, reg, seed) for seed in (3, 3, 4))
    for (lr_a, hr_a), (lr_b, hr_b) in zip(first, again, strict=True):
        assert np.array_equal(lr_a, lr_b) and np.array_equal(hr_a, hr_b)
    assert not np.array_equal(first[0][0], other[0][0])
    assert np.all(lr_a >= 0) and np.all(lr_a <= 1)
    np.testing.assert_allclose(lr_a * 255.0, _levels(lr_a), atol=1e-4)  # on 8-bit levels


def test_contracts_hold_for_the_test_plugins_and_catch_broken_ones(reg) -> None:
    contracts.check_degradation(shade, name="shade")
    contracts.check_degradation(noisy, name="noisy")

    def wrong_size(scale: int):
        return lambda hr, seed: hr

    def python_random(scale: int):
        rng = np.random.default_rng()
        return lambda hr, seed: _pool(hr, scale) * 0.5 + 0.1 * float(rng.uniform())

    def on_255(scale: int):
        return lambda hr, seed: _pool(hr, scale) * 255.0

    for factory, message in [
        (wrong_size, "expected"),
        (python_random, "same seed"),
        (on_255, "about"),
    ]:
        with pytest.raises(contracts.ContractError, match=message):
            contracts.check_degradation(factory, name="broken")


# --------------------------------------------------------------------------- paired folders


def test_paired_training_crops_are_aligned(folders, reg) -> None:
    cfg = DataConfig(train=(PairedFolder(str(folders["hr"]), str(folders["lr"])),), patch=32)
    for lr, hr in _batches(cfg, reg, seed=2, n=3):
        hr8 = np.round((hr + 1.0) * 127.5).astype(np.uint8)
        expected = np.stack([_block_mean(h, 4) for h in hr8])
        assert np.array_equal(_levels(lr), expected)  # same window, same flips and rotations


def test_plain_and_paired_entries_mix(folders, reg) -> None:
    cfg = DataConfig(
        train=(str(folders["hr"]), PairedFolder(str(folders["hr"]), str(folders["lr"]))),
        patch=32,
        degradation=config.PluginConfig("shade", {"level": 0.0}),
    )
    lrs = np.concatenate([lr for lr, _ in _batches(cfg, reg, seed=0, n=4)])
    black = np.all(lrs == 0.0, axis=(1, 2, 3))
    assert black.any() and not black.all()  # both kinds of sample appear


def test_pairing_errors_name_the_files(folders, tmp_path) -> None:
    lr = tmp_path / "lr"
    lr.mkdir()
    for name in ("img0x4.png", "img1x4.png"):
        (lr / name).write_bytes((folders["lr"] / name).read_bytes())
    with pytest.raises(PairingError, match=r"img2\.png"):
        load_pairs(str(folders["hr"]), str(lr), 4)
    imageio.write_png(lr / "img2.png", np.zeros((10, 22, 3), np.uint8))
    with pytest.raises(PairingError, match=r"img2\.png is 88x88 px but LR img2\.png is 22x10"):
        load_pairs(str(folders["hr"]), str(lr), 4)


def test_paired_validation_and_evaluate_use_the_given_lr(folders, registry) -> None:
    bicubic = evaluate_folders("bicubic", [str(folders["hr"])], registry)
    given = evaluate_folders(
        "bicubic", [str(folders["hr"])], registry, lr_specs=[str(folders["bic"])]
    )
    assert given.results["hr"].means() == bicubic.results["hr"].means()
    pooled = evaluate_folders(
        "bicubic", [str(folders["hr"])], registry, lr_specs=[str(folders["lr"])]
    )
    assert pooled.results["hr"].psnr_y != pytest.approx(bicubic.results["hr"].psnr_y, abs=0.01)
    val = data.validation_images(
        DataConfig(val=(PairedFolder(str(folders["hr"]), str(folders["lr"])),))
    )
    assert [len(item) for item in val] == [3, 3, 3]
    name, hr, lr = val[1]
    assert name == "hr/img1" and hr.shape == (80, 96, 3) and lr.shape == (20, 24, 3)
    direct = evaluate(bicubic_upscaler(4), val, 4)
    assert direct.psnr_y == pytest.approx(pooled.results["hr"].psnr_y)
    from harness.training.validation import caption_height, sample_grid, tile_factor

    grid = sample_grid(bicubic_upscaler(4), val[:1], 4)
    k = 4 * tile_factor(val[0][1].shape[1])  # x4, then enlarged to a legible tile
    nearest = np.repeat(np.repeat(val[0][2], k, axis=0), k, axis=1)
    top = caption_height(nearest.shape[1])
    tile = grid[top : top + nearest.shape[0], : nearest.shape[1]]
    assert np.array_equal(tile, nearest)  # the given LR


def test_paired_entries_train_a_tiny_model(folders, tmp_path, reg) -> None:
    from harness.training.step import Trainer

    pair = {"hr": str(folders["hr"]), "lr": str(folders["lr"])}
    exp = config.from_dict(
        {
            "experiment": {"name": "paired", "runs_dir": str(tmp_path)},
            "data": {
                "train": [pair, str(folders["hr"])],
                "val": [pair],
                "patch": 32,
                "degradation": {"name": "noisy"},
            },
            "generator": {"name": "msrresnet", "blocks": 1, "filters": 8},
            "train": {"steps": 2, "batch_size": 2, "precision": "float32"},
        },
        registry=reg,
    )
    trainer = Trainer(exp, registry=reg)  # "noisy" exists only in this registry
    trainer.start_data()
    logs = [trainer.train_step() for _ in range(2)]
    assert trainer.step == 2 and all(np.isfinite(v) for log in logs for v in log.values())


# --------------------------------------------------------------------------- the commands


def test_data_degrade_is_seeded_per_file(folders, tmp_path, reg) -> None:
    one = degrade_folder(str(folders["hr"]), str(tmp_path / "a"), reg, name="noisy", seed=0)
    two = degrade_folder(str(folders["hr"]), str(tmp_path / "b"), reg, name="noisy", seed=0)
    other = degrade_folder(str(folders["hr"]), str(tmp_path / "c"), reg, name="noisy", seed=1)
    assert [p.name for p in one] == ["img0.png", "img1.png", "img2.png"]
    for a, b, c in zip(one, two, other, strict=True):
        assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert imageio.read_image(one[1]).shape == (20, 24, 3)  # 80x98 cropped to 80x96
    single = tmp_path / "single"
    single.mkdir()
    (single / "img1.png").write_bytes((folders["hr"] / "img1.png").read_bytes())
    alone = degrade_folder(str(single), str(tmp_path / "d"), reg, name="noisy", seed=0)
    assert alone[0].read_bytes() == one[1].read_bytes()  # the seed comes from the file name
    with pytest.raises(ConfigError, match='Did you mean "sigma"'):
        degrade_folder(str(single), str(tmp_path / "e"), reg, name="noisy", params={"sigm": 1})


def test_degrade_then_evaluate_through_the_cli(folders, tmp_path) -> None:
    out = tmp_path / "bic_x4"
    runner = CliRunner()
    args = ["data", "degrade", str(folders["hr"]), "-o", str(out), "--seed", "0", "--quiet"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "3 LR images (x4, bicubic, seed 0)" in result.output
    for path in sorted(out.iterdir()):  # bicubic made whole = the protocol's LR
        assert np.array_equal(
            imageio.read_image(path), imageio.read_image(folders["bic"] / path.name)
        )
    base = ["evaluate", "--data", str(folders["hr"]), "--summary", "--no-mlflow"]
    plain = runner.invoke(cli, base, catch_exceptions=False)
    given = runner.invoke(cli, [*base, "--lr", str(out)], catch_exceptions=False)
    assert given.exit_code == 0 and given.output == plain.output
    bad = runner.invoke(cli, [*base, "--lr", str(out), "--lr", str(out)])
    assert bad.exit_code != 0 and "2 --lr folders for 1 --data folders" in bad.output


def test_paired_entries_are_logged_as_two_mlflow_datasets(folders, reg) -> None:
    from harness.training.loop import _log_data_inputs

    pair = {"hr": str(folders["hr"]), "lr": str(folders["lr"])}
    exp = config.from_dict(
        {"data": {"train": [pair, str(folders["bic"])], "val": [pair]}},
        "paired.toml",
        registry=reg,
    )
    logged: dict[str, list] = {}

    class Tracker:
        def log_datasets(self, datasets, context):
            logged[context] = datasets

    _log_data_inputs(exp, Tracker())
    assert [d.name for d in logged["training"]] == ["hr", "lr (LR)", "bic"]
    assert [d.name for d in logged["validation"]] == ["hr", "lr (LR)"]
    assert [d.profile["num_images"] for d in logged["validation"]] == [3, 3]


def test_report_on_given_lr_says_so_and_shows_no_published_figures(
    folders, registry, tmp_path
) -> None:
    import json

    from harness.evaluation.report import write_report

    run = tmp_path / "tiny"  # a run directory holding only its model
    run.mkdir()
    tf.keras.utils.set_random_seed(0)
    registry.factory("generator", "msrresnet")(scale=4, blocks=1, filters=8).save(
        run / "generator.keras"
    )
    report = write_report(
        [str(run)],
        tmp_path / "report",
        registry=registry,
        data=[str(folders["hr"])],
        lr=[str(folders["lr"])],
        metrics=[],
        tracking_uri=new_store(tmp_path),
        crops=1,
        log_to_mlflow=False,
        say=lambda _: None,
        progress=False,
    )
    markdown = report.markdown.read_text()
    assert f"- LR of hr: the given images of `{folders['lr']}`" in markdown
    assert "None shown: published figures are measured on bicubic LR" in markdown
    assert "SRResNet" not in markdown  # no published row beside given-LR scores
    given = evaluate_folders(
        "bicubic", [str(folders["hr"])], registry, lr_specs=[str(folders["lr"])]
    )
    assert report.tables["hr"]["bicubic"]["psnr_y"] == pytest.approx(given.results["hr"].psnr_y)
    assert json.loads(report.json.read_text())["given_lr"] == {"hr": str(folders["lr"])}
