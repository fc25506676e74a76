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


@keras.saving.register_keras_serializable(package=PACKAGE)
class FusedBatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training-mode pass is one fused kernel.

    Keras 3 normalises with about a dozen separate element-wise ops (and, under mixed
    precision, casts the activations to float32 and back); TensorFlow's ``FusedBatchNormV3``
    (oneDNN on CPU, cuDNN on GPU) reads bf16/float16 activations and keeps its statistics in
    float32 in one pass: about 8% of an SRResNet-16 bf16 training step on a 2-core CPU. Same
    weights, same config, the same (biased) batch variance in the moving average; inference
    and anything the fused kernel does not cover (masks, renorm, another axis or rank) use
    Keras' own pass.
    """

    def call(self, inputs, training=None, mask=None):
        fusable = (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and self.scale
            and self.center
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            tf.cast(self.gamma, tf.float32),
            tf.cast(self.beta, tf.float32),
            epsilon=self.epsilon,
            is_training=True,
        )
        # the kernel returns the unbiased variance; Keras' moving average uses the biased one
        n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = variance * ((n - 1.0) / tf.maximum(n, 1.0))
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)
