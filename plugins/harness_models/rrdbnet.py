"""ESRGAN's RRDBNet (Wang et al., ECCVW 2018; BasicSR's ``RRDBNet``): residual-in-residual
dense blocks, no batch normalisation."""

from __future__ import annotations

import keras

from harness_models._common import positive, upsample_factors
from harness_models.layers import Interpolate


def rrdbnet(
    scale: int = 4,
    blocks: int = 23,
    filters: int = 64,
    growth: int = 32,
    residual_scale: float = 0.2,
    init_scale: float = 0.1,
) -> keras.Model:
    """conv3x3; ``blocks`` RRDBs (each three residual dense blocks of five densely connected
    conv3x3, the first four + LeakyReLU(0.2) with ``growth`` channels, the block's output
    scaled by ``residual_scale`` and added; the RRDB's output scaled and added again); conv3x3
    + the trunk skip; per x2 (or x3) stage a nearest upsampling + conv3x3 + LeakyReLU; conv3x3
    + LeakyReLU; conv3x3 to RGB.

    At ``scale = 4`` with the defaults this is BasicSR's ``RRDBNet(3, 3, 64, 23, 32)``
    (16,697,987 parameters). Other scales use as many nearest-x2 stages (x2, x8) or one x3
    stage, as the original ESRGAN code did for x2/x8, not BasicSR's pixel-unshuffled input.
    The dense blocks' convolutions start from Kaiming-normal weights times ``init_scale``
    (BasicSR's ``default_init_weights(..., 0.1)``). The output is clipped to ``[0, 1]`` (what
    BasicSR does when it saves an image) and mapped to ``[-1, 1]``.

    Args:
        scale: upscaling factor (from ``[data] scale``; 2, 3, 4 or 8).
        blocks: RRDBs in the trunk (ESRGAN: 23; Real-ESRGAN's anime model: 6).
        filters: feature maps (BasicSR ``num_feat``: 64).
        growth: channels each dense convolution adds (``num_grow_ch``: 32).
        residual_scale: scaling of each residual before it is added (ESRGAN: 0.2).
        init_scale: multiplier of the dense convolutions' Kaiming-normal initial weights (0.1).
    """
    positive("rrdbnet", scale=scale, blocks=blocks, filters=filters, growth=growth)
    positive("rrdbnet", residual_scale=residual_scale, init_scale=init_scale)
    factors = upsample_factors(scale, "rrdbnet")
    dense_init = keras.initializers.VarianceScaling(
        scale=2.0 * init_scale**2, mode="fan_in", distribution="untruncated_normal"
    )

    def conv(n: int, name: str, init="glorot_uniform", **kwargs) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            n, 3, padding="same", kernel_initializer=init, name=name, **kwargs
        )

    def lrelu(x, name: str):
        return keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)

    def scaled_add(x, residual, name: str):
        residual = keras.layers.Rescaling(residual_scale, name=f"{name}_scale")(residual)
        return keras.layers.Add(name=f"{name}_add")([x, residual])

    def rdb(x, name: str):
        features = [x]
        for i in range(1, 5):
            inputs = (
                features[0] if i == 1 else keras.layers.Concatenate(name=f"{name}_cat{i}")(features)
            )
            features.append(
                lrelu(conv(growth, f"{name}_conv{i}", dense_init)(inputs), f"{name}_conv{i}")
            )
        out = conv(filters, f"{name}_conv5", dense_init)(
            keras.layers.Concatenate(name=f"{name}_cat5")(features)
        )
        return scaled_add(x, out, name)

    lr = keras.Input(shape=(None, None, 3), name="lr")
    feat = conv(filters, "conv_first")(lr)
    x = feat
    for b in range(blocks):
        y = x
        for r in range(1, 4):
            y = rdb(y, f"rrdb{b}_rdb{r}")
        x = scaled_add(x, y, f"rrdb{b}")
    x = keras.layers.Add(name="trunk_add")([feat, conv(filters, "conv_body")(x)])
    for i, factor in enumerate(factors, start=1):
        x = Interpolate(factor, "nearest", name=f"up{i}")(x)
        x = lrelu(conv(filters, f"conv_up{i}")(x), f"conv_up{i}")
    x = lrelu(conv(filters, "conv_hr")(x), "conv_hr")
    x = conv(3, "conv_last", dtype="float32")(x)
    x = keras.layers.ReLU(max_value=1.0, dtype="float32", name="clip")(x)
    sr = keras.layers.Rescaling(2.0, offset=-1.0, dtype="float32", name="to_signed")(x)
    return keras.Model(lr, sr, name=f"rrdbnet_x{scale}")
