"""Image files <-> uint8 RGB arrays, whatever the file holds.

Every part of the harness that reads a picture goes through :func:`read_image`, so grey, grey
with alpha, palette, RGBA, CMYK, 1-bit and 16-bit images all arrive as the same thing: a
``uint8`` array of shape ``(H, W, 3)``. Alpha is dropped (the colour channels are kept as stored);
16-bit samples are scaled to 8 bits with rounding (``v * 255 / 65535``).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.errors import HarnessError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
"""File types read as images from a folder (case-insensitive)."""

Image.MAX_IMAGE_PIXELS = 16384 * 16384  # large photographs are legitimate data, not a bomb


class ImageReadError(HarnessError):
    """A file could not be read as an image."""


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


def _read_png16_colour(path: Path) -> np.ndarray:
    import tensorflow as tf  # only for this rare case: Pillow has no 16-bit RGB mode

    data = tf.io.read_file(str(path))
    arr = tf.io.decode_png(data, channels=3, dtype=tf.uint16).numpy()
    return _sixteen_to_eight(arr)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read any PNG/JPEG/BMP (grey, RGBA, palette, 16-bit, ...) as ``uint8 (H, W, 3)`` RGB.

    Raises :class:`ImageReadError` naming the file when it is missing, truncated or not an image.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".png" and _png_is_16bit_colour(path):
            return _read_png16_colour(path)
        with Image.open(path) as img:
            img.load()
            return to_rgb8(img)
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None
    except Exception as exc:  # e.g. a tf error decoding a damaged 16-bit PNG
        raise ImageReadError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def probe_image(path: str | os.PathLike[str]) -> tuple[int, int, str]:
    """``(width, height, mode)`` from the file header, without decoding the pixels.

    PNG files also get their chunk checksums verified, which catches most truncated files.
    Raises :class:`ImageReadError` when the header is unreadable.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            size, mode, fmt = img.size, img.mode, img.format
        if fmt == "PNG":
            with Image.open(path) as img:
                img.verify()
        if fmt == "PNG" and _png_is_16bit_colour(path):
            mode = "RGB;16"
        return size[0], size[1], mode
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist.") from None
    except Exception as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from None


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write a ``uint8 (H, W, 3)`` (or ``(H, W)``) array as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG")


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
