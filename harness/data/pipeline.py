"""Image folders -> tf.data training batches, and validation images.

Training samples follow SRGAN: a random ``patch`` x ``patch`` HR crop, optionally flipped and
rotated by a multiple of 90 degrees, and its LR made by the ``[data.degradation]`` plugin
(``bicubic`` by default: MATLAB-compatible bicubic downsampling, the weights of
:mod:`harness.measures.bicubic`), clipped and rounded to 8 bits. A ``{hr, lr}`` entry of
``[data] train`` gives its LR instead (:mod:`harness.data.pairs`): aligned crops of both. LR is
in ``[0, 1]``, HR in ``[-1, 1]``.

The pipeline decodes each image once (in parallel) and caches the decoded images in memory or in
a cache file; crops then come from the cache. Randomness is stateless and keyed by the seed and
the sample's position in the stream, so a seed gives the same batches on every run.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.config import DataConfig, PairedFolder
from harness.data import images as imageio
from harness.errors import HarnessError, HarnessWarning

if TYPE_CHECKING:
    from collections.abc import Callable

    import tensorflow as tf

    from harness.plugin_api.registry import Registry

    Degrade = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

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


# --------------------------------------------------------------------------- folders


def skimage_folder() -> Path:
    """The folder of scikit-image's bundled data files."""
    import skimage.data

    return Path(skimage.data.__file__).parent


def _download_hint(folder: Path) -> str:
    from harness.data.datasets import DATASETS

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
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        probed = list(pool.map(lambda p: _probe(p, limit), paths))
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


# --------------------------------------------------------------------------- training


