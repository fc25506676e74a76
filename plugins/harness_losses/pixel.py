"""Pixel-space content losses."""

from __future__ import annotations

import tensorflow as tf

from harness.plugin_api.losses import Loss


def _mse(sr, hr):
    sr = tf.cast(sr, tf.float32)
    hr = tf.cast(hr, tf.float32)
    return tf.reduce_mean(tf.square(sr - hr))


def mse() -> Loss:
    """Pixel-wise mean squared error between SR and HR (both in ``[-1, 1]``), in float32."""
    return _mse
