"""The adversarial losses of BasicSR, traiNNer-redux and neosr: ``vanilla``, ``hinge`` and
ESRGAN's ``relativistic`` average GAN.

Logits may have any shape ``(batch, ...)`` (a logit per image, per patch or per pixel): every
mean below is over all of them, as ``BCEWithLogitsLoss`` and ``.mean()`` reduce in BasicSR. Each
loss takes ``r1_gamma`` (see :mod:`harness_adversarial.r1`). Every value is a float32 scalar.
"""

from __future__ import annotations

import tensorflow as tf

from harness.errors import ConfigError
from harness_adversarial.r1 import R1, check_gamma


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def bce(logits, target: float) -> tf.Tensor:
    """Mean sigmoid cross entropy of ``logits`` with a constant ``target`` (``BCEWithLogits``)."""
    logits = _f32(logits)
    labels = tf.fill(tf.shape(logits), tf.constant(target, tf.float32))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


class Vanilla(R1):
    """The GAN loss of BasicSR's ``gan_type: vanilla`` (Goodfellow et al. 2014, non-saturating):
    D minimises ``BCE(x, 1 - s) + BCE(y, 0)``, G minimises ``BCE(y, 1)``.

    Args:
        label_smoothing: one-sided smoothing ``s`` of the discriminator's real target (Salimans
            et al. 2016; 0: none, as BasicSR's ``real_label_val = 1.0``).
        r1_gamma: weight of the R1 penalty on real images (0: off).
    """

    def __init__(self, label_smoothing: float = 0.0, r1_gamma: float = 0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(
                f'adversarial "vanilla": label_smoothing must be in [0, 1), not {label_smoothing}.'
            )
        self.label_smoothing = float(label_smoothing)
        self.r1_gamma = check_gamma("vanilla", r1_gamma)

    def generator_loss(self, fake_logits):
        return bce(fake_logits, 1.0)

    def discriminator_loss(self, real_logits, fake_logits):
        return bce(real_logits, 1.0 - self.label_smoothing) + bce(fake_logits, 0.0)


class Hinge(R1):
    """The hinge loss (Lim & Ye 2017; SAGAN, BigGAN, Projected GAN): D minimises
    ``mean relu(1 - x) + mean relu(1 + y)``, G minimises ``-mean y`` (BasicSR's ``hinge``).

    Args:
        r1_gamma: weight of the R1 penalty on real images (0: off).
    """

    def __init__(self, r1_gamma: float = 0.0):
        self.r1_gamma = check_gamma("hinge", r1_gamma)

    def generator_loss(self, fake_logits):
        return -tf.reduce_mean(_f32(fake_logits))

    def discriminator_loss(self, real_logits, fake_logits):
        real, fake = _f32(real_logits), _f32(fake_logits)
        return tf.reduce_mean(tf.nn.relu(1.0 - real)) + tf.reduce_mean(tf.nn.relu(1.0 + fake))


class Relativistic(R1):
    """ESRGAN's relativistic average GAN (Jolicoeur-Martineau 2018; Wang et al., ECCVW 2018,
    eq. 1-2) with BCE, as BasicSR's ``ESRGANModel`` computes it:

    - D: ``(BCE(x - mean y, 1) + BCE(y - mean x, 0)) / 2``;
    - G: ``(BCE(x - mean y, 0) + BCE(y - mean x, 1)) / 2``, with ``x`` the logits of the HR batch
      (the trainer passes them, gradient stopped).

    Means are over the whole batch (and logit map). In the discriminator loss each term's
    gradient flows only through its own logits (the other side's mean is a constant), as
    BasicSR detaches ``fake_d_pred`` and ``real_d_pred`` for the two backward passes.

    Args:
        r1_gamma: weight of the R1 penalty on real images (0: off).
    """

    def __init__(self, r1_gamma: float = 0.0):
        self.r1_gamma = check_gamma("relativistic", r1_gamma)

    def generator_loss(self, fake_logits, real_logits=None):
        if real_logits is None:
            raise ConfigError(
                'adversarial "relativistic" needs the real logits: call '
                "generator_loss(fake_logits, real_logits=...)."
            )
        real, fake = _f32(real_logits), _f32(fake_logits)
        return 0.5 * (bce(real - tf.reduce_mean(fake), 0.0) + bce(fake - tf.reduce_mean(real), 1.0))

    def discriminator_loss(self, real_logits, fake_logits):
        real, fake = _f32(real_logits), _f32(fake_logits)
        mean_real = tf.stop_gradient(tf.reduce_mean(real))
        mean_fake = tf.stop_gradient(tf.reduce_mean(fake))
        return 0.5 * (bce(real - mean_fake, 1.0) + bce(fake - mean_real, 0.0))


__all__ = ["Hinge", "Relativistic", "Vanilla", "bce"]
