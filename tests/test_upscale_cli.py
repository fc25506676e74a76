"""``harness upscale`` and ``harness export`` through the real command line (in process)."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

from harness.cli import cli
from harness.data import video
from harness.data.images import ImageTooLargeError, list_images, read_image, to_uint8
from harness.deploy.models import load_upscaler
from harness.measures.bicubic import bicubic_upscaler


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, registry) -> Path:
    """A tiny trained-looking generator saved as .keras (1 block, 8 filters)."""
    tf.keras.utils.set_random_seed(11)
    generator = registry.factory("generator", "srresnet")(scale=4, blocks=1, filters=8)
    path = tmp_path_factory.mktemp("model") / "generator.keras"
    generator.save(path)
    return path


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[np.ndarray]:
    """Four small crops of Vid4 calendar frames (24 x 32 LR)."""
    files = list_images(shared_data / "vid4" / "calendar")[:4]
    if len(files) < 4:
        pytest.skip(f"vid4/calendar frames missing under {shared_data}")
    return [read_image(f)[100:124, 200:232] for f in files]


def run(*args: str) -> object:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@functools.cache
def _upscaler(model_file: Path):
    from harness.plugin_api.registry import build_registry

    return load_upscaler(model_file, registry=build_registry())


def expected(model_file: Path, image: np.ndarray) -> np.ndarray:
    upscaler = _upscaler(model_file)
    return to_uint8(upscaler(image.astype(np.float32)[None] / 255.0)[0])


def test_image_with_compare(model_file, frames, tmp_path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(frames[0]).save(source)
    out = tmp_path / "out" / "sr.png"
    result = run("upscale", source, "-o", out, "--model", model_file, "--compare", "-q")
    assert result.exit_code == 0, result.output
    sr = read_image(out)
    assert sr.shape == (96, 128, 3)
    np.testing.assert_array_equal(sr, expected(model_file, frames[0]))
    side = read_image(out.with_name("sr_compare.png"))
    assert side.shape == (96, 256, 3)
    np.testing.assert_array_equal(side[:, 128:], sr)
    lr = frames[0].astype(np.float32)[None] / 255.0
    bicubic = to_uint8(bicubic_upscaler(4)(lr)[0])  # the baseline evaluation scores
    np.testing.assert_array_equal(side[:, :128], bicubic)


def test_tiled_cli_output_matches_whole(model_file, shared_data, tmp_path) -> None:
    source = tmp_path / "big.png"
    Image.fromarray(read_image(shared_data / "set5" / "baby.png")[:60, :70]).save(source)
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    assert run("upscale", source, "-o", whole, "-m", model_file, "-q").exit_code == 0
    result = run("upscale", source, "-o", tiled, "-m", model_file, "--tile", "16", "-q")
    assert result.exit_code == 0, result.output
    diff = np.abs(read_image(whole).astype(int) - read_image(tiled).astype(int))
    assert diff.max() <= 1


def test_folder_keeps_names_and_formats(model_file, frames, tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames[:3]):
        Image.fromarray(frame).save(folder / f"frame_{i:03d}.png")
    Image.fromarray(frames[3]).save(folder / "frame_003.jpg", quality=95)
    out = tmp_path / "sr_frames"
    result = run("upscale", folder, "-o", out, "-m", model_file, "--batch", "2", "--compare")
    assert result.exit_code == 0, result.output
    assert "4 images" in result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["frame_000.png", "frame_001.png", "frame_002.png", "frame_003.jpg"]
    assert Image.open(out / "frame_003.jpg").format == "JPEG"
    # Batched frames give what a single frame gives.
    np.testing.assert_array_equal(
        read_image(out / "frame_001.png"), expected(model_file, frames[1])
    )
    assert len(list((tmp_path / "sr_frames_compare").iterdir())) == 4


def test_video_keeps_frame_rate(model_file, frames, tmp_path) -> None:
    source = tmp_path / "clip.mp4"
    fps = Fraction(30000, 1001)
    with video.VideoWriter(source, fps) as writer:
        for frame in frames:
            writer.write(frame)
    out = tmp_path / "clip_sr.mp4"
    result = run("upscale", source, "-o", out, "-m", model_file, "--batch", "3", "--compare")
    assert result.exit_code == 0, result.output
    info = video.probe(out)
    assert info.fps == fps
    assert (info.width, info.height) == (128, 96)
    decoded_in = list(video.read_frames(source))
    decoded_out = list(video.read_frames(out))
    assert len(decoded_out) == len(frames)
    # Lossy H.264 both ways: compare with the model's output on the decoded input frame.
    want = expected(model_file, decoded_in[2]).astype(float)
    error = np.abs(decoded_out[2] - want).mean()
    bicubic = np.asarray(Image.fromarray(decoded_in[2]).resize((128, 96), Image.BICUBIC))
    assert error < 10
    assert error < 0.5 * np.abs(decoded_out[2] - bicubic.astype(float)).mean()
    assert video.probe(out.with_name("clip_sr_compare.mp4")).width == 256


def test_a_folder_of_frames_with_a_video_output_is_encoded(model_file, frames, tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"f{i:03d}.png")
    out = tmp_path / "out.mp4"
    result = run("upscale", folder, "-o", out, "-m", model_file, "--fps", "12", "-q")
    assert result.exit_code == 0, result.output
    assert out.is_file(), "a video file, not a folder named out.mp4"
    info = video.probe(out)
    assert info.fps == 12 and (info.width, info.height) == (128, 96)
    decoded = list(video.read_frames(out))
    assert len(decoded) == len(frames)
    want = expected(model_file, frames[1]).astype(float)
    assert np.abs(decoded[1] - want).mean() < 10  # lossy H.264
    # a container harness cannot encode is refused before any work
    result = run("upscale", folder, "-o", tmp_path / "out.flv", "-m", model_file)
    assert result.exit_code != 0 and ".mp4" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.flv").exists()


def test_export_cli_then_upscale_with_the_export(model_file, frames, tmp_path) -> None:
    base = tmp_path / "serving" / "srgan"
    result = run("export", model_file, "-o", base, "--version", "1")
    assert result.exit_code == 0, result.output
    assert (base / "1" / "saved_model.pb").is_file()
    source = tmp_path / "in.png"
    Image.fromarray(frames[0]).save(source)
    out = tmp_path / "sr.png"
    assert run("upscale", source, "-o", out, "-m", base / "1", "-q").exit_code == 0
    diff = np.abs(read_image(out).astype(int) - expected(model_file, frames[0]).astype(int))
    assert diff.max() <= 1


def test_errors_are_one_line(model_file, tmp_path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(source)
    result = run("upscale", source, "-o", tmp_path / "o.png", "-m", tmp_path / "nope")
    assert result.exit_code == 2
    assert "error: cannot load a model from" in result.output
    assert "Traceback" not in result.output
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = run("upscale", notes, "-o", tmp_path / "o.txt", "-m", model_file)
    assert result.exit_code == 2
    assert "neither an image" in result.output
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    result = run("upscale", broken, "-o", tmp_path / "b.png", "-m", model_file)
    assert result.exit_code == 2
    assert "cannot read image" in result.output


def _small(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (12, 16, 3)).astype(np.uint8)


def test_folder_skips_bad_images_finishes_the_rest_and_fails_at_the_end(
    model_file, tmp_path, bomb_png, no_big_decodes
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(_small(i)).save(folder / f"frame_{i}.png")
    (folder / "frame_1.png").write_bytes(b"\x89PNG cut short")  # between two good frames
    (folder / "frame_3.png").write_bytes(bomb_png.read_bytes())
    out = tmp_path / "sr"
    result = run("upscale", folder, "-o", out, "-m", model_file, "--batch", "2")
    assert result.exit_code == 2, result.output
    assert sorted(p.name for p in out.iterdir()) == ["frame_0.png", "frame_2.png"]
    np.testing.assert_array_equal(read_image(out / "frame_2.png"), expected(model_file, _small(2)))
    assert "upscaled x4: 2 images" in result.output
    error = result.output.split("error: ", 1)[1]
    assert error.startswith("2 of 4 images in") and "could not be read" in error
    assert "frame_1.png" in error
    assert "frame_3.png is 20000x20000 = 400000000 pixels" in error
    assert "HARNESS_MAX_IMAGE_PIXELS" in error


def test_an_image_over_the_pixel_limit_is_refused_unread(
    model_file, tmp_path, bomb_png, no_big_decodes
) -> None:
    result = run("upscale", bomb_png, "-o", tmp_path / "sr.png", "-m", model_file)
    assert result.exit_code == 2
    assert "error: image" in result.output and "20000x20000" in result.output
    assert "over the limit of 67108864 pixels" in result.output
    assert "HARNESS_MAX_IMAGE_PIXELS" in result.output and not (tmp_path / "sr.png").exists()


def test_a_video_whose_frames_are_over_the_pixel_limit_is_refused_unread(
    model_file, frames, tmp_path, monkeypatch
) -> None:
    source = tmp_path / "clip.mp4"
    with video.VideoWriter(source, Fraction(25)) as writer:
        for frame in frames[:2]:
            writer.write(frame)
    monkeypatch.setenv("HARNESS_MAX_IMAGE_PIXELS", str(24 * 32 - 1))
    with pytest.raises(ImageTooLargeError, match=r"32x24 .*over the limit of 767"):
        next(video.read_frames(source))
    out = tmp_path / "clip_sr.mp4"
    result = run("upscale", source, "-o", out, "-m", model_file)
    assert result.exit_code == 2
    assert "error: image" in result.output and "HARNESS_MAX_IMAGE_PIXELS" in result.output
    assert not out.exists()
    monkeypatch.setenv("HARNESS_MAX_IMAGE_PIXELS", str(24 * 32))
    assert len(list(video.read_frames(source))) == 2


def test_an_unusable_output_is_refused_before_the_model_loads(tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    image = folder / "a.png"
    Image.fromarray(_small(0)).save(image)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")  # never opened: the -o check comes first
    a_file = tmp_path / "file.txt"
    a_file.write_text("in the way")
    no_model = tmp_path / "no-model"  # were it loaded first, the error would be about it
    cases = [
        (folder, a_file, "must be a folder too"),
        (folder, a_file / "out", f"cannot be made: {a_file} is a file"),
        (image, a_file / "sr.png", f"its folder {a_file} is a file"),
        (image, folder, "would overwrite INPUT"),  # frames/a.png is the input itself
        (folder, folder, "would overwrite INPUT"),
        (image, tmp_path / "sr.xyz", "cannot write an image as .xyz"),
        (image, tmp_path / "sr", "cannot write an image as (no suffix)"),
        (clip, tmp_path / "sr.png", "cannot write video as .png"),
    ]
    for source, output, words in cases:
        result = run("upscale", source, "-o", output, "-m", no_model)
        assert result.exit_code == 2, (output, result.output)
        assert words in result.output, (output, result.output)
        assert "cannot load a model" not in result.output
    (tmp_path / "sr_compare").write_text("a file where --compare needs a folder")
    result = run("upscale", folder, "-o", tmp_path / "sr", "-m", no_model, "--compare")
    assert result.exit_code == 2 and "--compare folder" in result.output
    assert not (tmp_path / "sr").exists()


def test_compare_shows_the_bicubic_evaluation_scores(model_file, frames, tmp_path) -> None:
    """--compare's left half is MATLAB bicubic (the protocol's baseline), not Pillow's."""
    source = tmp_path / "in.png"
    Image.fromarray(frames[1]).save(source)
    out = tmp_path / "sr.png"
    result = run("upscale", source, "-o", out, "-m", model_file, "--compare", "-q")
    assert result.exit_code == 0, result.output
    side = read_image(out.with_name("sr_compare.png"))
    lr = frames[1].astype(np.float32)[None] / 255.0
    matlab = to_uint8(bicubic_upscaler(4)(lr)[0])
    np.testing.assert_array_equal(side[:, :128], matlab)
    pillow = np.asarray(Image.fromarray(frames[1]).resize((128, 96), Image.BICUBIC))
    assert np.any(side[:, :128] != pillow)  # the two bicubics differ: this is the scored one


