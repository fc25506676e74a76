"""MSRResNet, BasicSR's "modified SRResNet" (Wang et al., ESRGAN, ECCVW 2018; the BasicSR
``MSRResNet`` architecture): SRResNet without batch normalisation, whose body learns only the
residual over an interpolated copy of the input."""

from __future__ import annotations

import typing
from typing import Literal

import keras

from harness.errors import ConfigError
from harness_models._common import positive, upsampler
from harness_models.layers import Interpolate

Skip = Literal["bilinear", "bicubic", "nearest"]
SKIPS = typing.get_args(Skip)


def msrresnet(
    scale: int = 4,
    blocks: int = 16,
    filters: int = 64,
    skip: Skip = "bilinear",
    init_scale: float = 0.1,
) -> keras.Model:
    """MSRResNet: 3x3 conv + LeakyReLU(0.1), ``blocks`` x (conv-ReLU-conv + skip), sub-pixel
    upsampling with LeakyReLU, 3x3 conv + LeakyReLU, 3x3 conv to RGB, plus the input upscaled
    by ``skip`` interpolation (the global residual).

    Convolutions start from Kaiming-normal weights multiplied by ``init_scale`` (BasicSR's
    ``default_init_weights(..., 0.1)``), so an untrained model already outputs the
    interpolated input and training begins near the interpolation's PSNR. The sum is
    clipped to ``[0, 1]`` and mapped to the harness' ``[-1, 1]`` (BasicSR clamps at test time).

    Args:
        scale: upscaling factor (from ``[data] scale``; 2, 3, 4 or 8).
        blocks: residual blocks (BasicSR: 16).
        filters: feature maps (BasicSR: 64).
        skip: interpolation of the global residual: ``bilinear`` (BasicSR), ``bicubic`` or
            ``nearest``.
        init_scale: multiplier of the Kaiming-normal initial weights (BasicSR: 0.1).
    """
    positive("msrresnet", scale=scale, blocks=blocks, filters=filters, init_scale=init_scale)
    if skip not in SKIPS:
        raise ConfigError(
            f'generator.skip of "msrresnet" must be one of {", ".join(SKIPS)}, not "{skip}".'
        )
    init = keras.initializers.VarianceScaling(
        scale=2.0 * init_scale**2, mode="fan_in", distribution="untruncated_normal"
    )

    def conv(n: int, name: str, activation: str | None = None) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            n, 3, padding="same", activation=activation, kernel_initializer=init, name=name
        )

    lr = keras.Input(shape=(None, None, 3), name="lr")
    x = conv(filters, "head_conv")(lr)
    x = keras.layers.LeakyReLU(negative_slope=0.1, name="head_lrelu")(x)
    for i in range(blocks):
        y = conv(filters, f"block{i}_conv1", "relu")(x)
        y = conv(filters, f"block{i}_conv2")(y)
        x = keras.layers.Add(name=f"block{i}_add")([x, y])
    x = upsampler(x, filters, scale, "msrresnet", "lrelu", "up", init)
    x = conv(filters, "hr_conv")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1, name="hr_lrelu")(x)
    residual = keras.layers.Conv2D(
        3, 3, padding="same", kernel_initializer=init, dtype="float32", name="to_rgb"
    )(x)
    base = Interpolate(scale, skip, dtype="float32", name="skip")(lr)
    x = keras.layers.Add(dtype="float32", name="global_skip")([base, residual])
    x = keras.layers.ReLU(max_value=1.0, dtype="float32", name="clip")(x)
    sr = keras.layers.Rescaling(2.0, offset=-1.0, dtype="float32", name="to_signed")(x)
    return keras.Model(lr, sr, name=f"msrresnet_x{scale}")
