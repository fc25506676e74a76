"""Pieces shared by the first-party generators."""

from __future__ import annotations

import keras

from harness.errors import ConfigError
from harness_models.layers import PixelShuffle


def upsample_factors(scale: int, model: str) -> list[int]:
    """The pixel-shuffle factors whose product is ``scale``: x2 stages, or one x3 stage."""
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * (scale.bit_length() - 1)
    raise ConfigError(
        f'generator "{model}" cannot upscale by {scale}: use data.scale = 2, 3, 4 or 8.'
    )


def positive(model: str, **values: int | float) -> None:
    """One clear error for a size parameter that is zero or negative."""
    for key, value in values.items():
        if value <= 0:
            raise ConfigError(f'generator.{key} of "{model}" must be positive, not {value}.')


def upsampler(
    x,
    filters: int,
    scale: int,
    model: str,
    activation: str | None,
    prefix: str,
    initializer: str | keras.initializers.Initializer = "glorot_uniform",
):
    """conv -> pixel shuffle (-> ``prelu`` or ``lrelu`` activation) per stage (SRResNet's
    sub-pixel blocks)."""
    for i, factor in enumerate(upsample_factors(scale, model)):
        x = keras.layers.Conv2D(
            filters * factor * factor,
            3,
            padding="same",
            kernel_initializer=initializer,
            name=f"{prefix}{i}_conv",
        )(x)
        x = PixelShuffle(factor, name=f"{prefix}{i}_shuffle")(x)
        if activation == "prelu":
            x = keras.layers.PReLU(shared_axes=[1, 2], name=f"{prefix}{i}_prelu")(x)
        elif activation == "lrelu":
            x = keras.layers.LeakyReLU(negative_slope=0.1, name=f"{prefix}{i}_lrelu")(x)
    return x