def test_upscaled_files_round_as_evaluation_does(tmp_path) -> None:
    from harness.deploy.upscaler import Upscaler
    from harness.deploy.upscaling import upscale_folder, upscale_image

    def fn(lr: np.ndarray) -> np.ndarray:  # every value half-way between two 8-bit levels
        n, h, w, _ = np.shape(lr)
        levels = (np.arange(n * 2 * h * 2 * w * 3) % 256 + 0.5) / 255.0
        sr = levels.astype(np.float32).reshape(n, 2 * h, 2 * w, 3)
        sr[:, 0, 0] = 0.5  # 127.5 / 255 exactly
        return sr

    upscaler = Upscaler(fn, 2)
    source = tmp_path / "in" / "a.png"
    source.parent.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(source)
    scored = to_uint8(upscaler(np.zeros((1, 8, 8, 3), np.float32))[0])
    upscale_image(upscaler, source, tmp_path / "one.png", compare=False, quiet=True)
    np.testing.assert_array_equal(read_image(tmp_path / "one.png"), scored)
    upscale_folder(upscaler, source.parent, tmp_path / "many", False, batch=2, quiet=True)
    np.testing.assert_array_equal(read_image(tmp_path / "many" / "a.png"), scored)
    assert scored[0, 0].tolist() == [128, 128, 128]  # 127.5 rounds half up, not to even


