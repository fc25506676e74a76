"""SRResNet, the SRGAN generator (Ledig et al., "Photo-Realistic Single Image
Super-Resolution Using a Generative Adversarial Network", CVPR 2017, fig. 4)."""

from __future__ import annotations

import keras

from harness_models._common import positive, upsampler
from harness_models.layers import FusedBatchNorm


def srresnet(
    scale: int = 4, blocks: int = 16, filters: int = 64, batch_norm: bool = True
) -> keras.Model:
    """SRResNet: 9x9 conv + PReLU, ``blocks`` residual blocks (conv-BN-PReLU-conv-BN + skip),
    conv-BN + long skip, sub-pixel upsampling, 9x9 conv to RGB with tanh.

    Args:
        scale: upscaling factor (from ``[data] scale``; 2, 3, 4 or 8).
        blocks: residual blocks (the paper: 16).
        filters: feature maps per convolution (the paper: 64).
        batch_norm: batch normalisation in the blocks; ``false`` gives the EDSR-style
            variant without it.

    Input: LR in ``[0, 1]``, any size. Output: SR in ``[-1, 1]``, float32.
    """
    positive("srresnet", scale=scale, blocks=blocks, filters=filters)
    lr = keras.Input(shape=(None, None, 3), name="lr")
    x = keras.layers.Conv2D(filters, 9, padding="same", name="head_conv")(lr)
    x = head = keras.layers.PReLU(shared_axes=[1, 2], name="head_prelu")(x)
    for i in range(blocks):
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv1")(x)
        if batch_norm:
            y = FusedBatchNorm(momentum=0.9, name=f"block{i}_bn1")(y)
        y = keras.layers.PReLU(shared_axes=[1, 2], name=f"block{i}_prelu")(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv2")(y)
        if batch_norm:
            y = FusedBatchNorm(momentum=0.9, name=f"block{i}_bn2")(y)
        x = keras.layers.Add(name=f"block{i}_add")([x, y])
    x = keras.layers.Conv2D(filters, 3, padding="same", name="body_conv")(x)
    if batch_norm:
        x = FusedBatchNorm(momentum=0.9, name="body_bn")(x)
    x = keras.layers.Add(name="long_skip")([head, x])
    x = upsampler(x, filters, scale, "srresnet", "prelu", "up")
    # The 9x9 convolution to 3 channels at HR size is the step's costliest layer: it runs in
    # the policy's compute dtype (bf16 under mixed_bfloat16, as PyTorch's autocast runs it),
    # and the tanh in float32, so the output stays float32.
    x = keras.layers.Conv2D(3, 9, padding="same", name="to_rgb")(x)
    sr = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(lr, sr, name=f"srresnet_x{scale}")
