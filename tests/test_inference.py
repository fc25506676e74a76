"""Loading trained generators from every kind of reference, tiling, and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import new_store

from harness.deploy.export import export_saved_model
from harness.deploy.models import (
    ModelReferenceError,
    kept_model_path,
    load_generator,
    load_keras_file,
    load_upscaler,
)
from harness.deploy.upscaler import Upscaler, tile_boxes
from harness.errors import HarnessError

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


def tiny_generator(seed: int, registry) -> tf.keras.Model:
    """SRResNet with one block and 8 filters; BN statistics randomised so BN is not identity."""
    tf.keras.utils.set_random_seed(seed)
    model = registry.factory("generator", "srresnet")(scale=4, blocks=1, filters=8)
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
def run_dir(tmp_path_factory, registry) -> tuple[Path, tf.keras.Model, tf.keras.Model]:
    """A run directory with experiment.toml and a checkpoint holding generator and EMA."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run.mkdir()
    (run / "experiment.toml").write_text(EXPERIMENT)
    generator, ema = tiny_generator(1, registry), tiny_generator(2, registry)
    checkpoint = tf.train.Checkpoint(generator=generator, ema_generator=ema, step=tf.Variable(7))
    manager = tf.train.CheckpointManager(checkpoint, str(run / "checkpoints"), max_to_keep=2)
    manager.save()
    return run, generator, ema


# --------------------------------------------------------------------------- references


def test_run_dir_checkpoint_prefers_ema(run_dir, lr, registry) -> None:
    run, generator, ema = run_dir
    loaded = load_generator(run, registry=registry)
    np.testing.assert_allclose(sr(loaded, lr), sr(ema, lr), atol=1e-6)
    assert np.abs(sr(loaded, lr) - sr(generator, lr)).max() > 1e-3


def test_checkpoint_dir_and_prefix(run_dir, lr, registry) -> None:
    run, _, ema = run_dir
    prefix = tf.train.latest_checkpoint(str(run / "checkpoints"))
    for ref in (run / "checkpoints", prefix):
        np.testing.assert_allclose(
            sr(load_generator(ref, registry=registry), lr), sr(ema, lr), atol=1e-6
        )


def test_checkpoint_without_ema_restores_generator(tmp_path, lr, registry) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment.toml").write_text(EXPERIMENT)
    generator = tiny_generator(3, registry)
    tf.train.CheckpointManager(
        tf.train.Checkpoint(generator=generator), str(run / "checkpoints"), 1
    ).save()
    np.testing.assert_allclose(
        sr(load_generator(run, registry=registry), lr), sr(generator, lr), atol=1e-6
    )


def test_checkpoint_that_does_not_fit_the_experiment(run_dir, tmp_path, registry) -> None:
    run, _, _ = run_dir
    other = tmp_path / "edited"
    other.mkdir()
    (other / "experiment.toml").write_text(EXPERIMENT.replace("filters = 8", "filters = 16"))
    (other / "checkpoints").symlink_to(run / "checkpoints")
    with pytest.raises(ModelReferenceError, match="does not fit the generator"):
        load_generator(other, registry=registry)


def test_keras_file_and_run_dir_with_generator_keras(tmp_path, lr, registry) -> None:
    run = tmp_path / "run"
    run.mkdir()
    generator = tiny_generator(4, registry)
    generator.save(run / "generator.keras")
    for ref in (run / "generator.keras", run, str(run)):
        np.testing.assert_allclose(
            sr(load_generator(ref, registry=registry), lr), sr(generator, lr), atol=1e-6
        )


def test_mlflow_uri_and_bare_run_id(tmp_path, monkeypatch, lr, registry) -> None:
    """A generator logged the way a run logs it (``log_generator``) loads back from its
    ``runs:/`` URI and its bare run id; an MLflow model without a harness generator is refused."""
    from harness import tracking
    from harness.deploy.mlflow_model import log_generator

    uri = new_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = tracking.client(uri)
    run_id = client.create_run(client.create_experiment("inference")).info.run_id
    generator = tiny_generator(5, registry)
    assert log_generator(client, run_id, generator, step=0).startswith("models:/")
    for ref in (f"runs:/{run_id}/generator", run_id):
        np.testing.assert_allclose(
            sr(load_generator(ref, registry=registry), lr), sr(generator, lr), atol=1e-6
        )
    # The SavedModel exported from the run's MLflow model is the same network.
    model = load_generator(run_id, registry=registry)
    exported = load_upscaler(export_saved_model(model, tmp_path / "export"), registry=registry)
    np.testing.assert_allclose(exported(lr), sr(generator, lr), atol=1e-6)
    with pytest.raises(ModelReferenceError, match="MLflow could not load"):
        load_generator("0" * 32, registry=registry)
    foreign = tmp_path / "foreign"  # an MLflow model folder that harness did not log
    foreign.mkdir()
    (foreign / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ModelReferenceError, match="no generator.keras"):
        load_generator(foreign, registry=registry)


@pytest.mark.parametrize(
    "ref",
    ["does/not/exist", "runs-without-scheme", "README.md", "tests"],
)
def test_bad_reference_lists_accepted_forms(ref: str, registry) -> None:
    with pytest.raises(ModelReferenceError) as info:
        load_generator(ref, registry=registry)
    message = str(info.value)
    assert ref in message
    for form in ("run directory", ".keras file", "SavedModel", "runs:/", "run id"):
        assert form in message