def test_a_model_of_either_training_policy_upscales_in_float32(trained, frames, tmp_path) -> None:
    from harness.deploy.upscaler import Upscaler

    source = tmp_path / "in.png"
    Image.fromarray(frames[1]).save(source)
    out = tmp_path / "sr.png"
    result = run("upscale", source, "-o", out, "--model", trained.path, "-q")
    assert result.exit_code == 0, result.output
    want = Upscaler.from_generator(trained.float32).upscale_uint8(frames[1])
    np.testing.assert_array_equal(read_image(out), want)


@pytest.mark.parametrize(
    ("suffix", "damage"),
    [(".mkv", "cut"), (".avi", "cut"), (".mp4", "zeroed")],
)
def test_a_truncated_video_is_upscaled_as_far_as_it_decodes_and_reported_incomplete(
    model_file, tmp_path, suffix, damage
) -> None:
    rng = np.random.default_rng(3)
    whole = tmp_path / f"whole{suffix}"
    with video.VideoWriter(whole, Fraction(10)) as writer:
        for _ in range(24):
            writer.write(rng.integers(0, 256, (16, 16, 3), np.uint8))
    data = bytearray(whole.read_bytes())
    if damage == "cut":  # the end of the file is missing
        data = data[: len(data) * 2 // 3]
    else:  # an eighth of the file, in the middle, is zeros
        data[len(data) // 2 : len(data) // 2 + len(data) // 8] = bytes(len(data) // 8)
    source = tmp_path / f"damaged{suffix}"
    source.write_bytes(bytes(data))
    out = tmp_path / f"sr{suffix}"
    result = run("upscale", source, "-o", out, "-m", model_file, "--quiet")
    assert result.exit_code == 2, result.output
    assert "states 24 frames" in result.output and "but only the first" in result.output
    assert "is incomplete" in result.output
    decoded = len(list(video.read_frames(out)))
    assert 0 < decoded < 24 and f"holds those {decoded} frames" in result.output
