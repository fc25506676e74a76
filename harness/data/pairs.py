"""Paired data: HR images and their given LR images (real-world captures, or LR made once by
``harness data degrade``), matched by file name and checked against the scale.

An HR file ``name.ext`` pairs with the LR file of the same stem, or with ``<stem>x<scale>``
(BasicSR's DIV2K naming, ``0001x4.png``), in any image format. The HR must be the LR times the
scale, or up to ``scale - 1`` pixels larger on a side (the extra right and bottom pixels are
cropped, as the evaluation protocol crops HR to a multiple of the scale). An HR file without an
LR partner, or a pair whose sizes do not fit, is a :class:`DataError` naming the files; LR files
without an HR partner are ignored.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data import images as imageio
from harness.data.folders import (
    DataError,
    DataWarning,
    ImageInfo,
    cache_path,
    folder_label,
    resolve,
    scan,
)
from harness.errors import HarnessError

if TYPE_CHECKING:
    import tensorflow as tf

    from harness.config import DataConfig, PairedFolder


class PairingError(HarnessError):
    """HR and LR folders do not pair up."""


@dataclass(frozen=True)
class Pair:
    """One HR file, its LR partner and the LR size (``lr_width``, ``lr_height``)."""

    hr: Path
    lr: Path
    lr_width: int
    lr_height: int


def _lr_index(lr_folder: str) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in resolve(lr_folder):
        if path.stem in index:
            raise PairingError(
                f"LR folder {lr_folder} holds two files with the stem {path.stem!r} "
                f"({index[path.stem].name} and {path.name}); keep one, so each HR file has one LR."
            )
        index[path.stem] = path
    return index


def match(hr_files: Sequence[Path], hr_folder: str, lr_folder: str, scale: int) -> list[Pair]:
    """Each HR file's LR partner in ``lr_folder``, sizes checked from the headers."""
    index = _lr_index(lr_folder)
    limit = imageio.max_pixels()
    missing: list[str] = []
    pairs: list[Pair] = []
    for hr in hr_files:
        lr = index.get(hr.stem) or index.get(f"{hr.stem}x{scale}")
        if lr is None:
            missing.append(hr.name)
            continue
        try:
            hw, hh, _ = imageio.probe_image(hr, limit)
            lw, lh, _ = imageio.probe_image(lr, limit)
        except imageio.ImageReadError as exc:
            raise PairingError(f"paired data: {exc}") from None
        if not (lw * scale <= hw < (lw + 1) * scale and lh * scale <= hh < (lh + 1) * scale):
            raise PairingError(
                f"paired data {hr_folder} / {lr_folder}: HR {hr.name} is {hw}x{hh} px but LR "
                f"{lr.name} is {lw}x{lh} px; at scale {scale} the HR must be "
                f"{lw * scale}x{lh * scale} (or up to {scale - 1} px larger a side, cropped). "
                "Check [data] scale, or make the LR again (harness data degrade)."
            )
        pairs.append(Pair(hr, lr, lw, lh))
    if missing:
        raise PairingError(
            f"paired data {hr_folder} / {lr_folder}: {len(missing)} HR files have no LR file "
            f"of the same name (or <name>x{scale}): {imageio.describe(missing)}. Add them to "
            f"{lr_folder} or remove them from {hr_folder}."
        )
    return pairs


