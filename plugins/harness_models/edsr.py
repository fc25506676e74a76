"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017): residual blocks without batch normalisation, with residual scaling."""

from __future__ import annotations

import keras

from harness_models._common import positive, upsampler


def edsr(
    scale: int = 4, blocks: int = 16, filters: int = 64, res_scale: float = 0.1
) -> keras.Model:
    """EDSR: 3x3 conv head, ``blocks`` x (conv-ReLU-conv, scaled by ``res_scale``, + skip),
    conv + long skip, sub-pixel upsampling (no activation), 3x3 conv to RGB.

    The paper's output is linear; here a tanh keeps the harness' ``[-1, 1]`` contract, and the
    input is shifted from ``[0, 1]`` to ``[-1, 1]`` in place of EDSR's mean shift.

    Args:
        scale: upscaling factor (from ``[data] scale``; 2, 3, 4 or 8).
        blocks: residual blocks (EDSR baseline 16, EDSR 32).
        filters: feature maps (baseline 64, EDSR 256).
        res_scale: residual scaling (the paper uses 0.1 for its large model, which trains
            stably with it; 1.0 for the baseline).
    """
    positive("edsr", scale=scale, blocks=blocks, filters=filters, res_scale=res_scale)
    lr = keras.Input(shape=(None, None, 3), name="lr")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(lr)
    x = head = keras.layers.Conv2D(filters, 3, padding="same", name="head_conv")(x)
    for i in range(blocks):
        y = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"block{i}_conv1"
        )(x)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv2")(y)
        if res_scale != 1.0:
            y = keras.layers.Rescaling(res_scale, name=f"block{i}_scale")(y)
        x = keras.layers.Add(name=f"block{i}_add")([x, y])
    x = keras.layers.Conv2D(filters, 3, padding="same", name="body_conv")(x)
    x = keras.layers.Add(name="long_skip")([head, x])
    x = upsampler(x, filters, scale, "edsr", None, "up")
    sr = keras.layers.Conv2D(
        3, 3, padding="same", activation="tanh", dtype="float32", name="to_rgb"
    )(x)
    return keras.Model(lr, sr, name=f"edsr_x{scale}")
