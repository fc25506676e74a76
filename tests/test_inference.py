"""Loading trained generators from every kind of reference, tiling, and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from harness.deploy.models import (
    ModelReferenceError,
    Upscaler,
    export_saved_model,
    load_generator,
    load_upscaler,
    tile_boxes,
)
from harness.errors import HarnessError
from harness.plugin_api.registry import get_registry

EXPERIMENT = """\
[experiment]
name = "tiny"

[data]
scale = 4

[generator]
name = "srresnet"
blocks = 1
filters = 8
"""


def tiny_generator(seed: int) -> tf.keras.Model:
    """SRResNet with one block and 8 filters; BN statistics randomised so BN is not identity."""
    tf.keras.utils.set_random_seed(seed)
    model = get_registry().factory("generator", "srresnet")(scale=4, blocks=1, filters=8)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "bn" in layer.name:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 2.0, var.shape),
                ]
            )
    return model


def sr(model, lr: np.ndarray) -> np.ndarray:
    """The reference: the generator's own output mapped to [0, 1]."""
    return np.clip((np.asarray(model(lr, training=False)) + 1) / 2, 0, 1)


@pytest.fixture(scope="module")
def lr() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (2, 21, 18, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> tuple[Path, tf.keras.Model, tf.keras.Model]:
    """A run directory with experiment.toml and a checkpoint holding generator and EMA."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run.mkdir()
    (run / "experiment.toml").write_text(EXPERIMENT)
    generator, ema = tiny_generator(1), tiny_generator(2)
    checkpoint = tf.train.Checkpoint(generator=generator, ema_generator=ema, step=tf.Variable(7))
    manager = tf.train.CheckpointManager(checkpoint, str(run / "checkpoints"), max_to_keep=2)
    manager.save()
    return run, generator, ema


# --------------------------------------------------------------------------- references


def test_run_dir_checkpoint_prefers_ema(run_dir, lr) -> None:
    run, generator, ema = run_dir
    loaded = load_generator(run)
    np.testing.assert_allclose(sr(loaded, lr), sr(ema, lr), atol=1e-6)
    assert np.abs(sr(loaded, lr) - sr(generator, lr)).max() > 1e-3


def test_checkpoint_dir_and_prefix(run_dir, lr) -> None:
    run, _, ema = run_dir
    prefix = tf.train.latest_checkpoint(str(run / "checkpoints"))
    for ref in (run / "checkpoints", prefix):
        np.testing.assert_allclose(sr(load_generator(ref), lr), sr(ema, lr), atol=1e-6)


def test_checkpoint_without_ema_restores_generator(tmp_path, lr) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment.toml").write_text(EXPERIMENT)
    generator = tiny_generator(3)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator), str(run / "checkpoints"), 1
    ).save()
    np.testing.assert_allclose(sr(load_generator(run), lr), sr(generator, lr), atol=1e-6)


def test_checkpoint_that_does_not_fit_the_experiment(run_dir, tmp_path) -> None:
    run, _, _ = run_dir
    other = tmp_path / "edited"
    other.mkdir()
    (other / "experiment.toml").write_text(EXPERIMENT.replace("filters = 8", "filters = 16"))
    (other / "checkpoints").symlink_to(run / "checkpoints")
    with pytest.raises(ModelReferenceError, match="does not fit the generator"):
        load_generator(other)


def test_keras_file_and_run_dir_with_generator_keras(tmp_path, lr) -> None:
    run = tmp_path / "run"
    run.mkdir()
    generator = tiny_generator(4)
    generator.save(run / "generator.keras")
    for ref in (run / "generator.keras", run, str(run)):
        np.testing.assert_allclose(sr(load_generator(ref), lr), sr(generator, lr), atol=1e-6)


def test_mlflow_uri_and_bare_run_id(tmp_path, monkeypatch, lr) -> None:
    import mlflow
    import mlflow.tensorflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = tracking_utils._tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    generator = tiny_generator(5)
    try:
        with mlflow.start_run() as run:
            mlflow.tensorflow.log_model(
                generator, name="generator", pip_requirements=["tensorflow"]
            )
        run_id = run.info.run_id
        for ref in (f"runs:/{run_id}/generator", run_id):
            np.testing.assert_allclose(sr(load_generator(ref), lr), sr(generator, lr), atol=1e-6)
        # The SavedModel exported from the run's MLflow model is the same network.
        exported = load_upscaler(export_saved_model(load_generator(run_id), tmp_path / "export"))
        np.testing.assert_allclose(exported(lr), sr(generator, lr), atol=1e-6)
        with pytest.raises(ModelReferenceError, match="MLflow could not load"):
            load_generator("0" * 32)
    finally:
        mlflow.set_tracking_uri(previous)  # leave the process-wide URI as it was


@pytest.mark.parametrize(
    "ref",
    ["does/not/exist", "runs-without-scheme", "README.md", "tests"],
)
def test_bad_reference_lists_accepted_forms(ref: str) -> None:
    with pytest.raises(ModelReferenceError) as info:
        load_generator(ref)
    message = str(info.value)
    assert ref in message
    for form in ("run directory", ".keras file", "SavedModel", "runs:/", "run id"):
        assert form in message


def test_export_round_trip(tmp_path, lr) -> None:
    generator = tiny_generator(6)
    out = export_saved_model(generator, tmp_path / "export" / "1")
    loaded = tf.saved_model.load(str(out))
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["lr"]
    assert signature.structured_input_signature[1]["lr"].shape.as_list() == [None, None, None, 3]
    got = signature(lr=tf.constant(lr))["sr"].numpy()
    np.testing.assert_allclose(got, sr(generator, lr), atol=1e-6)
    # Other batch sizes and spatial sizes go through the same signature.
    other = np.random.default_rng(1).uniform(0, 1, (3, 9, 30, 3)).astype(np.float32)
    assert signature(lr=tf.constant(other))["sr"].shape == (3, 36, 120, 3)
    upscaler = load_upscaler(out)
    assert upscaler.scale == 4
    np.testing.assert_allclose(upscaler(lr), got, atol=1e-6)
    with pytest.raises(ModelReferenceError, match="load_upscaler"):
        load_generator(out)
    with pytest.raises(HarnessError, match="not empty"):
        export_saved_model(generator, out)


# --------------------------------------------------------------------------- tiling


def test_tile_boxes_cover_the_image_once() -> None:
    cover = np.zeros((23, 17), int)
    for y0, y1, x0, x1 in tile_boxes(23, 17, 8):
        cover[y0:y1, x0:x1] += 1
    assert np.all(cover == 1)


def test_receptive_field_measured() -> None:
    # 9x9 head (4) + one block (2) + body conv (1) + x2 conv (1) + x2 conv (1 at 2x) +
    # 9x9 output conv at 4x (1): 10 LR pixels.
    upscaler = Upscaler.from_generator(tiny_generator(7))
    assert upscaler.scale == 4
    assert upscaler.receptive_radius() == 10


def test_tiled_equals_whole_image(lr) -> None:
    generator = tiny_generator(8)
    image = np.random.default_rng(2).uniform(0, 1, (1, 45, 38, 3)).astype(np.float32)
    whole = Upscaler.from_generator(generator)(image)
    np.testing.assert_allclose(whole, sr(generator, image), atol=1e-6)
    tiled = Upscaler.from_generator(generator, tile=16)
    calls = []
    out = tiled(image, progress=calls.append)
    assert len(calls) == 9  # 3 x 3 tiles
    assert tiled.overlap == 10
    assert np.abs(out - whole).max() * 255 < 1.0  # within one 8-bit level (in fact ~1e-6)
    # Too little context shows at the tile seams: the overlap is what makes tiles exact.
    short = Upscaler.from_generator(generator, tile=16, overlap=2)(image)
    assert np.abs(short - whole).max() * 255 > 1.0


def test_upscaler_rejects_bad_shapes() -> None:
    upscaler = Upscaler.from_generator(tiny_generator(9))
    with pytest.raises(HarnessError, match=r"\(N, h, w, 3\)"):
        upscaler(np.zeros((1, 8, 8, 4), np.float32))
    assert upscaler(np.zeros((8, 8, 3), np.float32)).shape == (32, 32, 3)
