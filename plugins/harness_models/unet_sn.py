"""Real-ESRGAN's U-Net discriminator with spectral normalisation (Wang et al., ICCVW 2021;
``UNetDiscriminatorSN``): a logit per pixel."""

from __future__ import annotations

import keras

from harness.errors import ConfigError
from harness_models.layers import Interpolate, SpectralConv2D


def unet_sn(
    patch: int = 256, filters: int = 64, skip_connection: bool = True, leaky_slope: float = 0.2
) -> keras.Model:
    """conv3x3; three spectral-normalised conv4x4/2 down (``filters`` x 2, 4, 8); three x
    (bilinear x2 up, spectral-normalised conv3x3, + the encoder map of that size when
    ``skip_connection``); two spectral-normalised conv3x3; conv3x3 to one channel. LeakyReLU
    after every convolution but the last. The spectral-normalised convolutions have no bias
    (:class:`~harness_models.layers.SpectralConv2D`, PyTorch's ``spectral_norm``).

    Args:
        patch: HR patch size (from ``[data] patch``), a multiple of 8 (Real-ESRGAN: 256).
        filters: feature maps of the first convolution (Real-ESRGAN ``num_feat``: 64).
        skip_connection: add the encoder maps on the way up (Real-ESRGAN: true).
        leaky_slope: LeakyReLU negative slope (0.2).

    Output: float32 logits ``(batch, patch, patch, 1)``, no sigmoid.
    """
    if patch <= 0 or patch % 8:
        raise ConfigError(
            f'discriminator "unet_sn" needs data.patch to be a multiple of 8 (three stride-2 '
            f"convolutions and three x2 upsamplings), not {patch}."
        )
    if filters <= 0:
        raise ConfigError(f"discriminator.filters must be positive, not {filters}.")

    def lrelu(x, name: str):
        return keras.layers.LeakyReLU(leaky_slope, name=f"{name}_lrelu")(x)

    def sn(x, n: int, kernel: int, stride: int, name: str):
        layer = SpectralConv2D(n, kernel, strides=stride, padding="same", use_bias=False, name=name)
        return lrelu(layer(x), name)

    image = keras.Input(shape=(patch, patch, 3), name="image")
    x0 = lrelu(keras.layers.Conv2D(filters, 3, padding="same", name="conv0")(image), "conv0")
    x1 = sn(x0, filters * 2, 4, 2, "conv1")
    x2 = sn(x1, filters * 4, 4, 2, "conv2")
    x3 = sn(x2, filters * 8, 4, 2, "conv3")
    x = x3
    for i, (skip, width) in enumerate(((x2, 4), (x1, 2), (x0, 1)), start=4):
        x = Interpolate(2, "bilinear", name=f"up{i}")(x)
        x = sn(x, filters * width, 3, 1, f"conv{i}")
        if skip_connection:
            x = keras.layers.Add(name=f"skip{i}")([x, skip])
    x = sn(x, filters, 3, 1, "conv7")
    x = sn(x, filters, 3, 1, "conv8")
    logits = keras.layers.Conv2D(1, 3, padding="same", dtype="float32", name="conv9")(x)
    return keras.Model(image, logits, name="unet_sn_discriminator")
