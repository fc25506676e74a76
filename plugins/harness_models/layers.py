"""Custom Keras layers of the first-party generators, registered so saved models load in safe
mode (no ``Lambda``)."""

from __future__ import annotations

import keras
import numpy as np
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


@keras.saving.register_keras_serializable(package=PACKAGE)
class SpectralConv2D(keras.layers.Conv2D):
    """``Conv2D`` with spectral normalisation (Miyato et al., ICLR 2018): the convolution uses
    ``kernel / sigma``, ``sigma`` the largest singular value of the kernel as a
    ``(kh * kw * c_in, c_out)`` matrix, estimated by power iteration, as PyTorch's
    ``torch.nn.utils.spectral_norm`` (which Real-ESRGAN's discriminator uses) does: a
    reparametrisation whose gradient flows through ``sigma``; one power iteration per call in
    training, the stored vectors ``u`` and ``v`` (non-trainable weights) at inference.

    Not ``keras.layers.SpectralNormalization``: that wrapper writes ``kernel / sigma`` back into
    the kernel variable on every training call (a projection, with no gradient through
    ``sigma``), and that assignment happens inside each replica of a distribution strategy.
    Here only ``u`` and ``v`` are written (same value on every replica: the first one's is
    kept). The power iteration runs in float32 under a mixed precision policy (the kernel is
    read before it is cast).

    Args:
        power_iterations: power iterations per training call (PyTorch: 1).
        eps: added to norms (PyTorch: 1e-12).
        Every other argument is ``Conv2D``'s.
    """

    def __init__(self, *args, power_iterations: int = 1, eps: float = 1e-12, **kwargs):
        kwargs.pop("autocast", None)
        super().__init__(*args, autocast=False, **kwargs)
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, not {power_iterations}.")
        self.power_iterations = int(power_iterations)
        self.eps = float(eps)

    def build(self, input_shape):
        super().build(input_shape)
        rows = int(np.prod(self._kernel.shape[:-1]))
        normal = keras.initializers.RandomNormal(stddev=1.0)
        # PyTorch starts u and v from normalised normal draws
        self.u = self.add_weight(
            name="u",
            shape=(self.filters,),
            initializer=normal,
            trainable=False,
            dtype="float32",
            aggregation="only_first_replica",
        )
        self.v = self.add_weight(
            name="v",
            shape=(rows,),
            initializer=normal,
            trainable=False,
            dtype="float32",
            aggregation="only_first_replica",
        )

    def _normalise(self, x):
        return x / (tf.norm(x) + self.eps)

    def normalised_kernel(self, training: bool = False):
        """``kernel / sigma`` in float32 (power iteration first when ``training``)."""
        kernel = tf.convert_to_tensor(self._kernel)
        matrix = tf.reshape(tf.cast(kernel, tf.float32), (-1, self.filters))  # (rows, c_out)
        u = self._normalise(tf.convert_to_tensor(self.u))
        v = self._normalise(tf.convert_to_tensor(self.v))
        if training:
            for _ in range(self.power_iterations):
                v = self._normalise(tf.linalg.matvec(matrix, u))
                u = self._normalise(tf.linalg.matvec(matrix, v, transpose_a=True))
            u, v = tf.stop_gradient(u), tf.stop_gradient(v)
            self.u.assign(u)
            self.v.assign(v)
        sigma = tf.tensordot(v, tf.linalg.matvec(matrix, u), 1)
        return tf.cast(kernel, tf.float32) / sigma

    def call(self, inputs, training=False):
        dtype = self.compute_dtype
        kernel = tf.cast(self.normalised_kernel(bool(training)), dtype)
        outputs = self.convolution_op(tf.cast(inputs, dtype), kernel)
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    # Conv2D saves only its kernel and bias; a Layer saves all its weights, u and v included.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("autocast", None)
        return {**config, "power_iterations": self.power_iterations, "eps": self.eps}
