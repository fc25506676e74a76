"""The relativistic average GAN loss (Jolicoeur-Martineau 2018, "The relativistic discriminator:
a key element missing from standard GAN"), as ESRGAN uses it.

The discriminator estimates how much more realistic a real image is than the average fake one
(and the reverse), instead of how real each image is on its own:

    D_ra(x_r, x_f) = sigmoid(C(x_r) - mean(C(x_f)))

where ``C`` is the discriminator's raw output (its logits).
"""

from __future__ import annotations

import warnings

import tensorflow as tf


class RelativisticAverage:
    """Relativistic average standard GAN loss (RaSGAN).

    The factory is the class itself: its ``__init__`` keyword parameters are the configuration
    (``[adversarial]`` table, ``--set adversarial.label_smoothing=0.1``). The host applies
    ``[adversarial].weight``; never store a weight here.

    Args:
        label_smoothing: one-sided label smoothing of the "real" targets (Salimans et al. 2016),
            0 for none.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"relativistic_average: label_smoothing must be in [0, 1), not {label_smoothing}."
            )
        self.label_smoothing = float(label_smoothing)

    def _loss(self, better: tf.Tensor, worse: tf.Tensor) -> tf.Tensor:
        """Cross-entropy for "``better`` is more realistic than the average ``worse``"."""
        better = tf.cast(better, tf.float32)
        worse = tf.cast(worse, tf.float32)
        more = better - tf.reduce_mean(worse)
        less = worse - tf.reduce_mean(better)
        ones = tf.fill(tf.shape(more), 1.0 - self.label_smoothing)
        bce = tf.nn.sigmoid_cross_entropy_with_logits
        return tf.reduce_mean(bce(labels=ones, logits=more)) + tf.reduce_mean(
            bce(labels=tf.zeros_like(less), logits=less)
        )

    def discriminator_loss(self, real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
        """Real images should look more realistic than the average fake, and vice versa."""
        return self._loss(real_logits, fake_logits)

    def generator_loss(
        self, fake_logits: tf.Tensor, real_logits: tf.Tensor | None = None
    ) -> tf.Tensor:
        """The discriminator's loss with real and fake swapped.

        A relativistic generator loss needs the discriminator's logits on the real (HR) batch
        too; the host passes them as ``real_logits`` when ``generator_loss`` declares that
        parameter. Called without them (a host that does not pass them), it warns and falls back to
        the standard non-saturating loss ``-log sigmoid(C(x_f))``.
        """
        if real_logits is None:
            warnings.warn(
                "relativistic_average: the host called generator_loss without real_logits; "
                "using the non-saturating generator loss instead.",
                stacklevel=2,
            )
            fake = tf.cast(fake_logits, tf.float32)
            bce = tf.nn.sigmoid_cross_entropy_with_logits
            return tf.reduce_mean(bce(labels=tf.ones_like(fake), logits=fake))
        return self._loss(fake_logits, real_logits)
