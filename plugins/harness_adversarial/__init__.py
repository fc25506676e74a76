"""First-party adversarial losses: TF-GAN's own functions behind the harness' object API.

Each class is a factory (its ``__init__`` keyword parameters are the ``[adversarial]`` table) and
its instances provide ``generator_loss(fake_logits)``, ``discriminator_loss(real_logits,
fake_logits)`` and, for ``wasserstein``, ``penalty(discriminator, hr, sr)``. Every value is a
float32 scalar mean over the batch. TF-GAN's defaults are kept and documented:

- the discriminator's real labels are smoothed (``label_smoothing = 0.25``: target 0.875);
- ``minimax``'s generator loss is the saturating ``log(1 - D(G(z)))`` written, as TF-GAN does,
  as minus the discriminator loss with a real logit of 1, so it carries the constant
  ``-softplus(-1)``;
- least squares losses have TF-GAN's factor 1/2.

:mod:`harness_adversarial.standard` adds BasicSR's ``vanilla``, ``hinge`` and ESRGAN's
``relativistic``. Every loss takes ``r1_gamma``, the R1 penalty on real images
(:mod:`harness_adversarial.r1`; 0, the default, turns it off).
"""

from __future__ import annotations

import tensorflow as tf

from harness import hookimpl
from harness.errors import ConfigError
from harness_adversarial.r1 import R1, check_gamma, r1_penalty
from harness_adversarial.standard import Hinge, Relativistic, Vanilla
from harness_adversarial.tfgan import losses_impl

_MEAN = tf.compat.v1.losses.Reduction.MEAN


def _common(**kwargs):
    return {"loss_collection": None, "reduction": _MEAN, **kwargs}


def _check_smoothing(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f'adversarial "{name}": label smoothing must be in [0, 1), not {value}.')


class Minimax(R1):
    """The original GAN loss (Goodfellow et al. 2014) with its saturating generator loss.

    Args:
        label_smoothing: one-sided smoothing of the discriminator's real labels (TF-GAN: 0.25,
            i.e. target ``1 - 0.25 / 2``).
        generator_label_smoothing: smoothing in the generator loss (TF-GAN: 0).
        r1_gamma: weight of the R1 penalty on real images (0: off).
    """

    def __init__(
        self,
        label_smoothing: float = 0.25,
        generator_label_smoothing: float = 0.0,
        r1_gamma: float = 0.0,
    ):
        self.r1_gamma = check_gamma(type(self).__name__.lower(), r1_gamma)
        _check_smoothing("minimax", label_smoothing)
        _check_smoothing("minimax", generator_label_smoothing)
        self.label_smoothing = float(label_smoothing)
        self.generator_label_smoothing = float(generator_label_smoothing)

    def generator_loss(self, fake_logits):
        return losses_impl().minimax_generator_loss(
            fake_logits, **_common(label_smoothing=self.generator_label_smoothing)
        )

    def discriminator_loss(self, real_logits, fake_logits):
        return losses_impl().minimax_discriminator_loss(
            real_logits, fake_logits, **_common(label_smoothing=self.label_smoothing)
        )


class Modified(Minimax):
    """The non-saturating GAN loss: the generator minimises ``-log D(G(z))`` (what SRGAN uses).

    Args:
        label_smoothing: one-sided smoothing of the discriminator's real labels (TF-GAN: 0.25).
        generator_label_smoothing: smoothing in the generator loss (TF-GAN: 0).
        r1_gamma: weight of the R1 penalty on real images (0: off).
    """

    def generator_loss(self, fake_logits):
        return losses_impl().modified_generator_loss(
            fake_logits, **_common(label_smoothing=self.generator_label_smoothing)
        )

    def discriminator_loss(self, real_logits, fake_logits):
        return losses_impl().modified_discriminator_loss(
            real_logits, fake_logits, **_common(label_smoothing=self.label_smoothing)
        )


