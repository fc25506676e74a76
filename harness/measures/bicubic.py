"""MATLAB ``imresize(..., 'bicubic')`` in NumPy: the protocol's LR and the bicubic baseline.

A port of MATLAB's ``imresize`` algorithm as separable weight matrices (the cubic kernel
a = -0.5, widened by the scale when shrinking, symmetric edges). The training pipeline's
TensorFlow version builds the same weights from tensors (:mod:`harness.data.resize`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

from harness.data.images import to_uint8
from harness.errors import HarnessError

Upscaler = Callable[[np.ndarray], np.ndarray]
"""``upscale(lr float32 (N, h, w, 3) in [0, 1]) -> float32 (N, h*s, w*s, 3) in [0, 1]``."""


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@functools.lru_cache(maxsize=256)
def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """The ``(out_len, in_len)`` float64 matrix of MATLAB ``imresize`` along one axis.

    ``scale`` is out/in (0.25 to downsample 4x). Mirrors MATLAB's ``contributions``: kernel width
    4, widened by ``1/scale`` when shrinking (antialiasing), weights normalised per output pixel,
    out-of-range taps folded back symmetrically.
    """
    kernel_width = 4.0
    if scale < 1:

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    folded = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(matrix, (rows, folded.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def imresize(image: np.ndarray, scale: float, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB ``imresize(image, scale, 'bicubic')`` on float data, no rounding or clipping.

    ``image`` is ``(H, W, C)`` or ``(N, H, W, C)``; returns float64 of the same rank.
    """
    arr = np.asarray(image, dtype=np.float64)
    squeeze = arr.ndim == 3
    if squeeze:
        arr = arr[None]
    if arr.ndim != 4:
        raise HarnessError(f"imresize expects (H, W, C) or (N, H, W, C), not shape {arr.shape}.")
    h, w = arr.shape[1:3]
    oh, ow = out_hw or (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
    rows = resize_matrix(h, oh, float(scale))
    cols = resize_matrix(w, ow, float(scale))
    out = np.einsum("oh,nhwc->nowc", rows, arr, optimize=True)
    out = np.einsum("pw,nowc->nopc", cols, out, optimize=True)
    return out[0] if squeeze else out


def _check_divisible(shape: Sequence[int], scale: int) -> None:
    h, w = shape
    if h % scale or w % scale:
        raise HarnessError(
            f"an HR image of {w}x{h} pixels is not a multiple of scale {scale}; crop it first "
            "(harness.data.images.modcrop)."
        )


def bicubic_downsample(hr_uint8: np.ndarray, scale: int, quantize: bool = True) -> np.ndarray:
    """LR float32 in ``[0, 1]`` from a uint8 HR by MATLAB bicubic ``imresize(hr, 1/scale)``.

    ``hr_uint8`` is ``(H, W, 3)`` or ``(N, H, W, 3)`` with H, W multiples of ``scale``. With
    ``quantize`` (the protocol, and how LR test sets are distributed) the LR is rounded to 8-bit
    levels first, as MATLAB does for uint8 input.
    """
    hr = np.asarray(hr_uint8)
    _check_divisible(hr.shape[-3:-1], scale)
    h, w = hr.shape[-3:-1]
    lr = imresize(hr.astype(np.float64), 1.0 / scale, (h // scale, w // scale))
    if quantize:
        return (to_uint8(lr / 255.0).astype(np.float32)) / np.float32(255.0)
    return np.clip(lr / 255.0, 0.0, 1.0).astype(np.float32)


def bicubic_upsample(lr_float: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic ``imresize(lr, scale)`` of float ``[0, 1]`` images, clipped to ``[0, 1]``.

    ``(h, w, 3)`` or ``(N, h, w, 3)`` -> float32 of the same rank, ``scale`` times larger: the
    bicubic baseline as an upscaler.
    """
    lr = np.asarray(lr_float, dtype=np.float64)
    h, w = lr.shape[-3:-1]
    sr = imresize(lr, float(scale), (h * scale, w * scale))
    return np.clip(sr, 0.0, 1.0).astype(np.float32)


def bicubic_upscaler(scale: int) -> Upscaler:
    """The bicubic baseline as an upscaler (float32 NHWC ``[0, 1]`` in and out)."""

    def upscale(lr: np.ndarray) -> np.ndarray:
        return bicubic_upsample(lr, scale)

    upscale.scale = scale  # type: ignore[attr-defined]
    return upscale
