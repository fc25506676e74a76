"""The LDL loss (Liang, Zeng and Zhang, "Details or Artifacts: A Locally Discriminative Learning
Approach to Realistic Image Super-Resolution", CVPR 2022), as its reference code defines it.

The artifact map of a generated image is the local variance (a ``ksize`` window, reflect
padding, unbiased) of its residual ``r = sum_c |hr - sr|``, times the whole residual's variance
to the power 1/5, and zero where the EMA generator's residual is larger than this one's (there,
the detail is not a new artifact). The loss is the L1 distance of ``map * sr`` and
``map * hr``. It needs the output of the EMA generator: the loss declares ``ema_sr``, so the
trainer passes it, and refuses the loss when ``[train] ema`` is 0.

Images are mapped from ``[-1, 1]`` to ``[0, 1]`` first, the range of the reference (and of its
weight 1.0 in the published configurations). As in the reference, the map is not detached: the
gradient also flows through it.
"""

from __future__ import annotations

import tensorflow as tf

from harness.errors import ConfigError


def local_variance(residual: tf.Tensor, ksize: int) -> tf.Tensor:
    """The unbiased variance of each ``ksize x ksize`` window of ``residual`` (NHW1), reflect
    padded so the output has the input's size."""
    pad = (ksize - 1) // 2
    padded = tf.pad(residual, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    mean = tf.nn.avg_pool2d(padded, ksize, 1, "VALID")
    mean_sq = tf.nn.avg_pool2d(padded * padded, ksize, 1, "VALID")
    n = ksize * ksize
    return tf.maximum(mean_sq - mean * mean, 0.0) * (n / (n - 1))


def artifact_map(sr: tf.Tensor, hr: tf.Tensor, ema_sr: tf.Tensor, ksize: int) -> tf.Tensor:
    """LDL's refined artifact map ``(N, H, W, 1)`` of images in ``[0, 1]``."""
    residual_ema = tf.reduce_sum(tf.abs(hr - ema_sr), -1, keepdims=True)
    residual = tf.reduce_sum(tf.abs(hr - sr), -1, keepdims=True)
    mean = tf.reduce_mean(residual, [1, 2, 3], keepdims=True)
    n = tf.cast(tf.reduce_prod(tf.shape(residual)[1:]), tf.float32)
    patch_var = tf.reduce_sum(tf.square(residual - mean), [1, 2, 3], keepdims=True) / (n - 1)
    weight = patch_var ** (1 / 5) * local_variance(residual, ksize)
    return tf.where(residual < residual_ema, tf.zeros_like(weight), weight)


def ldl(ksize: int = 7):
    """LDL's artifact-map loss (weight 1.0 in the paper's configurations); needs ``[train] ema``.

    Args:
        ksize: the odd side of the local-variance window (7 in the paper).
    """
    if ksize < 3 or ksize % 2 == 0:
        raise ConfigError(f"ldl: ksize must be an odd number >= 3, not {ksize}.")

    def loss(sr, hr, ema_sr):
        sr = (tf.cast(sr, tf.float32) + 1.0) * 0.5
        hr = (tf.cast(hr, tf.float32) + 1.0) * 0.5
        ema_sr = tf.stop_gradient((tf.cast(ema_sr, tf.float32) + 1.0) * 0.5)
        weight = artifact_map(sr, hr, ema_sr, ksize)
        return tf.reduce_mean(tf.abs(weight * sr - weight * hr))

    return loss
