"""The R1 gradient penalty (Mescheder et al., ICML 2018), usable with every adversarial loss.

``R1 = gamma / 2 * E_real[ |grad_x D(x)|^2 ]``: the squared norm of the discriminator's gradient
at the real images, as StyleGAN2 and BasicSR's ``r1_penalty`` write it. For a discriminator
with a logit map (PatchGAN, U-Net) the gradient is that of the map's sum per image, as BasicSR
takes ``autograd.grad(real_pred.sum(), real_img)``. BasicSR's StyleGAN2 model calls it
``r1_reg_weight`` (10); StyleGAN papers call it gamma. Here it is the ``r1_gamma`` parameter of
every ``[adversarial]`` loss (0: off, nothing computed), so it combines with any of them.

It is computed every discriminator step (no lazy regularisation): its cost is one more forward
pass of the discriminator on the HR batch and a second-order backward pass.

Under a strategy with several replicas, R1 on a discriminator with batch normalisation is
refused: the extra training-mode forward pass updates the moving statistics inside the
penalty's own gradient tape, and the replicas then issue their gradient all-reduces out of
step (TensorFlow 2.21 aborts the step with a collective shape mismatch). Discriminators
without batch norm (``unet_sn``, ``projected``, ``patchgan`` with ``batch_norm = false``) work.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from harness.errors import ConfigError


def check_gamma(name: str, gamma: float) -> float:
    if gamma < 0:
        raise ConfigError(
            f'adversarial "{name}": r1_gamma must be >= 0 (0 turns R1 off), not {gamma}.'
        )
    return float(gamma)


def _has_batch_norm(model) -> bool:
    return any(
        isinstance(layer, keras.layers.BatchNormalization)
        or (isinstance(layer, keras.Model) and _has_batch_norm(layer))
        for layer in getattr(model, "layers", [])
    )


def r1_penalty(discriminator, hr, gamma: float) -> tf.Tensor:
    """``gamma / 2`` times the batch mean of ``|d sum(D(hr_i)) / d hr_i|^2`` (a float32 scalar,
    differentiable with respect to the discriminator's weights)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1 and _has_batch_norm(discriminator):
        raise ConfigError(
            f"adversarial.r1_gamma with a batch-normalised discriminator "
            f'("{discriminator.name}") cannot run on {replicas} replicas. Use a discriminator '
            "without batch norm (unet_sn, projected, patchgan with batch_norm = false), "
            'train.strategy = "default", or r1_gamma = 0.'
        )
    # A new tensor, not the batch itself: a frozen trunk inside the discriminator (projected)
    # reuses the features of a tensor it has already run this step, and that earlier pass was
    # not recorded by this tape, so the gradient would be None.
    hr = tf.identity(tf.cast(hr, tf.float32))
    with tf.GradientTape() as tape:
        tape.watch(hr)
        logits = tf.cast(discriminator(hr, training=True), tf.float32)
        total = tf.reduce_sum(logits)
    grad = tape.gradient(total, hr)
    per_image = tf.reduce_sum(tf.square(grad), axis=tf.range(1, tf.rank(grad)))
    return gamma / 2.0 * tf.reduce_mean(per_image)


class R1:
    """Mixin: ``penalty(discriminator, hr, sr)`` is R1 with the instance's ``r1_gamma``."""

    r1_gamma: float = 0.0

    def penalty(self, discriminator, hr, sr):
        """R1 on the real images (``sr`` is not used); 0 when ``r1_gamma`` is 0."""
        if self.r1_gamma == 0.0:
            return tf.constant(0.0, tf.float32)
        return r1_penalty(discriminator, hr, self.r1_gamma)
