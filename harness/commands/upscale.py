"""``harness upscale``: images, folders of images (or video frames) and video files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
import numpy as np

from harness.data.images import to_uint8
from harness.deploy.models import ACCEPTED, Upscaler, load_upscaler
from harness.errors import HarnessError

SAVE_OPTIONS = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}}


def bicubic(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 RGB upscaled ``scale`` times with bicubic interpolation (the usual baseline)."""
    from PIL import Image

    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((w * scale, h * scale), Image.BICUBIC))


def side_by_side(image: np.ndarray, sr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic (left) next to the model's output (right), for ``--compare``."""
    return np.concatenate([bicubic(image, scale), sr], axis=1)


def compare_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}_compare{path.suffix}")


def _save_image(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(image).save(path, **SAVE_OPTIONS.get(path.suffix.lower(), {}))
    except (ValueError, OSError) as exc:
        raise HarnessError(f"cannot write image {path}: {exc}") from None


def _batches(items: Iterable[tuple[str, np.ndarray]], size: int) -> Iterator[list]:
    """Groups of up to ``size`` consecutive items whose images share one shape."""
    group: list[tuple[str, np.ndarray]] = []
    for item in items:
        if group and (len(group) >= size or item[1].shape != group[0][1].shape):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _upscale_batch(upscaler: Upscaler, images: list[np.ndarray]) -> np.ndarray:
    lr = np.stack(images).astype(np.float32) / 255.0
    return to_uint8(upscaler(lr))


def _progress(total: int | None, unit: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=quiet, dynamic_ncols=True, leave=False)


def upscale_image(
    upscaler: Upscaler, source: Path, target: Path, compare: bool, quiet: bool
) -> None:
    """One image file -> ``target`` (and ``target``'s ``_compare`` twin)."""
    from harness.data.images import read_image

    image = read_image(source)
    boxes = upscaler.tiles(*image.shape[:2])
    with _progress(len(boxes), "tile", quiet) as bar:
        sr = to_uint8(upscaler(image.astype(np.float32)[None] / 255.0, progress=bar.update)[0])
    _save_image(target, sr)
    if compare:
        _save_image(compare_path(target), side_by_side(image, sr, upscaler.scale))


def upscale_folder(
    upscaler: Upscaler, source: Path, target: Path, compare: bool, batch: int, quiet: bool
) -> tuple[int, list[str]]:
    """Every image of ``source`` -> same name and format in ``target``.

    A file that cannot be read (damaged, not an image, over the pixel limit) is skipped so one
    bad frame does not cost the rest of the folder. Returns the count written and one message
    per skipped file.
    """
    from harness.data.images import ImageReadError, list_images, read_image

    files = list_images(source)
    if not files:
        raise HarnessError(f"{source} holds no images (.png, .jpg, .jpeg, .bmp).")
    compare_dir = target.with_name(f"{target.name}_compare")
    skipped: list[str] = []
    written = 0
    with _progress(len(files), "img", quiet) as bar:

        def readable() -> Iterator[tuple[str, np.ndarray]]:
            for f in files:
                try:
                    image = read_image(f)
                except ImageReadError as exc:
                    skipped.append(str(exc))
                    bar.update(1)
                    continue
                yield f.name, image

        for group in _batches(readable(), batch):
            srs = _upscale_batch(upscaler, [image for _, image in group])
            for (name, image), sr in zip(group, srs, strict=True):
                _save_image(target / name, sr)
                if compare:
                    _save_image(compare_dir / name, side_by_side(image, sr, upscaler.scale))
            written += len(group)
            bar.update(len(group))
    return written, skipped


def upscale_video(
    upscaler: Upscaler, source: Path, target: Path, compare: bool, batch: int, quiet: bool
) -> int:
    """A video file -> ``target`` at the same frame rate; returns the frame count."""
    from contextlib import ExitStack

    from harness.data import video

    info = video.probe(source)
    with ExitStack() as stack:
        out = stack.enter_context(video.VideoWriter(target, info.fps))
        side = (
            stack.enter_context(video.VideoWriter(compare_path(target), info.fps))
            if compare
            else None
        )
        bar = stack.enter_context(_progress(info.frames or None, "frame", quiet))
        frames = ((str(i), f) for i, f in enumerate(video.read_frames(source)))
        for group in _batches(frames, batch):
            srs = _upscale_batch(upscaler, [frame for _, frame in group])
            for (_, frame), sr in zip(group, srs, strict=True):
                out.write(sr)
                if side is not None:
                    side.write(side_by_side(frame, sr, upscaler.scale))
            bar.update(len(group))
    if out.frames == 0:
        raise HarnessError(f"{source} has no frames to upscale.")
    return out.frames


def _target(source: Path, output: Path) -> Path:
    """Where a single file's result goes: ``output`` itself, or inside it when it is a folder."""
    return output / source.name if output.is_dir() else output


def _check_folder(folder: Path, what: str) -> None:
    """Refuse a folder that cannot hold the outputs: a file in its place or on its path, or a
    place this user cannot write to. Nothing is created."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == folder else f"cannot be made: {existing} is a file"
        raise HarnessError(f"{what} {folder} {where}; give -o a path in a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarnessError(
            f"{what} {folder} cannot be written: {existing} is not writable by this user; give "
            "-o a writable place."
        )


def _check_output(input_path: Path, output: Path, kind: str, compare: bool) -> None:
    """Refuse an unusable ``-o`` before the model is loaded, so no work is lost to it."""
    from PIL import Image

    from harness.data import video

    if kind == "folder":
        if output.exists() and not output.is_dir():
            raise HarnessError(
                f"INPUT {input_path} is a folder, so -o {output} must be a folder too."
            )
        if output.exists() and output.resolve() == input_path.resolve():
            raise HarnessError(
                f"-o {output} is the INPUT folder: writing there would overwrite INPUT's "
                "images; give another folder."
            )
        _check_folder(output, "output folder")
        if compare:
            _check_folder(output.with_name(f"{output.name}_compare"), "--compare folder")
        return
    target = _target(input_path, output)
    if target.exists() and target.resolve() == input_path.resolve():
        raise HarnessError(
            f"-o {output} would overwrite INPUT {input_path} with its upscaled version; give "
            "another file name or folder."
        )
    if target.is_dir():
        raise HarnessError(f"-o {target} is a folder; give the output file's name.")
    _check_folder(target.parent, f"-o {target}: its folder")
    if target.exists() and not os.access(target, os.W_OK):
        raise HarnessError(f"-o {target} exists and is not writable; give another file name.")
    suffix = target.suffix.lower()
    if kind == "video" and suffix not in video.ENCODERS:
        raise HarnessError(
            f"-o {target}: cannot write video as {suffix or '(no suffix)'}; use one of "
            f"{', '.join(sorted(video.ENCODERS))}."
        )
    if kind == "image" and Image.registered_extensions().get(suffix) not in Image.SAVE:
        raise HarnessError(
            f"-o {target}: cannot write an image as {suffix or '(no suffix)'}; use .png, .jpg "
            "or .bmp."
        )


@click.command("upscale")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output file (for an image or video INPUT) or folder (for a folder INPUT).",
)
@click.option("--model", "-m", required=True, help=f"The trained model: {ACCEPTED}.")
@click.option(
    "--tile",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Process images in LR tiles of this side (bounded memory; 0: whole images).",
)
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=None,
    help="LR pixels of context around each tile [default: the model's receptive field].",
)
@click.option("--compare", is_flag=True, help="Also write bicubic | model side by side.")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Images or frames per forward pass (same-sized ones only).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(
    input_path: Path,
    output: Path,
    model: str,
    tile: int,
    overlap: int | None,
    compare: bool,
    batch: int,
    quiet: bool,
) -> None:
    """Upscale INPUT with a trained generator.

    INPUT is an image, a folder of images (video frames included) or a video file (anything
    FFmpeg reads). Outputs keep the input's format (and a video its frame rate); with --compare
    a bicubic-vs-model side-by-side is written next to each output (NAME_compare.EXT, or a
    folder OUTPUT_compare for a folder INPUT).
    """
    from harness.data import video
    from harness.data.images import is_image_file

    if input_path.is_dir():
        kind = "folder"
    elif video.is_video_file(input_path):
        kind = "video"
    elif is_image_file(input_path):
        kind = "image"
    else:
        raise HarnessError(
            f"{input_path} is neither an image (.png, .jpg, .jpeg, .bmp), a video "
            f"({', '.join(video.VIDEO_SUFFIXES)}) nor a folder of images."
        )
    _check_output(input_path, output, kind, compare)
    upscaler = load_upscaler(model, tile=tile, overlap=overlap)
    skipped: list[str] = []
    if kind == "folder":
        count, skipped = upscale_folder(upscaler, input_path, output, compare, batch, quiet)
        what = f"{count} images -> {output}/"
    elif kind == "video":
        target = _target(input_path, output)
        frames = upscale_video(upscaler, input_path, target, compare, batch, quiet)
        what = f"{frames} frames -> {target}"
    else:
        target = _target(input_path, output)
        upscale_image(upscaler, input_path, target, compare, quiet)
        what = f"{input_path.name} -> {target}"
    if not quiet:
        click.echo(f"upscaled x{upscaler.scale}: {what}")
    if skipped:
        raise HarnessError(
            f"{len(skipped)} of {len(skipped) + count} images in {input_path} could not be read "
            f"and were not upscaled (the other {count} are in {output}/): "
            + "; ".join(m.rstrip(".") for m in skipped)
            + ". Fix or remove those files and upscale them again."
        )