def read_pair(pair: Pair, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 HR cropped to LR * scale, uint8 LR)``."""
    lr = imageio.read_image(pair.lr)
    hr = imageio.read_image(pair.hr)
    h, w = lr.shape[0] * scale, lr.shape[1] * scale
    if hr.shape[0] < h or hr.shape[1] < w:  # the header said otherwise: a damaged file
        raise imageio.ImageReadError(f"{pair.hr} decodes smaller than its header")
    return hr[:h, :w], lr


def load_pairs(
    hr_folder: str,
    lr_folder: str,
    scale: int,
    max_side: int = 0,
    limit: int = 0,
    prefix: bool = False,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, uint8 HR, uint8 LR)`` of a paired folder, for validation and evaluation.

    ``max_side`` centre-crops both (aligned) so the HR is at most that many pixels a side;
    ``limit`` keeps the first N by name.
    """
    infos = scan([hr_folder], 2 * scale + 11, "evaluation")
    if limit > 0:
        infos = infos[:limit]
    pairs = match([i.path for i in infos], hr_folder, lr_folder, scale)
    label = folder_label(hr_folder)
    out = []
    damaged: list[str] = []
    for pair in pairs:
        try:
            hr, lr = read_pair(pair, scale)
        except imageio.ImageReadError as exc:
            damaged.append(f"{pair.hr.name} ({str(exc).rsplit(': ', 1)[-1]})")
            continue
        if max_side:
            side = max(max_side // scale, 1)
            top, left = max((lr.shape[0] - side) // 2, 0), max((lr.shape[1] - side) // 2, 0)
            lr = lr[top : top + side, left : left + side]
            hr = hr[top * scale : (top + side) * scale, left * scale : (left + side) * scale]
        name = f"{label}/{pair.hr.stem}" if prefix else pair.hr.stem
        out.append((name, hr, lr))
    if damaged:
        warnings.warn(
            f"skipped {len(damaged)} pairs in {hr_folder} / {lr_folder} that cannot be "
            f"decoded: {imageio.describe(damaged)}.",
            DataWarning,
            stacklevel=2,
        )
    if not out:
        raise PairingError(f"none of the pairs in {hr_folder} / {lr_folder} can be decoded.")
    return out


# --------------------------------------------------------------------------- training


def decoded_pairs(data: DataConfig, folders: Sequence[PairedFolder]) -> tuple[tf.data.Dataset, int]:
    """Decoded ``(hr, lr)`` uint8 pairs of the paired folders (HR cropped to LR * scale)."""
    import tensorflow as tf  # heavy: this module's image readers run without TensorFlow

    matched: list[Pair] = []
    for folder in folders:
        infos = scan([folder.hr], data.patch, "training")
        matched += match([i.path for i in infos], folder.hr, folder.lr, data.scale)
    lr_patch = data.patch // data.scale
    matched = [p for p in matched if min(p.lr_width, p.lr_height) >= lr_patch]
    if not matched:
        raise DataError(
            f"no training pairs in {', '.join(f.hr for f in folders)} with an LR of at least "
            f"{lr_patch} px a side."
        )
    scale = data.scale

    def decode(hr: bytes, lr: bytes) -> tuple[np.ndarray, np.ndarray]:
        pair = Pair(Path(hr.decode()), Path(lr.decode()), 0, 0)
        try:
            return read_pair(pair, scale)
        except imageio.ImageReadError as exc:
            warnings.warn(f"skipped while decoding: {exc}", DataWarning, stacklevel=2)
            return np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0, 3), np.uint8)

    def load(hr: tf.Tensor, lr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        hr_img, lr_img = tf.numpy_function(decode, [hr, lr], [tf.uint8, tf.uint8])
        return tf.ensure_shape(hr_img, [None, None, 3]), tf.ensure_shape(lr_img, [None, None, 3])

    paths = tf.data.Dataset.from_tensor_slices(
        ([str(p.hr) for p in matched], [str(p.lr) for p in matched])
    )
    ds = paths.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.filter(lambda hr, lr: tf.reduce_min(tf.shape(lr)[:2]) >= lr_patch)
    if data.cache == "memory":
        ds = ds.cache()
    elif data.cache not in ("none", ""):
        infos = [ImageInfo(p, 0, 0, "") for m in matched for p in (m.hr, m.lr)]
        ds = ds.cache(cache_path(data.cache + ".paired", infos))
    return ds, len(matched)


def paired_patch(
    hr_image: tf.Tensor, lr_image: tf.Tensor, key: tf.Tensor, patch: int, scale: int, augment: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """Aligned random crops: LR at (top, left), HR at (top * scale, left * scale), the same
    flip and rotation; uint8 ``(patch, patch, 3)`` and ``(patch / scale, ...)``."""
    import tensorflow as tf  # heavy: this module's image readers run without TensorFlow

    small = patch // scale
    shape = tf.shape(lr_image)
    top = tf.random.stateless_uniform(
        [], key, minval=0, maxval=shape[0] - small + 1, dtype=tf.int32
    )
    left = tf.random.stateless_uniform(
        [], key + [0, 1 << 40], minval=0, maxval=shape[1] - small + 1, dtype=tf.int32
    )
    lr = lr_image[top : top + small, left : left + small]
    hr = hr_image[top * scale : top * scale + patch, left * scale : left * scale + patch]
    if augment:
        choice = tf.random.stateless_uniform(
            [2], key + [0, 2 << 40], minval=0, maxval=4, dtype=tf.int32
        )
        flip = choice[0] >= 2
        hr = tf.cond(flip, lambda: tf.reverse(hr, axis=[1]), lambda: hr)
        lr = tf.cond(flip, lambda: tf.reverse(lr, axis=[1]), lambda: lr)
        hr, lr = tf.image.rot90(hr, k=choice[1]), tf.image.rot90(lr, k=choice[1])
    return tf.ensure_shape(hr, [patch, patch, 3]), tf.ensure_shape(lr, [small, small, 3])
