"""Structural-similarity content losses: ``ssim`` and ``ms_ssim``, as ``1 - SSIM``.

SSIM (Wang et al., TIP 2004) with the paper's constants: an 11-tap Gaussian window of sigma 1.5,
``K1 = 0.01``, ``K2 = 0.03``, valid filtering (no padding), on images in ``[0, 1]`` (data range
1), the map averaged over space and channels: what scikit-image's ``structural_similarity``
computes with ``gaussian_weights=True, use_sample_covariance=False`` (the evaluation protocol's
SSIM). MS-SSIM (Wang, Simoncelli and Bovik, 2003) multiplies the contrast-structure terms of the
first scales and the SSIM of the last, each to its published power, halving the image between
scales with a 2x2 average, per channel, then averages over channels (as ``tf.image`` and
``pytorch_msssim`` do).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import tensorflow as tf

from harness.errors import ConfigError
from harness.plugin_api.losses import Loss

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""The five scales' exponents of Wang et al. (2003)."""

_Y = np.array([65.481, 128.553, 24.966], np.float32) / 255.0


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """The normalised 1-D Gaussian of ``size`` taps, float32."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(coords**2) / (2 * sigma**2))
    return (g / g.sum()).astype(np.float32)


def to_unit(images, channel: str) -> tf.Tensor:
    """``[-1, 1]`` RGB -> ``[0, 1]`` RGB, or its BT.601 luma divided by 255 (``"y"``: the
    protocol's Y channel in ``[16, 235] / 255``)."""
    x = (tf.cast(images, tf.float32) + 1.0) * 0.5
    if channel == "y":
        return 16.0 / 255.0 + tf.reduce_sum(x * _Y, -1, keepdims=True)
    return x


def _blur(x: tf.Tensor, g: np.ndarray) -> tf.Tensor:
    c = x.shape[-1]
    kx = np.tile(g[None, :, None, None], (1, 1, c, 1))
    ky = np.tile(g[:, None, None, None], (1, 1, c, 1))
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "VALID")


def ssim_terms(x, y, g: np.ndarray, k1: float, k2: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Per image and channel ``(N, C)``: the mean SSIM and the mean contrast-structure term."""
    c1, c2 = k1**2, k2**2
    mx, my = _blur(x, g), _blur(y, g)
    sxx = _blur(x * x, g) - mx * mx
    syy = _blur(y * y, g) - my * my
    sxy = _blur(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    luminance = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return tf.reduce_mean(luminance * cs, [1, 2]), tf.reduce_mean(cs, [1, 2])


def _check_size(images, size: int, scales: int, name: str) -> None:
    need = size * 2 ** (scales - 1)
    h, w = images.shape[1], images.shape[2]
    if h is not None and w is not None and min(h, w) < need:
        raise ConfigError(
            f"{name}: a {size}-tap window over {scales} scale(s) needs images of at least "
            f"{need} px; got {h} x {w}. Give fewer scales (weights) or a smaller filter_size."
        )


def _checked(channel: str, filter_size: int, filter_sigma: float, name: str) -> np.ndarray:
    if channel not in ("rgb", "y"):
        raise ConfigError(f'{name}: channel must be "rgb" or "y", not "{channel}".')
    if filter_size < 1 or filter_sigma <= 0:
        raise ConfigError(f"{name}: filter_size must be >= 1 and filter_sigma > 0.")
    return gaussian_window(filter_size, filter_sigma)


def ssim(
    channel: Literal["rgb", "y"] = "rgb",
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Loss:
    """``1 - SSIM(sr, hr)`` (Wang et al., TIP 2004), on RGB or the BT.601 Y channel.

    Args:
        channel: ``"rgb"`` (each channel, averaged) or ``"y"`` (the evaluation's Y).
        filter_size, filter_sigma: the Gaussian window (11, 1.5 in the paper).
        k1, k2: the stabilising constants, relative to the data range 1.
    """
    g = _checked(channel, filter_size, filter_sigma, "ssim")

    def loss(sr, hr):
        x, y = to_unit(sr, channel), to_unit(hr, channel)
        _check_size(x, filter_size, 1, "ssim")
        return 1.0 - tf.reduce_mean(ssim_terms(x, y, g, k1, k2)[0])

    return loss


def ms_ssim(
    channel: Literal["rgb", "y"] = "rgb",
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Loss:
    """``1 - MS-SSIM(sr, hr)`` (Wang, Simoncelli and Bovik, 2003), on RGB or Y.

    Args:
        channel: ``"rgb"`` or ``"y"``.
        weights: one exponent per scale (the paper's five need 176-px patches with the 11-tap
            window; 96-px patches take three scales, e.g. ``[0.0448, 0.2856, 0.3001]``).
        filter_size, filter_sigma, k1, k2: as for ``ssim``.

    Terms below 1e-8 are raised to 1e-8 before their power (a power below 1 of 0 has an
    infinite gradient); ``tf.image`` and ``pytorch_msssim`` clip them at 0.
    """
    g = _checked(channel, filter_size, filter_sigma, "ms_ssim")
    powers = [float(w) for w in weights]
    if not powers:
        raise ConfigError("ms_ssim: weights is empty; give one exponent per scale.")

    def loss(sr, hr):
        x, y = to_unit(sr, channel), to_unit(hr, channel)
        _check_size(x, filter_size, len(powers), "ms_ssim")
        value = 1.0
        for i, power in enumerate(powers):
            full, cs = ssim_terms(x, y, g, k1, k2)
            term = full if i == len(powers) - 1 else cs
            value = value * tf.pow(tf.maximum(term, 1e-8), power)
            if i < len(powers) - 1:
                x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
                y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
        return 1.0 - tf.reduce_mean(value)

    return loss
