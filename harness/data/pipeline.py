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

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.config import DataConfig, PairedFolder
from harness.data import images as imageio
from harness.data.folders import (
    DataError,
    DataWarning,
    ImageInfo,
    cache_path,
    folder_label,
    probe_all,
    resolve,
    scan,
)
from harness.data.pairs import decoded_pairs, load_pairs, match, paired_patch
from harness.errors import HarnessError
from harness.plugin_api.registry import build_registry

if TYPE_CHECKING:
    from collections.abc import Callable

    import tensorflow as tf

    from harness.plugin_api.registry import Registry

    Degrade = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


# --------------------------------------------------------------------------- training


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
    import tensorflow as tf  # heavy: this module's image readers run without TensorFlow

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
        ds = ds.cache(cache_path(cache, infos))
    return ds


def _random_patch(
    image: tf.Tensor, index: tf.Tensor, seed: int, patch: int, augment: bool
) -> tf.Tensor:
    """A random ``patch`` crop of ``image`` (flipped and rotated when ``augment``), keyed by the
    seed and the sample's index: a paired crop of the image with itself."""
    import tensorflow as tf  # heavy: this module's image readers run without TensorFlow

    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])
    hr, _ = paired_patch(image, image, key, patch, 1, augment)
    return hr


def to_8bit_levels(x: tf.Tensor) -> tf.Tensor:
    """``x`` clipped to ``[0, 1]`` and rounded (half up) to the nearest of the 256 levels."""
    import tensorflow as tf  # heavy: this module's image readers run without TensorFlow

    return tf.floor(tf.clip_by_value(x, 0.0, 1.0) * 255.0 + 0.5) / 255.0


def degradation(data: DataConfig, registry: Registry | None = None) -> Degrade:
    """The ``[data.degradation]`` plugin built for ``data.scale``: ``degrade(hr, seed) -> lr``."""
    if registry is None:
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


def check_patch(data: DataConfig) -> None:
    """Refuse a ``data.patch`` that no training image can give, from the image headers alone:
    before any image is decoded and before the networks are built for that patch (they grow
    with it: the SRGAN discriminator of a 4096 px patch is tens of GB). A few images smaller
    than the patch are left to :func:`training_dataset`'s warning, and folders that cannot be
    read to its errors."""
    scale, best, largest = data.scale, 0, ""
    for spec in data.train:
        label = folder_label(spec.lr if isinstance(spec, PairedFolder) else spec)
        try:
            if isinstance(spec, PairedFolder):
                hr = [i.path for i in probe_all(resolve(spec.hr)) if isinstance(i, ImageInfo)]
                sizes = [
                    (
                        min(p.lr_width, p.lr_height) * scale,
                        f"{label}/{p.lr.name} ({p.lr_width}x{p.lr_height} LR)",
                    )
                    for p in match(hr, spec.hr, spec.lr, scale)
                ]
            else:
                sizes = [
                    (
                        min(i.width, i.height) // scale * scale,
                        f"{label}/{i.path.name} ({i.width}x{i.height})",
                    )
                    for i in probe_all(resolve(spec))
                    if isinstance(i, ImageInfo)
                ]
        except HarnessError:
            continue
        for side, name in sizes:
            if side > best or not largest:
                best, largest = side, name
    if not largest or best >= data.patch:
        return
    fix = f"give data.patch at most {best} (--set data.patch={best}), or add" if best else "add"
    raise DataError(
        f"data.patch = {data.patch} is larger than every training image: the largest, "
        f"{largest}, gives at most a {best} px patch at scale {scale}. To train, {fix} images "
        f"of at least {data.patch} px a side to [data] train."
    )


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
    import tensorflow as tf  # heavy: this module's image readers run without TensorFlow

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