class Wasserstein:
    """The Wasserstein loss (Arjovsky et al. 2017), optionally with the gradient penalty of
    WGAN-GP (Gulrajani et al. 2017), TF-GAN's ``wasserstein_gradient_penalty``.

    Args:
        gradient_penalty: weight of the penalty added to the discriminator loss (WGAN-GP: 10;
            0 turns it off).
        penalty_target: the gradient norm the penalty pulls towards (1).
        one_sided: penalise only norms above the target (Petzka et al. 2018).
        r1_gamma: weight of the R1 penalty on real images (0: off), added to the above.
    """

    def __init__(
        self,
        gradient_penalty: float = 0.0,
        penalty_target: float = 1.0,
        one_sided: bool = False,
        r1_gamma: float = 0.0,
    ):
        self.r1_gamma = check_gamma("wasserstein", r1_gamma)
        if gradient_penalty < 0:
            raise ConfigError(
                f'adversarial "wasserstein": gradient_penalty must be >= 0, not {gradient_penalty}.'
            )
        if penalty_target <= 0:
            raise ConfigError(
                f'adversarial "wasserstein": penalty_target must be > 0, not {penalty_target}.'
            )
        self.gradient_penalty = float(gradient_penalty)
        self.penalty_target = float(penalty_target)
        self.one_sided = bool(one_sided)
        self._graph_penalty = tf.function(self._penalty)

    def generator_loss(self, fake_logits):
        return losses_impl().wasserstein_generator_loss(fake_logits, **_common())

    def discriminator_loss(self, real_logits, fake_logits):
        return losses_impl().wasserstein_discriminator_loss(real_logits, fake_logits, **_common())

    def _penalty(self, discriminator, hr, sr):
        return losses_impl().wasserstein_gradient_penalty(
            tf.cast(hr, tf.float32),
            tf.cast(sr, tf.float32),
            None,
            lambda images, _: tf.cast(discriminator(images, training=True), tf.float32),
            "harness_gradient_penalty",
            target=self.penalty_target,
            one_sided=self.one_sided,
            **_common(),
        )

    def penalty(self, discriminator, hr, sr):
        """``gradient_penalty`` times the mean squared deviation of the discriminator's gradient
        norm, at random interpolates of ``hr`` and ``sr``, from ``penalty_target``; plus R1
        when ``r1_gamma`` is not 0."""
        total = tf.constant(0.0, tf.float32)
        if self.gradient_penalty != 0.0:
            # TF-GAN's penalty uses tf.gradients, which needs a graph: inside the trainer's
            # tf.function it runs inline; called eagerly it runs as its own tf.function.
            run = self._graph_penalty if tf.executing_eagerly() else self._penalty
            total = self.gradient_penalty * run(discriminator, hr, sr)
        if self.r1_gamma != 0.0:
            total = total + r1_penalty(discriminator, hr, self.r1_gamma)
        return total


class LeastSquares(R1):
    """The least squares GAN loss (Mao et al. 2017), with TF-GAN's factor 1/2.

    Args:
        real_label: the target for real images (and for the generator's fakes).
        fake_label: the discriminator's target for fakes.
        r1_gamma: weight of the R1 penalty on real images (0: off).
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0, r1_gamma: float = 0.0):
        self.r1_gamma = check_gamma("least_squares", r1_gamma)
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def generator_loss(self, fake_logits):
        return losses_impl().least_squares_generator_loss(
            fake_logits, real_label=self.real_label, **_common()
        )

    def discriminator_loss(self, real_logits, fake_logits):
        return losses_impl().least_squares_discriminator_loss(
            real_logits,
            fake_logits,
            real_label=self.real_label,
            fake_label=self.fake_label,
            **_common(),
        )


__all__ = [
    "Hinge",
    "LeastSquares",
    "Minimax",
    "Modified",
    "Relativistic",
    "Vanilla",
    "Wasserstein",
]


@hookimpl
def harness_register_adversarial_losses():
    return {
        "minimax": Minimax,
        "modified": Modified,
        "wasserstein": Wasserstein,
        "least_squares": LeastSquares,
        "vanilla": Vanilla,
        "hinge": Hinge,
        "relativistic": Relativistic,
    }


# The contract checks (harness.plugin_api.contracts) exercise the penalty too.
Wasserstein.contract_params = {"gradient_penalty": 10.0, "r1_gamma": 1.0}
Vanilla.contract_params = {"r1_gamma": 10.0}
Hinge.contract_params = {"r1_gamma": 10.0}
Relativistic.contract_params = {"r1_gamma": 10.0}
