"""Image files <-> uint8 RGB arrays, whatever the file holds.

Every part of the harness that reads a picture goes through :func:`read_image`, so grey, grey
with alpha, palette, RGBA, CMYK, 1-bit and 16-bit images all arrive as the same thing: a
``uint8`` array of shape ``(H, W, 3)``. Alpha is dropped (the colour channels are kept as stored);
16-bit samples are scaled to 8 bits with rounding (``v * 255 / 65535``).

Every read is guarded by :func:`check_pixels`: width x height from the file header, before any
pixel is decoded, against :func:`max_pixels` (:data:`DEFAULT_MAX_PIXELS`, or
``$HARNESS_MAX_IMAGE_PIXELS``). Counting pixels, not bytes, is what catches a decompression bomb:
a 20000 x 20000 1-bit or palette PNG is about 50 KB on disk and 1.2 GB as RGB.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness import diskwrite
from harness.errors import HarnessError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
"""File types read as images from a folder (case-insensitive)."""

DEFAULT_MAX_PIXELS = 8192 * 8192
"""The most pixels (width x height) one image may have, refused from the header before decoding;
``$HARNESS_MAX_IMAGE_PIXELS`` changes it. 67 M pixels is a large photograph and what a 24 GB
machine processes with every command, with room to spare:
measured peaks grow by about 150 bytes per HR pixel for ``evaluate``, 110 bytes per input pixel
for ``upscale`` at x4 and 11 for ``data check`` (about 10, 7.4 and 0.7 GB at the limit, plus
TensorFlow's 1 GB). The earlier 16384 x 16384 let through images that needed 40-50 GB."""

MAX_PIXELS_ENV = "HARNESS_MAX_IMAGE_PIXELS"


class ImageReadError(HarnessError):
    """A file could not be read as an image."""


class ImageTooLargeError(ImageReadError):
    """An image's header announces more pixels than the limit; it was not decoded."""

    def __init__(self, message: str, width: int, height: int, limit: int) -> None:
        super().__init__(message)
        self.width = width
        self.height = height
        self.limit = limit


def max_pixels() -> int:
    """The pixel limit per image: ``$HARNESS_MAX_IMAGE_PIXELS`` if set, else the default.

    Read on every call, so a process (or a test) can change it without re-importing.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise HarnessError(
            f"{MAX_PIXELS_ENV}={raw!r} is not a positive number of pixels; write e.g. "
            f"{MAX_PIXELS_ENV}={2 * DEFAULT_MAX_PIXELS}, or unset it for the default "
            f"({DEFAULT_MAX_PIXELS})."
        )
    return value


def check_pixels(width: int, height: int, name: object, limit: int | None = None) -> None:
    """Raise :class:`ImageTooLargeError` when ``width * height`` exceeds ``limit``.

    ``limit`` defaults to :func:`max_pixels`. Call it with the header's size, before decoding:
    the pixel count is what decoding costs, whatever the mode or the file size.
    """
    limit = max_pixels() if limit is None else limit
    if width * height > limit:
        raise ImageTooLargeError(
            f"image {name} is {width}x{height} = {width * height} pixels, over the limit of "
            f"{limit} pixels per image, so it was not decoded (a guard against decompression "
            f"bombs). If it is genuine, raise the limit with {MAX_PIXELS_ENV}=N, or cut the "
            "image into smaller files.",
            width,
            height,
            limit,
        )


def use_own_pixel_limit() -> None:
    """Replace Pillow's decompression-bomb check by :func:`check_pixels` for this process.

    Pillow's check only warns at its limit and raises at twice it (below
    :data:`DEFAULT_MAX_PIXELS`, so legitimate large scans would be refused), its error loses the
    image's size, and it has no per-call setting: ``Image.MAX_IMAGE_PIXELS`` is process-wide.
    The CLI calls this at start; :func:`open_image` calls it before every open, so library use
    gets the same guard, and only once it reads an image through the harness.
    """
    Image.MAX_IMAGE_PIXELS = None


def open_image(source: str | os.PathLike[str] | BinaryIO) -> Image.Image:
    """``PIL.Image.open(source)`` under the harness's pixel limit (:func:`use_own_pixel_limit`).

    Only the header is read: call :func:`check_pixels` with the image's size before
    ``load()``. Every harness path that opens an image with Pillow goes through here.
    """
    use_own_pixel_limit()
    return Image.open(source)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` has one of :data:`IMAGE_SUFFIXES`."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and is_image_file(p)
    )


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    return np.floor(arr.astype(np.float64) * (255.0 / 65535.0) + 0.5).astype(np.uint8)


def to_rgb8(img: Image.Image) -> np.ndarray:
    """A PIL image in any mode as a ``uint8 (H, W, 3)`` array."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        grey = _sixteen_to_eight(np.asarray(img, dtype=np.uint16))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "I":  # 32-bit integer: PNG 16-bit grey is read this way by some Pillow versions
        arr = np.asarray(img, dtype=np.int64)
        top = 65535 if arr.max(initial=0) > 255 else 255
        grey = np.floor(np.clip(arr, 0, top) * (255.0 / top) + 0.5).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 255.0 if arr.max(initial=0.0) > 1.0 else 1.0
        grey = np.floor(np.clip(arr, 0.0, top) * (255.0 / top) + 0.5).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def _png_is_16bit_colour(path: Path) -> bool:
    """True for a 16-bit RGB(A) PNG (which Pillow would silently truncate to the high byte)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return (
        len(head) == 26
        and head[:8] == b"\x89PNG\r\n\x1a\n"
        and head[12:16] == b"IHDR"
        and head[24] == 16
        and head[25] in (2, 6)
    )


def _png_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


def _read_png16_colour(path: Path) -> np.ndarray:
    import tensorflow as tf  # only for this rare case: Pillow has no 16-bit RGB mode

    data = tf.io.read_file(str(path))
    arr = tf.io.decode_png(data, channels=3, dtype=tf.uint16).numpy()
    return _sixteen_to_eight(arr)


def read_image(path: str | os.PathLike[str], limit: int | None = None) -> np.ndarray:
    """Read any PNG/JPEG/BMP (grey, RGBA, palette, 16-bit, ...) as ``uint8 (H, W, 3)`` RGB.

    Raises :class:`ImageReadError` naming the file when it is missing, truncated or not an image,
    and :class:`ImageTooLargeError` (before decoding) when it has more than ``limit`` pixels
    (default :func:`max_pixels`).
    """
    path = Path(path)
    limit = max_pixels() if limit is None else limit
    try:
        if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
            check_pixels(*_png_size(path), path, limit)
            return _read_png16_colour(path)
        with open_image(path) as img:
            check_pixels(img.width, img.height, path, limit)
            img.load()
            return to_rgb8(img)
    except ImageTooLargeError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    except Exception as exc:  # e.g. a tf error decoding a damaged 16-bit PNG
        raise ImageReadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def probe_image(path: str | os.PathLike[str], limit: int | None = None) -> tuple[int, int, str]:
    """``(width, height, mode)`` from the file header, without decoding the pixels.

    PNG files also get their chunk checksums verified, which catches most truncated files.
    Raises :class:`ImageReadError` when the header is unreadable, and
    :class:`ImageTooLargeError` when the image has more than ``limit`` pixels (default
    :func:`max_pixels`): such a file could be listed but never read.
    """
    path = Path(path)
    limit = max_pixels() if limit is None else limit
    try:
        with open_image(path) as img:
            size, mode, fmt = img.size, img.mode, img.format
        check_pixels(size[0], size[1], path, limit)
        if fmt == "PNG":
            with open_image(path) as img:
                img.verify()
        if fmt == "PNG" and _png_is_16bit_colour(path):
            mode = "RGB;16"
        return size[0], size[1], mode
    except ImageTooLargeError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist.") from None
    except Exception as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None


def to_uint8(x_float01: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` -> uint8, clipped and rounded half up (as MATLAB's ``uint8(...)``).

    The one 8-bit rounding rule: evaluation scores, upscaled files, served images and sample
    grids all go through it, so what is served is what was scored.
    """
    x = np.asarray(x_float01, dtype=np.float64) * 255.0
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """A ``uint8 (H, W, 3)`` (or ``(H, W)``) array as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write a ``uint8 (H, W, 3)`` (or ``(H, W)``) array as PNG, creating parent folders
    (atomically: :mod:`harness.diskwrite`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    diskwrite.write_bytes(path, encode_png(image))


def encode_png16(image: np.ndarray) -> bytes:
    """A minimal 16-bit PNG encoder (grey ``(H, W)`` or RGB ``(H, W, 3)`` uint16).

    Pillow cannot write 16-bit colour PNGs; this exists so such files can be made for tests and
    for exporting high-bit-depth results.
    """
    arr = np.asarray(image, dtype=np.uint16)
    colour = 2 if arr.ndim == 3 else 0
    h, w = arr.shape[:2]
    rows = arr.astype(">u2").reshape(h, -1).view(np.uint8).reshape(h, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right edges so height and width are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def centre_crop(image: np.ndarray, max_side: int, multiple: int = 1) -> np.ndarray:
    """The centre of ``image`` at most ``max_side`` pixels each way, sides a ``multiple``."""
    h, w = image.shape[:2]
    side = max(multiple, max_side - max_side % multiple)
    th, tw = min(h, side), min(w, side)
    th, tw = th - th % multiple, tw - tw % multiple
    top, left = (h - th) // 2, (w - tw) // 2
    return image[top : top + th, left : left + tw]


def describe(paths: Sequence[Path] | Iterable[Path], limit: int = 8) -> str:
    """A short, readable list of file names for messages: ``a.png, b.png and 3 more``."""
    names = [str(p) for p in paths]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
