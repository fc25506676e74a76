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