def _cache_path(cache: str, infos: Sequence[ImageInfo]) -> str:
    """A cache file name that changes whenever the list of files (or their contents) changes."""
    digest = hashlib.sha256()
    for info in infos:
        st = info.path.stat()
        digest.update(f"{info.path.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    path = Path(cache).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"{path}.{digest.hexdigest()[:12]}"


def _decode(path: bytes) -> np.ndarray:
    try:
        return imageio.read_image(path.decode())
    except imageio.ImageReadError as exc:
        warnings.warn(f"skipped while decoding: {exc}", DataWarning, stacklevel=2)
        return np.zeros((0, 0, 3), np.uint8)


def decoded_images(
    infos: Sequence[ImageInfo], cache: str = "memory", min_side: int = 1
) -> tf.data.Dataset:
    """A dataset of decoded uint8 ``(H, W, 3)`` images, decoded once and cached.

    ``cache`` is ``"memory"``, ``"none"`` or a file path (a suffix keyed by the file list is
    added, so a changed folder never reads a stale cache).
    """
    import tensorflow as tf

    paths = tf.data.Dataset.from_tensor_slices([str(i.path) for i in infos])
    ds = paths.map(
        lambda p: tf.ensure_shape(tf.numpy_function(_decode, [p], tf.uint8), [None, None, 3]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.filter(lambda img: tf.reduce_min(tf.shape(img)[:2]) >= min_side)
    if cache == "memory":
        ds = ds.cache()
    elif cache not in ("none", ""):
        ds = ds.cache(_cache_path(cache, infos))
    return ds


def _random_patch(
    image: tf.Tensor, index: tf.Tensor, seed: int, patch: int, augment: bool
) -> tf.Tensor:
    """A random ``patch`` crop of ``image`` (flipped and rotated when ``augment``), keyed by the
    seed and the sample's index: a paired crop of the image with itself."""
    import tensorflow as tf

    from harness.data.pairs import paired_patch

    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    hr, _ = paired_patch(image, image, key, patch, 1, augment)
    return hr


def to_8bit_levels(x: tf.Tensor) -> tf.Tensor:
    """``x`` clipped to ``[0, 1]`` and rounded (half up) to the nearest of the 256 levels."""
    import tensorflow as tf

    return tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255.0 + 0.5) / 255.0


def degradation(data: DataConfig, registry: Registry | None = None) -> Degrade:
    """The ``[data.degradation]`` plugin built for ``data.scale``: ``degrade(hr, seed) -> lr``."""
    if registry is None:
        from harness.plugin_api.registry import build_registry

        registry = build_registry()
    cfg = data.degradation
    factory = registry.factory("degradation", cfg.name, where="[data.degradation]")
    try:
        return factory(scale=data.scale, **cfg.params)
    except HarnessError:
        raise
    except Exception as exc:
        raise DataError(
            f'degradation "{cfg.name}" cannot be built with scale {data.scale} and '
            f"{cfg.params}: {type(exc).__name__}: {exc}. Check [data.degradation]."
        ) from exc


def training_dataset(
    data: DataConfig, batch_size: int, seed: int, registry: Registry | None = None
) -> tf.data.Dataset:
    """Infinite ``(lr, hr)`` batches: float32 ``(B, p/s, p/s, 3)`` in ``[0, 1]`` and
    ``(B, p, p, 3)`` in ``[-1, 1]``; the same batches for the same seed.

    Folders in ``data.train`` are merged. A plain folder's LR is made per crop by the
    ``[data.degradation]`` plugin (from ``registry``; the installed plugins when ``None``),
    seeded by ``seed`` and the sample's index, then clipped and rounded to 8-bit levels; a
    ``{hr, lr}`` pair's LR is the aligned crop of its given LR image. Images smaller than
    ``data.patch`` are skipped with a warning; missing folders and empty results are
    :class:`DataError`.
    """
    import tensorflow as tf

    from harness.data.pairs import decoded_pairs, paired_patch

    if data.patch % data.scale:
        raise DataError(f"[data] patch {data.patch} must be a multiple of scale {data.scale}.")
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, not {batch_size}.")
    plain = [s for s in data.train if not isinstance(s, PairedFolder)]
    paired = [s for s in data.train if isinstance(s, PairedFolder)]
    patch, augment, scale = data.patch, data.augment, data.scale
    nothing = tf.zeros([0, 0, 3], tf.uint8)
    parts: list[tf.data.Dataset] = []
    count = 0
    degrade = None
    if plain:
        infos = scan(plain, data.patch, "training")
        images = decoded_images(infos, data.cache, data.patch)
        parts.append(images.map(lambda img: (img, nothing, tf.constant(False))))
        count += len(infos)
        degrade = degradation(data, registry)
    if paired:
        pairs, n = decoded_pairs(data, paired)
        parts.append(pairs.map(lambda hr, lr: (hr, lr, tf.constant(True))))
        count += n
    images = parts[0] if len(parts) == 1 else parts[0].concatenate(parts[1])
    shuffled = images.repeat().shuffle(min(count, 256), seed=seed, reshuffle_each_iteration=True)

    def from_hr(index: tf.Tensor, hr_image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        hr = _random_patch(hr_image, index, seed, patch, augment)
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)]) + [0, 3 << 40]
        lr = degrade(tf.cast(hr, tf.float32) / 255.0, key)
        lr = tf.ensure_shape(tf.cast(lr, tf.float32), [patch // scale, patch // scale, 3])
        return to_8bit_levels(lr), hr

    def from_pair(
        index: tf.Tensor, hr_image: tf.Tensor, lr_image: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
        hr, lr = paired_patch(hr_image, lr_image, key, patch, scale, augment)
        return tf.cast(lr, tf.float32) / 255.0, hr

    def sample(index, hr_image, lr_image, is_pair):
        if not paired:
            lr, hr = from_hr(index, hr_image)
        elif not plain:
            lr, hr = from_pair(index, hr_image, lr_image)
        else:
            lr, hr = tf.cond(
                is_pair,
                lambda: from_pair(index, hr_image, lr_image),
                lambda: from_hr(index, hr_image),
            )
        return lr, tf.cast(hr, tf.float32) / 127.5 - 1.0

    ds = shuffled.enumerate().map(
        lambda i, item: sample(i, *item), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    ds = ds.batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- validation


def load_folder(
    spec: str, scale: int, max_side: int = 0, limit: int = 0, prefix: bool = False
) -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 HR)`` for the images of one folder spec, cropped to multiples of ``scale``.

    Unreadable, undecodable (truncated) or tiny images (under ``2 * scale + 11`` px, too small
    for SSIM after the border crop) are skipped with a warning.
    """
    infos = scan([spec], 2 * scale + 11, "evaluation")
    if limit > 0:
        infos = infos[:limit]
    label = folder_label(spec)
    out = []
    damaged: list[str] = []
    for info in infos:
        try:
            img = imageio.read_image(info.path)
        except imageio.ImageReadError as exc:  # a header that reads, then pixels that do not
            damaged.append(f"{info.path.name} ({str(exc).rsplit(': ', 1)[-1]})")
            continue
        img = imageio.centre_crop(img, max_side, scale) if max_side else imageio.modcrop(img, scale)
        name = f"{label}/{info.path.stem}" if prefix else info.path.stem
        out.append((name, img))
    if damaged:
        warnings.warn(
            f"skipped {len(damaged)} of {len(infos)} evaluation images in {spec} that cannot be "
            f"decoded: {imageio.describe(damaged)}.",
            DataWarning,
            stacklevel=2,
        )
    if not out:
        raise DataError(
            f"none of the {len(infos)} evaluation images in {spec} can be decoded; list them "
            f"with `harness data check {spec}`."
        )
    return out


def validation_images(data: DataConfig) -> list[tuple[str, np.ndarray]]:
    """``(name, uint8 HR (H, W, 3))`` for every validation image, H and W multiples of scale;
    ``(name, uint8 HR, uint8 LR)`` for the images of a ``{hr, lr}`` entry (the given LR, which
    :func:`harness.measures.scoring.evaluate` then uses instead of bicubic).

    Names are ``<folder>/<file stem>``. ``data.val_limit`` keeps the first N (by folder, then
    name); ``data.val_max_side`` centre-crops each to at most that many pixels a side.
    """
    from harness.data.pairs import load_pairs

    out: list[tuple[str, np.ndarray]] = []
    for spec in data.val:
        if isinstance(spec, PairedFolder):
            found = load_pairs(spec.hr, spec.lr, data.scale, data.val_max_side, prefix=True)
            out.extend(found)  # type: ignore[arg-type]
            continue
        out.extend(load_folder(spec, data.scale, data.val_max_side, prefix=True))
    if data.val_limit > 0:
        out = out[: data.val_limit]
    return out
