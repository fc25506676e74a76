"""Custom Keras layers of the first-party generators, registered so saved models load in safe
mode (no ``Lambda``)."""

from __future__ import annotations

import keras
import tensorflow as tf

PACKAGE = "harness_models"


@keras.saving.register_keras_serializable(package=PACKAGE)
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel convolution's rearrangement (Shi et al. 2016): ``(h, w, c * r^2)`` ->
    ``(h * r, w * r, c)`` with :func:`tf.nn.depth_to_space`.

    Args:
        factor: the upscaling factor ``r``.
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.factor
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Interpolate(keras.layers.Layer):
    """Upscales ``(h, w, c)`` to ``(h * r, w * r, c)`` by ``tf.image.resize`` (half-pixel
    centres, as PyTorch's ``align_corners=False``); unlike ``keras.layers.UpSampling2D`` it
    works on inputs whose height and width are unknown when traced.

    Args:
        factor: the upscaling factor ``r``.
        method: ``bilinear``, ``bicubic`` or ``nearest``.
    """

    def __init__(self, factor: int = 2, method: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        self.method = str(method)

    def call(self, inputs):
        size = tf.shape(inputs)[1:3] * self.factor
        out = tf.image.resize(inputs, size, method=self.method)
        return tf.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.factor
        return (n, None if h is None else h * r, None if w is None else w * r, c)

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor, "method": self.method}
