"""Image folders: folder specs resolved to files, scanned from their headers, and cache names.

A folder spec is a path or ``"skimage"`` (the photographs shipped with scikit-image). A scan
reads only image headers (sizes checked against the pixel limit before any decoding) and reports
what it skipped in one :class:`DataWarning`; nothing usable is a :class:`DataError`. The
training pipeline (:mod:`harness.data.pipeline`) and paired data (:mod:`harness.data.pairs`)
both start here.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.data import images as imageio
from harness.data.datasets import DATASETS
from harness.errors import HarnessError, HarnessWarning

SKIMAGE = "skimage"
"""The folder spec meaning the real photographs shipped inside scikit-image's wheel."""

SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
)
"""The natural colour photographs among scikit-image's data files (offline default data)."""


class DataError(HarnessError):
    """Training or validation data cannot be found or read."""


class DataWarning(HarnessWarning):
    """Some images were skipped (unreadable or too small)."""


def skimage_folder() -> Path:
    """The folder of scikit-image's bundled data files."""
    import skimage.data  # scikit-image's package import is slow; only this spec needs it

    return Path(skimage.data.__file__).parent


def _download_hint(folder: Path) -> str:
    key = folder.name.lower().replace("-", "_")
    aliases = {"b100": "bsd100", "div2k_train_hr": "div2k", "div2k_valid_hr": "div2k_valid"}
    key = aliases.get(key, key)
    if key in DATASETS:
        return f"Get it with `harness data download {key} --dest {folder.parent}`."
    known = ", ".join(sorted(DATASETS))
    return (
        f"Check the path, or fetch a public data set with `harness data download NAME --dest DIR` "
        f'(NAME one of {known}), or use "{SKIMAGE}" for the photos shipped with scikit-image.'
    )


def resolve(spec: str) -> list[Path]:
    """The image files of one folder spec (a path, or ``"skimage"``), sorted by name."""
    if spec == SKIMAGE:
        base = skimage_folder()
        return [base / name for name in SKIMAGE_PHOTOS if (base / name).is_file()]
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(f"data folder {folder} {what}. {_download_hint(folder)}")
    return imageio.list_images(folder)


def folder_label(spec: str) -> str:
    """A short name for a folder spec (its last path component)."""
    return SKIMAGE if spec == SKIMAGE else Path(spec).expanduser().resolve().name or spec


@dataclass(frozen=True)
class ImageInfo:
    """One usable image file and its header facts."""

    path: Path
    width: int
    height: int
    mode: str


def _probe(path: Path, limit: int) -> ImageInfo | imageio.ImageReadError:
    try:
        w, h, mode = imageio.probe_image(path, limit)
    except imageio.ImageReadError as exc:
        return exc
    return ImageInfo(path, w, h, mode)


def probe_all(
    paths: Sequence[Path], limit: int | None = None
) -> list[ImageInfo | imageio.ImageReadError]:
    """Each file's header facts, or the error that says why it cannot be read (over the pixel
    ``limit``, default :func:`harness.data.images.max_pixels`, included); nothing is decoded."""
    limit = imageio.max_pixels() if limit is None else limit
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(lambda p: _probe(p, limit), paths))


def scan(specs: Sequence[str], min_side: int, purpose: str = "training") -> list[ImageInfo]:
    """The readable images of ``specs`` with both sides at least ``min_side``.

    Skipped files are reported in one :class:`DataWarning` that counts and names them; no image
    at all is a :class:`DataError` naming the folders read. Images over the pixel limit
    (:func:`harness.data.images.max_pixels`) are skipped from their header, never decoded.
    """
    if not specs:
        raise DataError(f"no {purpose} data folders given: list at least one in [data].")
    paths: list[Path] = []
    for spec in specs:
        paths.extend(resolve(spec))
    limit = imageio.max_pixels()
    probed = probe_all(paths, limit)
    usable: list[ImageInfo] = []
    unreadable: list[str] = []
    large: list[str] = []
    small: list[str] = []
    for path, info in zip(paths, probed, strict=True):
        if isinstance(info, imageio.ImageTooLargeError):
            large.append(f"{path.name} ({info.width}x{info.height})")
        elif isinstance(info, imageio.ImageReadError):
            unreadable.append(path.name)
        elif min(info.width, info.height) < min_side:
            small.append(f"{path.name} ({info.width}x{info.height})")
        else:
            usable.append(info)
    if unreadable or large or small:
        parts = []
        if unreadable:
            parts.append(f"{len(unreadable)} unreadable: {imageio.describe(unreadable)}")
        if large:
            parts.append(
                f"{len(large)} over the limit of {limit} pixels (not decoded; raise it with "
                f"{imageio.MAX_PIXELS_ENV}=N): {imageio.describe(large)}"
            )
        if small:
            parts.append(
                f"{len(small)} smaller than {min_side} px on a side: {imageio.describe(small)}"
            )
        skipped = len(unreadable) + len(large) + len(small)
        warnings.warn(
            f"skipped {skipped} of {len(paths)} {purpose} images in "
            f"{', '.join(specs)}: " + "; ".join(parts) + ".",
            DataWarning,
            stacklevel=3,
        )
    if not usable:
        raise DataError(
            f"no usable {purpose} images in {', '.join(specs)} ({len(paths)} files with suffixes "
            f"{', '.join(imageio.IMAGE_SUFFIXES)} found; each needs sides of at least "
            f"{min_side} px). Point [data] at folders of images."
        )
    return usable


def cache_path(cache: str, infos: Sequence[ImageInfo]) -> str:
    """A cache file name that changes whenever the list of files (or their contents) changes."""
    digest = hashlib.sha256()
    for info in infos:
        st = info.path.stat()
        digest.update(f"{info.path.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    path = Path(cache).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"{path}.{digest.hexdigest()[:12]}"
