"""The Charbonnier loss (Lai et al. 2017, "Deep Laplacian Pyramid Networks for Fast and Accurate
Super-Resolution", LapSRN): a differentiable variant of L1.

``rho(x) = sqrt(x^2 + eps^2)`` behaves like ``|x|`` for errors much larger than ``eps`` (robust to
outliers, less blur than MSE) and like a parabola near zero (a smooth gradient where L1 has a
kink).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def charbonnier(eps: float = 1e-3) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The factory the harness calls with the ``[losses.<key>]`` table's parameters.

    Its keyword parameters, typed and with defaults, are the loss's configuration: ``eps`` is
    ``losses.<key>.eps`` in TOML, in ``--set`` and in a sweep, and its default shows up in
    ``harness show`` and MLflow. The weight is not here: the host multiplies the value by
    ``losses.<key>.weight``, which may follow a schedule.

    Args:
        eps: the smoothing constant, in the ``[-1, 1]`` pixel units the loss receives (LapSRN uses
            1e-3). The loss of a perfect reconstruction is ``eps``, not 0.

    Returns:
        ``loss(sr, hr)``: two NHWC tensors of equal shape in ``[-1, 1]`` (``bfloat16`` or
        ``float16`` under mixed precision) -> a float32 scalar, differentiable in ``sr``.
    """
    if not eps > 0:
        raise ValueError(f"charbonnier: eps must be > 0, not {eps}.")
    eps_squared = float(eps) ** 2

    def loss(sr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
        # Compute in float32: squaring a bfloat16 difference loses the small errors eps is for.
        diff = tf.cast(sr, tf.float32) - tf.cast(hr, tf.float32)
        return tf.reduce_mean(tf.sqrt(tf.square(diff) + eps_squared))

    return loss
