"""``harness export --format onnx``: ONNX Runtime runs the export with the SavedModel's
contract (float32 NHWC [0, 1], dynamic batch/height/width) and matches TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import save_generator

from harness.cli import cli
from harness.deploy.onnx import (
    DYNAMIC_DIMS,
    OnnxExportError,
    check_image,
    check_onnx,
    export_onnx,
    onnx_session,
)
from harness.deploy.upscaler import Upscaler


@pytest.fixture(scope="module", params=["srresnet", "msrresnet"])
def generator(request, registry) -> tf.keras.Model:
    """A tiny generator of each upsampling style (BN + sub-pixel; bilinear skip)."""
    tf.keras.utils.set_random_seed(7)
    return registry.factory("generator", request.param)(scale=4, blocks=1, filters=8)


def test_cli_exports_checks_and_onnx_runtime_matches_tf(generator, shared_data, tmp_path):
    model_file = tmp_path / "generator.keras"
    generator.save(model_file)
    image = shared_data / "set5" / "baby.png"
    if not image.is_file():
        pytest.skip(f"Set5 is missing under {shared_data}")
    result = CliRunner().invoke(
        cli,
        ["export", str(model_file), "-o", str(tmp_path / "onnx"), "--format", "onnx"]
        + ["--version", "1", "--check-image", str(image)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "max |ONNX - TensorFlow float32|" in result.output
    path = tmp_path / "onnx" / "1" / "model.onnx"
    session = onnx_session(path)
    (given,), (out,) = session.get_inputs(), session.get_outputs()
    assert (given.name, given.type, given.shape) == ("lr", "tensor(float)", [*DYNAMIC_DIMS, 3])
    assert out.name == "sr"
    want = Upscaler.from_generator(generator)
    rng = np.random.default_rng(0)
    for shape in ((1, 12, 20, 3), (2, 17, 9, 3)):
        lr = rng.uniform(0, 1, shape).astype(np.float32)
        got = session.run(["sr"], {"lr": lr})[0]
        assert got.shape == (shape[0], shape[1] * 4, shape[2] * 4, 3)
        assert got.min() >= 0 and got.max() <= 1
        np.testing.assert_allclose(got, want(lr), atol=1e-4)


def test_the_check_fails_loudly_on_a_model_that_disagrees(registry, tmp_path) -> None:
    tf.keras.utils.set_random_seed(1)
    exported = registry.factory("generator", "srresnet")(scale=4, blocks=1, filters=8)
    other = registry.factory("generator", "srresnet")(scale=4, blocks=1, filters=8)
    path = export_onnx(exported, tmp_path / "g.onnx")
    lr = check_image(size=24)  # the bundled photo
    assert lr.shape == (1, 24, 24, 3) and lr.min() >= 0 and lr.max() <= 1
    assert check_onnx(path, exported, lr) < 1e-4
    with pytest.raises(OnnxExportError, match="differs from TensorFlow"):
        check_onnx(path, other, lr)
    with pytest.raises(OnnxExportError, match="exists"):
        export_onnx(exported, path)


def test_export_refuses_an_existing_onnx_file_before_loading(tmp_path) -> None:
    target = tmp_path / "m.onnx"
    target.write_bytes(b"x")
    result = CliRunner().invoke(
        cli, ["export", "does/not/matter", "-o", str(target), "--format", "onnx"]
    )
    assert result.exit_code != 0 and "exists" in result.output
    assert "Traceback" not in result.output and target.read_bytes() == b"x"


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("savedmodel", marks=pytest.mark.slow)])
def test_a_model_of_either_training_policy_exports_in_float32(trained, fmt, tmp_path) -> None:
    """A generator trained under mixed_bfloat16 keeps that policy when loaded; the export is
    rebuilt in float32, runs in ONNX Runtime and matches the float32 network."""
    target = tmp_path / ("m.onnx" if fmt == "onnx" else "saved")
    result = CliRunner().invoke(
        cli,
        ["export", str(trained.path), "-o", str(target), "--format", fmt, "--check-image"]
        + [str(_photo(tmp_path))],
    )
    assert result.exit_code == 0, result.output
    assert "float32| = " in result.output and "Traceback" not in result.output
    lr = np.random.default_rng(3).uniform(0, 1, (1, 11, 13, 3)).astype(np.float32)
    if fmt == "onnx":
        got = onnx_session(target).run(["sr"], {"lr": lr})[0]
    else:
        got = tf.saved_model.load(str(target)).signatures["serving_default"](lr=lr)["sr"].numpy()
    want = Upscaler.from_generator(trained.float32)(lr)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _photo(folder) -> object:
    from PIL import Image

    path = folder / "photo.png"
    Image.fromarray((check_image(size=32)[0] * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.slow
def test_a_failed_check_leaves_nothing_and_a_rerun_does_not_say_exists(registry, tmp_path) -> None:
    """ONNX Runtime's CPU provider has no bfloat16 Conv: the bf16 export fails its check, says
    so in one line and leaves no file behind (the float32 export then succeeds)."""
    trained = save_generator(tmp_path / "run", registry, "mixed_bfloat16")
    target = tmp_path / "out" / "m.onnx"
    args = ["export", str(trained.path), "-o", str(target), "--format", "onnx"]
    result = CliRunner().invoke(cli, [*args, "--precision", "bfloat16"])
    assert result.exit_code != 0, result.output
    assert (
        result.output.startswith("error: ")
        and ".partial" not in result.output
        and "Traceback" not in result.output
    )
    assert "cannot run" in result.output and "not kept" in result.output
    assert not target.parent.exists()  # the folder made for it too
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_bfloat16_saved_model_is_an_explicit_choice(trained, tmp_path) -> None:
    target = tmp_path / "saved"
    result = CliRunner().invoke(
        cli, ["export", str(trained.path), "-o", str(target), "--precision", "bfloat16"]
    )
    assert result.exit_code == 0, result.output
    assert "bfloat16); max |SavedModel - TensorFlow float32| = " in result.output
    lr = check_image(size=16)
    got = tf.saved_model.load(str(target)).signatures["serving_default"](lr=lr)["sr"].numpy()
    want = Upscaler.from_generator(trained.float32)(lr)
    assert 0 < np.abs(got - want).max() < 8 / 255  # computed in bf16, close to float32


@pytest.mark.parametrize("kind", ["classifier", "one_channel"])
def test_a_foreign_model_gives_one_error_line_and_no_file(kind, tmp_path) -> None:
    import keras

    if kind == "classifier":
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(10)])
    else:
        lr = keras.Input((None, None, 3))
        model = keras.Model(lr, keras.layers.Conv2D(1, 3, padding="same")(lr))
    model.save(tmp_path / "foreign.keras")
    target = tmp_path / "m.onnx"
    result = CliRunner().invoke(
        cli, ["export", str(tmp_path / "foreign.keras"), "-o", str(target), "--format", "onnx"]
    )
    assert result.exit_code != 0 and not target.exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "upscale" in lines[0], lines
