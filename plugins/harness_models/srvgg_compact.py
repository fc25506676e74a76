"""Real-ESRGAN's SRVGGNetCompact (Wang et al., ICCVW 2021; the ``realesr-animevideov3`` and
``realesr-general-x4v3`` models): a plain convolution stack at LR, one pixel shuffle at the
end, plus the nearest-upscaled input."""

from __future__ import annotations

import typing
from typing import Literal

import keras

from harness.errors import ConfigError
from harness_models._common import positive
from harness_models.layers import Interpolate, PixelShuffle

Activation = Literal["prelu", "relu", "lrelu"]
ACTIVATIONS = typing.get_args(Activation)


def srvgg_compact(
    scale: int = 4, filters: int = 64, convs: int = 16, activation: Activation = "prelu"
) -> keras.Model:
    """conv3x3 + activation, ``convs`` x (conv3x3 + activation), conv3x3 to ``3 * scale^2``
    channels, one pixel shuffle by ``scale``, plus the input upscaled by nearest neighbour. No
    convolution runs at HR, so the cost per LR pixel does not grow with the scale.

    With the defaults (Real-ESRGAN's class defaults, ``realesr-animevideov3``) and ``scale =
    4`` it has 621,424 parameters; ``convs = 32`` is ``realesr-general-x4v3`` (1,213,296). The
    pixel shuffle is ``tf.nn.depth_to_space``, whose channel order differs from PyTorch's
    ``PixelShuffle`` (ported weights need the last convolution's output channels permuted).
    The sum is clipped to ``[0, 1]`` and mapped to ``[-1, 1]``.

    Args:
        scale: upscaling factor (from ``[data] scale``; any integer >= 1).
        filters: feature maps (``num_feat``: 64).
        convs: convolutions in the body (``num_conv``: 16; 32 for the general model).
        activation: ``prelu`` (per channel, Real-ESRGAN's default), ``relu`` or ``lrelu``
            (slope 0.1).
    """
    positive("srvgg_compact", scale=scale, filters=filters, convs=convs)
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f'generator.activation of "srvgg_compact" must be one of {", ".join(ACTIVATIONS)}, '
            f'not "{activation}".'
        )

    def act(x, name: str):
        if activation == "prelu":
            return keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)
        if activation == "relu":
            return keras.layers.ReLU(name=f"{name}_relu")(x)
        return keras.layers.LeakyReLU(negative_slope=0.1, name=f"{name}_lrelu")(x)

    lr = keras.Input(shape=(None, None, 3), name="lr")
    x = act(keras.layers.Conv2D(filters, 3, padding="same", name="conv0")(lr), "conv0")
    for i in range(1, convs + 1):
        x = act(keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x), f"conv{i}")
    x = keras.layers.Conv2D(
        3 * scale * scale, 3, padding="same", dtype="float32", name="conv_last"
    )(x)
    x = PixelShuffle(scale, dtype="float32", name="shuffle")(x)
    base = Interpolate(scale, "nearest", dtype="float32", name="base")(lr)
    x = keras.layers.Add(dtype="float32", name="residual_add")([base, x])
    x = keras.layers.ReLU(max_value=1.0, dtype="float32", name="clip")(x)
    sr = keras.layers.Rescaling(2.0, offset=-1.0, dtype="float32", name="to_signed")(x)
    return keras.Model(lr, sr, name=f"srvgg_compact_x{scale}")
