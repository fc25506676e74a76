"""pix2pix's PatchGAN discriminator (Isola et al., CVPR 2017; ``NLayerDiscriminator`` of
pytorch-CycleGAN-and-pix2pix): a logit per overlapping 70x70 patch with three layers."""

from __future__ import annotations

import keras

from harness.errors import ConfigError
from harness_models.layers import SpectralConv2D


def _side(patch: int, layers: int) -> int:
    side = patch
    for _ in range(layers):
        side = (side + 2 - 4) // 2 + 1
    return side - 2  # two stride-1 4x4 convolutions with padding 1


def patchgan(
    patch: int = 96,
    filters: int = 64,
    layers: int = 3,
    batch_norm: bool = True,
    spectral_norm: bool = False,
    leaky_slope: float = 0.2,
) -> keras.Model:
    """conv4x4/2 + LeakyReLU, ``layers - 1`` x (conv4x4/2 + norm + LeakyReLU), conv4x4/1 + norm
    + LeakyReLU, conv4x4/1 to one channel; feature maps ``filters`` x 1, 2, 4, 8 (capped at 8).
    Every convolution pads 1 pixel on each side, as pix2pix does (so the stride-1 ones shrink
    the map by one). With ``layers = 3`` each logit sees a 70x70 patch; at 96 px the output
    is a 10x10 map.

    Args:
        patch: HR patch size (from ``[data] patch``).
        filters: feature maps of the first convolution (pix2pix ``ndf``: 64).
        layers: stride-2 convolutions (pix2pix ``n_layers``: 3, the 70x70 PatchGAN).
        batch_norm: batch norm after every convolution but the first and the last (pix2pix's
            default ``norm='batch'``; false: none, and the convolutions get biases).
        spectral_norm: spectral normalisation of every convolution (``SpectralConv2D``).
        leaky_slope: LeakyReLU negative slope (0.2).

    Output: float32 logits ``(batch, h, w, 1)``, no sigmoid.
    """
    if filters <= 0 or layers <= 0:
        raise ConfigError(
            f"discriminator.filters and .layers must be positive, not {filters} and {layers}."
        )
    if patch <= 0 or _side(patch, layers) < 1:
        raise ConfigError(
            f'discriminator "patchgan" with layers = {layers} leaves no logit for a '
            f"{patch} px patch: raise data.patch or lower discriminator.layers."
        )
    conv_class = SpectralConv2D if spectral_norm else keras.layers.Conv2D

    def conv(x, n: int, stride: int, name: str, bias: bool, **kwargs):
        x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        return conv_class(n, 4, strides=stride, use_bias=bias, name=name, **kwargs)(x)

    def act(x, name: str):
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
        return keras.layers.LeakyReLU(leaky_slope, name=f"{name}_lrelu")(x)

    image = keras.Input(shape=(patch, patch, 3), name="image")
    x = conv(image, filters, 2, "conv0", True)
    x = keras.layers.LeakyReLU(leaky_slope, name="conv0_lrelu")(x)
    for i in range(1, layers):
        x = act(conv(x, filters * min(2**i, 8), 2, f"conv{i}", not batch_norm), f"conv{i}")
    x = act(
        conv(x, filters * min(2**layers, 8), 1, f"conv{layers}", not batch_norm), f"conv{layers}"
    )
    logits = conv(x, 1, 1, "logits", True, dtype="float32")
    return keras.Model(image, logits, name="patchgan_discriminator")
