"""The SRGAN discriminator (Ledig et al., CVPR 2017, fig. 4)."""

from __future__ import annotations

import keras

from harness.errors import ConfigError
from harness_models.layers import FusedBatchNorm


def srgan(
    patch: int = 96,
    filters: int = 64,
    dense: int = 1024,
    batch_norm: bool = True,
    leaky_slope: float = 0.2,
) -> keras.Model:
    """Eight 3x3 convolutions (``filters`` doubling to 8x, stride 2 every other one), each but
    the first with batch norm, LeakyReLU; dense ``dense`` + LeakyReLU; dense 1: a logit.

    Args:
        patch: HR patch size (from ``[data] patch``); a multiple of 16.
        filters: feature maps of the first convolutions (the paper: 64, up to 512).
        dense: units of the hidden dense layer (the paper: 1024).
        batch_norm: batch normalisation after convolutions 2-8.
        leaky_slope: LeakyReLU negative slope (the paper: 0.2).

    Input: ``patch`` x ``patch`` RGB in ``[-1, 1]``. Output: float32 logits ``(batch, 1)``, no
    sigmoid (the adversarial loss applies it).
    """
    if patch <= 0 or patch % 16:
        raise ConfigError(
            f'discriminator "srgan" needs data.patch to be a multiple of 16 (four stride-2 '
            f"convolutions), not {patch}."
        )
    for key, value in (("filters", filters), ("dense", dense)):
        if value <= 0:
            raise ConfigError(f"discriminator.{key} must be positive, not {value}.")
    image = keras.Input(shape=(patch, patch, 3), name="image")
    x = keras.layers.Conv2D(filters, 3, padding="same", name="conv0")(image)
    x = keras.layers.LeakyReLU(leaky_slope, name="conv0_lrelu")(x)
    # the paper's k3n64s2, k3n128s1, k3n128s2, k3n256s1, k3n256s2, k3n512s1, k3n512s2
    plan = [(1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)]
    for i, (mult, stride) in enumerate(plan, start=1):
        x = keras.layers.Conv2D(filters * mult, 3, strides=stride, padding="same", name=f"conv{i}")(
            x
        )
        if batch_norm:
            x = FusedBatchNorm(momentum=0.9, name=f"conv{i}_bn")(x)
        x = keras.layers.LeakyReLU(leaky_slope, name=f"conv{i}_lrelu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, name="dense")(x)
    x = keras.layers.LeakyReLU(leaky_slope, name="dense_lrelu")(x)
    logits = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(image, logits, name="srgan_discriminator")
