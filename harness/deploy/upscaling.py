"""Upscaling files: an image, a folder of images (video frames included) or a video file.

The pipelines behind ``harness upscale`` (and reusable by ``serve`` and ``report``): checking
the output before any work, reading, batching same-sized images, tiling through the
:class:`~harness.deploy.upscaler.Upscaler`, rounding to 8 bits with
:func:`harness.data.images.to_uint8` and writing each result in its input's format. With
``compare`` a side-by-side is written too: the bicubic baseline evaluation scores (MATLAB
``imresize``, :func:`harness.measures.bicubic.bicubic_upscaler`) left, the model right.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from harness import diskwrite
from harness.data import video
from harness.data.images import (
    ImageReadError,
    encode_png,
    is_image_file,
    list_images,
    read_image,
    to_uint8,
)
from harness.deploy.models import load_upscaler
from harness.deploy.upscaler import Upscaler
from harness.errors import HarnessError
from harness.measures.bicubic import bicubic_upscaler

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry
    from harness.references import ModelRef

Kind = Literal["image", "folder", "video"]
SAVE_OPTIONS = {".jpg": {"quality": 95}, ".jpeg": {"quality": 95}}


# --------------------------------------------------------------------------- --compare


def bicubic(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 RGB ``(h, w, 3)`` upscaled ``scale`` times by the bicubic baseline evaluation
    scores (MATLAB ``imresize``), rounded as every output is."""
    lr = np.asarray(image, np.float32)[None] / np.float32(255.0)
    return to_uint8(bicubic_upscaler(scale)(lr)[0])


