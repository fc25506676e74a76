"""ESRGAN's VGG-style discriminator (Wang et al., ECCVW 2018; BasicSR's
``VGGStyleDiscriminator``)."""

from __future__ import annotations

import keras

from harness.errors import ConfigError


def stages_for(patch: int) -> int:
    """How many stride-2 stages bring ``patch`` to at most 4 px (BasicSR: 128 -> 5, 256 -> 6);
    0 when halving ends on an odd side above 4."""
    stages, side = 0, patch
    while side > 4:
        if side % 2:
            return 0
        side //= 2
        stages += 1
    return stages


def vgg_style(
    patch: int = 128, filters: int = 64, dense: int = 100, leaky_slope: float = 0.2
) -> keras.Model:
    """Stages of conv3x3 (stride 1) + conv4x4 (stride 2), each followed by batch norm (but
    the very first conv) and LeakyReLU, ``filters`` x 1, 2, 4, 8, 8, (8) feature maps, until
    the map is at most 4 px; then dense ``dense`` + LeakyReLU and dense 1: a logit per image.

    BasicSR builds it for 128 px crops (five stages to 4x4; ESRGAN's recipe) or 256 (six).
    Here the stages are counted from ``patch``, so any patch that halves down to 4 px or less
    works (96 -> 3x3, 192 -> 3x3; 128 and 256 give BasicSR's network exactly); only the first
    dense layer's input size follows the patch. Convolutions after the first have no bias
    (batch norm follows), batch norm uses PyTorch's epsilon 1e-5 and momentum 0.1.

    Args:
        patch: HR patch size (from ``[data] patch``), e.g. 96, 128, 192 or 256.
        filters: feature maps of the first stage (BasicSR ``num_feat``: 64).
        dense: units of the hidden dense layer (BasicSR: 100).
        leaky_slope: LeakyReLU negative slope (0.2).

    Output: float32 logits ``(batch, 1)``, no sigmoid.
    """
    stages = stages_for(patch) if patch > 0 else 0
    if stages == 0:
        raise ConfigError(
            f'discriminator "vgg_style" halves the patch until it is at most 4 px; '
            f"data.patch = {patch} does not halve evenly. Use 96, 128 (ESRGAN), 192 or 256."
        )
    for key, value in (("filters", filters), ("dense", dense)):
        if value <= 0:
            raise ConfigError(f"discriminator.{key} must be positive, not {value}.")

    def bn(name: str):
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)

    image = keras.Input(shape=(patch, patch, 3), name="image")
    x = keras.layers.Conv2D(filters, 3, padding="same", name="conv0_0")(image)
    x = keras.layers.LeakyReLU(leaky_slope, name="conv0_0_lrelu")(x)
    for i in range(stages):
        width = filters * min(2**i, 8)
        if i > 0:  # stage 0 starts with conv0_0 above
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}_0")(x)
            x = keras.layers.LeakyReLU(leaky_slope, name=f"conv{i}_0_lrelu")(bn(f"bn{i}_0")(x))
        # 4x4, stride 2, "same" pads 1 on each side: PyTorch's padding=1
        x = keras.layers.Conv2D(
            width, 4, strides=2, padding="same", use_bias=False, name=f"conv{i}_1"
        )(x)
        x = keras.layers.LeakyReLU(leaky_slope, name=f"conv{i}_1_lrelu")(bn(f"bn{i}_1")(x))
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, name="linear1")(x)
    x = keras.layers.LeakyReLU(leaky_slope, name="linear1_lrelu")(x)
    logits = keras.layers.Dense(1, dtype="float32", name="linear2")(x)
    return keras.Model(image, logits, name="vgg_style_discriminator")
