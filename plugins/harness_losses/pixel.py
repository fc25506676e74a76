"""Pixel-space content losses: ``mse``, ``l1``, ``charbonnier`` and ``gradient`` (Sobel L1)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from harness.errors import ConfigError
from harness.plugin_api.losses import Loss


def _pair(sr, hr) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(sr, tf.float32), tf.cast(hr, tf.float32)


def _mse(sr, hr):
    sr, hr = _pair(sr, hr)
    return tf.reduce_mean(tf.square(sr - hr))


def mse() -> Loss:
    """Pixel-wise mean squared error between SR and HR (both in ``[-1, 1]``), in float32."""
    return _mse


def _l1(sr, hr):
    sr, hr = _pair(sr, hr)
    return tf.reduce_mean(tf.abs(sr - hr))


def l1() -> Loss:
    """Pixel-wise mean absolute error between SR and HR (both in ``[-1, 1]``): ESRGAN's and
    Real-ESRGAN's pixel loss. On ``[0, 1]`` images, as BasicSR computes it, the value is half
    this one (fold the factor into the weight: BasicSR's 1e-2 is 5e-3 here)."""
    return _l1


def charbonnier(eps: float = 1e-12) -> Loss:
    """The Charbonnier (smooth L1) loss ``mean(sqrt((sr - hr)^2 + eps))`` (Charbonnier et al.
    1994; LapSRN, Lai et al. 2017), as BasicSR's ``CharbonnierLoss`` writes it.

    Args:
        eps: added to the squared error under the square root; BasicSR's default 1e-12
            (LapSRN's epsilon of 1e-3 is ``eps = 1e-6`` here).
    """
    if not eps > 0:
        raise ConfigError(f"charbonnier: eps must be > 0 (the gradient at 0), not {eps}.")

    def loss(sr, hr):
        sr, hr = _pair(sr, hr)
        return tf.reduce_mean(tf.sqrt(tf.square(sr - hr) + eps))

    return loss


SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
"""The horizontal Sobel kernel (its transpose is the vertical one)."""


def sobel(images: tf.Tensor) -> tf.Tensor:
    """Per channel horizontal and vertical Sobel responses, ``(N, H, W, 2C)``, with edge
    replication (a flat border has no edge)."""
    channels = images.shape[-1]
    kernel = np.stack([SOBEL_X, SOBEL_X.T], -1)[:, :, None, :]  # (3, 3, 1, 2)
    kernel = np.tile(kernel, (1, 1, channels, 1))
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def gradient() -> Loss:
    """The gradient (edge) loss: the mean absolute difference of the Sobel responses of SR and
    HR, per RGB channel, both directions (as traiNNer-redux's and neosr's gradient losses; the
    Sobel operator of Sobel and Feldman 1968). Zero for images that differ by a constant."""

    def loss(sr, hr):
        sr, hr = _pair(sr, hr)
        return tf.reduce_mean(tf.abs(sobel(sr) - sobel(hr)))

    return loss