def side_by_side(image: np.ndarray, sr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic (left) next to the model's output (right), for ``--compare``."""
    return np.concatenate([bicubic(image, scale), sr], axis=1)


def compare_path(path: Path) -> Path:
    """Where the side-by-side of the output file ``path`` goes: ``NAME_compare.EXT``."""
    return path.with_name(f"{path.stem}_compare{path.suffix}")


# --------------------------------------------------------------------------- writing


def save_image(path: Path, image: np.ndarray) -> None:
    """Write a uint8 RGB image in the format ``path``'s suffix names (PNG through
    :func:`harness.data.images.encode_png`), creating its folder; whole or not at all (an old
    file stays as it was when the write fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with diskwrite.atomic(path, f"the image {path.name}") as tmp:
            if path.suffix.lower() == ".png":
                tmp.write_bytes(encode_png(image))
            else:
                Image.fromarray(image).save(tmp, **SAVE_OPTIONS.get(path.suffix.lower(), {}))
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


def _progress(total: int | None, unit: str, quiet: bool) -> Any:
    return tqdm(total=total, unit=unit, disable=quiet, dynamic_ncols=True, leave=False)


# --------------------------------------------------------------------------- the pipelines


def upscale_image(
    upscaler: Upscaler, source: Path, target: Path, compare: bool, quiet: bool
) -> None:
    """One image file -> ``target`` (and ``target``'s ``_compare`` twin)."""
    image = read_image(source)
    boxes = upscaler.tiles(*image.shape[:2])
    with _progress(len(boxes), "tile", quiet) as bar:
        sr = upscaler.upscale_uint8(image, progress=bar.update)
    save_image(target, sr)
    if compare:
        save_image(compare_path(target), side_by_side(image, sr, upscaler.scale))


def upscale_folder(
    upscaler: Upscaler, source: Path, target: Path, compare: bool, batch: int, quiet: bool
) -> tuple[int, list[str]]:
    """Every image of ``source`` -> same name and format in ``target``.

    A file that cannot be read (damaged, not an image, over the pixel limit) is skipped so one
    bad frame does not cost the rest of the folder. Returns the count written and one message
    per skipped file.
    """
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
            srs = upscaler.upscale_uint8(np.stack([image for _, image in group]))
            for (name, image), sr in zip(group, srs, strict=True):
                save_image(target / name, sr)
                if compare:
                    save_image(compare_dir / name, side_by_side(image, sr, upscaler.scale))
            written += len(group)
            bar.update(len(group))
    return written, skipped


def _encode(
    upscaler: Upscaler,
    frames: Iterable[tuple[str, np.ndarray]],
    target: Path,
    fps: Any,
    total: int | None,
    compare: bool,
    batch: int,
    quiet: bool,
) -> int:
    """Upscale ``frames`` in batches and encode them as the video ``target`` at ``fps`` (and
    the side-by-side next to it with ``compare``); returns the frame count."""
    with ExitStack() as stack:
        out = stack.enter_context(video.VideoWriter(target, fps))
        side = (
            stack.enter_context(video.VideoWriter(compare_path(target), fps)) if compare else None
        )
        bar = stack.enter_context(_progress(total, "frame", quiet))
        for group in _batches(frames, batch):
            srs = upscaler.upscale_uint8(np.stack([frame for _, frame in group]))
            for (_, frame), sr in zip(group, srs, strict=True):
                out.write(sr)
                if side is not None:
                    side.write(side_by_side(frame, sr, upscaler.scale))
            bar.update(len(group))
    return out.frames


def upscale_video(
    upscaler: Upscaler, source: Path, target: Path, compare: bool, batch: int, quiet: bool
) -> tuple[int, str]:
    """A video file -> ``target`` at the same frame rate; returns the frame count and, when
    frames failed to decode (a truncated or damaged file), what is missing ("" when none).

    The frames decoded before a failure are encoded, so what could be read is not lost; the
    caller reports the output as incomplete."""
    info = video.probe(source)
    failure: list[str] = []

    def frames() -> Iterator[tuple[str, np.ndarray]]:
        index = 0
        try:
            for index, frame in enumerate(video.read_frames(source)):  # noqa: B007
                yield str(index), frame
            index += 1
        except video.VideoError as exc:
            if index == 0:
                raise
            failure.append(str(exc).rstrip("."))

    total = info.frames or None
    count = _encode(upscaler, frames(), target, info.fps, total, compare, batch, quiet)
    if count == 0:
        raise HarnessError(f"{source} has no frames to upscale.")
    missing = info.frames - count - (1 if info.estimated else 0)
    if not failure and missing <= 0:
        return count, ""
    said = f"{info.frames} frames" + (" (by its duration)" if info.estimated else "")
    why = failure[0] if failure else "the file ends early (truncated or damaged)"
    return count, (
        f"{source} states {said} but only the first {count} decoded ({why}): {target} holds "
        f"those {count} frames and is incomplete. Upscale an intact copy of the video."
    )


def upscale_frames_to_video(
    upscaler: Upscaler,
    source: Path,
    target: Path,
    fps: float,
    compare: bool,
    batch: int,
    quiet: bool,
) -> tuple[int, list[str]]:
    """A folder of frames (in name order) -> the video ``target`` at ``fps``.

    Unreadable frames are skipped and reported as :func:`upscale_folder` does; frames must
    share one size. Returns the frame count and one message per skipped file.
    """
    files = sorted(list_images(source), key=lambda f: f.name)
    if not files:
        raise HarnessError(f"{source} holds no images (.png, .jpg, .jpeg, .bmp).")
    skipped: list[str] = []

    def readable() -> Iterator[tuple[str, np.ndarray]]:
        for f in files:
            try:
                yield f.name, read_image(f)
            except ImageReadError as exc:
                skipped.append(str(exc))

    count = _encode(upscaler, readable(), target, fps, len(files), compare, batch, quiet)
    if count == 0:
        raise HarnessError(f"no frame of {source} could be read; nothing was encoded.")
    return count, skipped


def frames_to_video(kind: Kind, output: Path) -> bool:
    """Whether a folder INPUT is to become a video: ``-o`` names a video container (not an
    existing folder)."""
    return kind == "folder" and video.is_video_file(output) and not output.is_dir()


# --------------------------------------------------------------------------- checks before work


def input_kind(path: Path) -> Kind:
    """What ``path`` is to upscale: a folder, a video file or an image file."""
    if path.is_dir():
        return "folder"
    if video.is_video_file(path):
        return "video"
    if is_image_file(path):
        return "image"
    raise HarnessError(
        f"{path} is neither an image (.png, .jpg, .jpeg, .bmp), a video "
        f"({', '.join(video.VIDEO_SUFFIXES)}) nor a folder of images."
    )


def output_target(source: Path, output: Path) -> Path:
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


def check_output(input_path: Path, output: Path, kind: Kind, compare: bool) -> None:
    """Refuse an unusable ``-o`` before the model is loaded, so no work is lost to it."""
    if frames_to_video(kind, output):
        if output.suffix.lower() not in video.ENCODERS:
            raise HarnessError(
                f"-o {output}: a folder of frames is encoded as video, but not as "
                f"{output.suffix}; use one of {', '.join(sorted(video.ENCODERS))} (or a folder "
                "name for upscaled images)."
            )
        _check_folder(output.parent, f"-o {output}: its folder")
        return
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
    target = output_target(input_path, output)
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


# --------------------------------------------------------------------------- one call


@dataclass
class Upscaled:
    """What :func:`upscale_path` did: ``summary`` for a progress line, ``skipped`` files."""

    input_path: Path
    output: Path
    scale: int
    summary: str
    written: int
    skipped: list[str] = field(default_factory=list)
    incomplete: str = ""  # a video whose later frames did not decode: what is missing

    def skipped_error(self) -> HarnessError | None:
        """One error naming every unreadable image of a folder (or the frames of a video that
        did not decode), or ``None``."""
        if self.incomplete:
            return HarnessError(self.incomplete)
        if not self.skipped:
            return None
        count = self.written
        return HarnessError(
            f"{len(self.skipped)} of {len(self.skipped) + count} images in {self.input_path} "
            f"could not be read and were not upscaled (the other {count} are in "
            f"{self.output}/): "
            + "; ".join(m.rstrip(".") for m in self.skipped)
            + ". Fix or remove those files and upscale them again."
        )


def upscale_path(
    input_path: Path,
    output: Path,
    *,
    model: str | ModelRef,
    registry: Registry,
    tile: int = 0,
    overlap: int | None = None,
    compare: bool = False,
    batch: int = 1,
    quiet: bool = False,
    fps: float = 25.0,
) -> Upscaled:
    """Upscale an image, a folder or a video with ``model`` (any model reference) to ``output``.

    A folder with ``-o`` naming a video container (``.mp4``, ``.mkv``, ``.mov``, ``.avi``,
    ``.webm``) becomes that video at ``fps``. The output is checked before the model loads;
    unreadable images of a folder are skipped and listed in the result
    (:meth:`Upscaled.skipped_error`), the rest are written.
    """
    kind = input_kind(input_path)
    check_output(input_path, output, kind, compare)
    upscaler = load_upscaler(model, registry=registry, tile=tile, overlap=overlap)
    if frames_to_video(kind, output):
        count, skipped = upscale_frames_to_video(
            upscaler, input_path, output, fps, compare, batch, quiet
        )
        summary = f"{count} frames -> {output} ({fps:g} fps)"
        return Upscaled(input_path, output, upscaler.scale, summary, count, skipped)
    if kind == "folder":
        count, skipped = upscale_folder(upscaler, input_path, output, compare, batch, quiet)
        summary = f"{count} images -> {output}/"
        return Upscaled(input_path, output, upscaler.scale, summary, count, skipped)
    target = output_target(input_path, output)
    if kind == "video":
        frames, incomplete = upscale_video(upscaler, input_path, target, compare, batch, quiet)
        summary = f"{frames} frames -> {target}"
        return Upscaled(input_path, target, upscaler.scale, summary, frames, [], incomplete)
    upscale_image(upscaler, input_path, target, compare, quiet)
    summary = f"{input_path.name} -> {target}"
    return Upscaled(input_path, target, upscaler.scale, summary, 1)