def test_export_round_trip(tmp_path, lr, registry) -> None:
    generator = tiny_generator(6, registry)
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
    upscaler = load_upscaler(out, registry=registry)
    assert upscaler.scale == 4
    np.testing.assert_allclose(upscaler(lr), got, atol=1e-6)
    with pytest.raises(ModelReferenceError, match="load_upscaler"):
        load_generator(out, registry=registry)
    with pytest.raises(HarnessError, match="not empty"):
        export_saved_model(generator, out)


# --------------------------------------------------------------------------- tiling


def test_tile_boxes_cover_the_image_once() -> None:
    cover = np.zeros((23, 17), int)
    for y0, y1, x0, x1 in tile_boxes(23, 17, 8):
        cover[y0:y1, x0:x1] += 1
    assert np.all(cover == 1)


def test_receptive_field_measured(registry) -> None:
    # 9x9 head (4) + one block (2) + body conv (1) + x2 conv (1) + x2 conv (1 at 2x) +
    # 9x9 output conv at 4x (1): 10 LR pixels.
    upscaler = Upscaler.from_generator(tiny_generator(7, registry))
    assert upscaler.scale == 4
    assert upscaler.receptive_radius() == 10


def test_tiled_equals_whole_image(lr, registry) -> None:
    generator = tiny_generator(8, registry)
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


def test_upscaler_rejects_bad_shapes(registry) -> None:
    upscaler = Upscaler.from_generator(tiny_generator(9, registry))
    with pytest.raises(HarnessError, match=r"\(N, h, w, 3\)"):
        upscaler(np.zeros((1, 8, 8, 4), np.float32))
    assert upscaler(np.zeros((8, 8, 3), np.float32)).shape == (32, 32, 3)


# --------------------------------------------------------------------------- kept generators


def test_kept_model_path_parses_run_at_name(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "best_lpips.keras").write_bytes(b"")
    assert kept_model_path(f"{run}@best_lpips") == run / "best_lpips.keras"
    assert kept_model_path(run) is None  # no @: not a kept-generator reference
    assert kept_model_path("runs:/0123@abc/generator") is None  # an MLflow URI
    assert kept_model_path(f"{tmp_path / 'nowhere'}@best_lpips") is None  # no such run
    with pytest.raises(
        ModelReferenceError, match=r"kept no generator named best_dists.*best_lpips"
    ):
        kept_model_path(f"{run}@best_dists")


def test_load_keras_file_refuses_a_file_that_is_not_one(tmp_path, registry) -> None:
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    with pytest.raises(ModelReferenceError, match="not a .keras model"):
        load_keras_file(fake, registry=registry)


def test_importing_the_deploy_wing_changes_nothing_global() -> None:
    """No import-time side effects: no environment variable, no Pillow limit, no TensorFlow."""
    import subprocess
    import sys

    code = (
        "import harness.data.images, harness.measures.scoring  # other wings, imported first\n"
        "import os, PIL.Image as I; env, limit = dict(os.environ), I.MAX_IMAGE_PIXELS\n"
        "import harness.deploy.models, harness.deploy.upscaler, harness.deploy.export\n"
        "import harness.deploy.upscaling, harness.deploy.codecs, harness.deploy.serve\n"
        "assert dict(os.environ) == env, set(os.environ) ^ set(env)\n"
        "assert I.MAX_IMAGE_PIXELS == limit, I.MAX_IMAGE_PIXELS\n"
        "import sys; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_unreadable_latest_checkpoint_falls_back_to_the_older_one(tmp_path, lr, registry):
    """A zero-length .data file of the newest checkpoint (a disk that filled up): the older
    intact checkpoint is loaded, as a resumed run does; none intact is one clear error."""
    from click.testing import CliRunner

    from harness.cli import cli
    from harness.errors import HarnessWarning

    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment.toml").write_text(EXPERIMENT)
    older, newer = tiny_generator(4, registry), tiny_generator(5, registry)
    checkpoint = tf.train.Checkpoint(generator=older)
    manager = tf.train.CheckpointManager(checkpoint, str(run / "checkpoints"), max_to_keep=2)
    manager.save(checkpoint_number=1)
    older.set_weights(newer.get_weights())
    manager.save(checkpoint_number=2)
    want = sr(tiny_generator(4, registry), lr)
    for data in (run / "checkpoints").glob("ckpt-2.data-*"):
        data.write_bytes(b"")
    with pytest.warns(HarnessWarning, match="could not read ckpt-2.*loaded the older ckpt-1"):
        loaded = load_generator(run, registry=registry)
    np.testing.assert_allclose(sr(loaded, lr), want, atol=1e-6)
    with pytest.raises(ModelReferenceError, match="cannot be read"):
        load_generator(run / "checkpoints" / "ckpt-2", registry=registry)
    for data in (run / "checkpoints").glob("ckpt-1.data-*"):
        data.write_bytes(b"")
    with pytest.raises(
        ModelReferenceError, match=r"no checkpoint in .* can be read \(ckpt-2, ckpt-1"
    ):
        load_generator(run, registry=registry)
    result = CliRunner().invoke(cli, ["export", str(run), "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert result.output.startswith("error: ") and "can be read" in result.output
