"""MATLAB-compatible bicubic downsampling in TensorFlow ops, for images of any size.

The weights are those of :func:`harness.measures.bicubic.resize_matrix` (MATLAB ``imresize``:
cubic kernel a = -0.5 widened by the scale, symmetric edges), built here from tensors so that a
graph traced once serves every image size: the degradation of a training crop and of a whole
test image in ``harness data degrade`` are the same function.
"""

from __future__ import annotations

import math

import tensorflow as tf


def _cubic(x: tf.Tensor) -> tf.Tensor:
    ax = tf.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = tf.cast(ax <= 1, x.dtype)
    far = tf.cast((ax > 1) & (ax <= 2), x.dtype)
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * near + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * far


def resize_matrix(in_len: tf.Tensor, out_len: tf.Tensor, scale: float) -> tf.Tensor:
    """The float64 ``(out_len, in_len)`` MATLAB ``imresize`` matrix along one axis.

    ``in_len`` and ``out_len`` may be dynamic (int32 scalars); ``scale`` (out/in) is a number.
    """
    f64 = tf.float64
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    taps = int(math.ceil(kernel_width)) + 2
    x = tf.range(1, tf.cast(out_len, tf.int32) + 1, dtype=tf.int32)
    u = tf.cast(x, f64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = tf.floor(u - kernel_width / 2.0)
    indices = left[:, None] + tf.range(taps, dtype=f64)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(scale * distance) if scale < 1 else _cubic(distance)
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    n = tf.cast(in_len, tf.int64)
    mirror = tf.concat([tf.range(n), tf.range(n - 1, -1, -1)], 0)
    folded = tf.gather(mirror, tf.math.floormod(tf.cast(indices, tf.int64) - 1, 2 * n))
    onehot = tf.one_hot(folded, tf.cast(n, tf.int32), dtype=f64)
    return tf.reduce_sum(onehot * weights[:, :, None], axis=1)


def bicubic_downsample(hr: tf.Tensor, scale: int) -> tf.Tensor:
    """MATLAB ``imresize(hr, 1/scale, 'bicubic')`` of float32 ``(H, W, 3)`` in ``[0, 1]`` on
    8-bit levels, rounded to 8-bit levels as MATLAB rounds uint8: float32 ``(H/s, W/s, 3)``."""
    shape = tf.shape(hr)
    h, w = shape[0], shape[1]
    rows = tf.cast(resize_matrix(h, h // scale, 1.0 / scale), tf.float32)
    cols = tf.cast(resize_matrix(w, w // scale, 1.0 / scale), tf.float32)
    x = tf.round(tf.cast(hr, tf.float32) * 255.0)
    x = tf.einsum("oh,hwc->owc", rows, x)
    x = tf.einsum("pw,owc->opc", cols, x)
    return tf.clip_by_value(tf.floor(x + 0.5), 0.0, 255.0) / 255.0
