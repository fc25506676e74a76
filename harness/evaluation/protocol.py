"""The super-resolution literature's evaluation protocol.

As in the SRGAN, EDSR and RCAN papers (and their MATLAB scripts):

1. the HR image is cropped to a multiple of the scale (bottom/right edges);
2. its LR is made by MATLAB ``imresize(hr, 1/scale, 'bicubic')``: the cubic kernel (a = -0.5),
   widened by the scale for antialiasing, symmetric edge handling, rounded to 8 bits;
3. the model's output is clipped and rounded to 8 bits;
4. PSNR and SSIM are computed on the Y channel of ITU-R BT.601 YCbCr (studio swing, 16..235,
   not rounded), after cropping ``scale`` pixels from each border; RGB PSNR is also reported.

SSIM is Wang et al.'s Gaussian-window SSIM (11x11, sigma 1.5, K1 0.01, K2 0.03, L 255), the mean of
the "valid" SSIM map, computed by scikit-image. The resize here is a port of MATLAB's ``imresize``
algorithm as separable weight matrices, so the same weights serve NumPy evaluation and the
tf.data training pipeline.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from harness.data.images import to_uint8
from harness.errors import HarnessError

Upscaler = Callable[[np.ndarray], np.ndarray]
"""``upscale(lr float32 (N, h, w, 3) in [0, 1]) -> float32 (N, h*s, w*s, 3) in [0, 1]``."""

# --------------------------------------------------------------------------- MATLAB imresize


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@functools.lru_cache(maxsize=256)
def resize_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """The ``(out_len, in_len)`` float64 matrix of MATLAB ``imresize`` along one axis.

    ``scale`` is out/in (0.25 to downsample 4x). Mirrors MATLAB's ``contributions``: kernel width
    4, widened by ``1/scale`` when shrinking (antialiasing), weights normalised per output pixel,
    out-of-range taps folded back symmetrically.
    """
    kernel_width = 4.0
    if scale < 1:

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    folded = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(matrix, (rows, folded.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def imresize(image: np.ndarray, scale: float, out_hw: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB ``imresize(image, scale, 'bicubic')`` on float data, no rounding or clipping.

    ``image`` is ``(H, W, C)`` or ``(N, H, W, C)``; returns float64 of the same rank.
    """
    arr = np.asarray(image, dtype=np.float64)
    squeeze = arr.ndim == 3
    if squeeze:
        arr = arr[None]
    if arr.ndim != 4:
        raise HarnessError(f"imresize expects (H, W, C) or (N, H, W, C), not shape {arr.shape}.")
    h, w = arr.shape[1:3]
    oh, ow = out_hw or (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
    rows = resize_matrix(h, oh, float(scale))
    cols = resize_matrix(w, ow, float(scale))
    out = np.einsum("oh,nhwc->nowc", rows, arr, optimize=True)
    out = np.einsum("pw,nowc->nopc", cols, out, optimize=True)
    return out[0] if squeeze else out


def _check_divisible(shape: Sequence[int], scale: int) -> None:
    h, w = shape
    if h % scale or w % scale:
        raise HarnessError(
            f"an HR image of {w}x{h} pixels is not a multiple of scale {scale}; crop it first "
            "(harness.data.images.modcrop)."
        )


def bicubic_downsample(hr_uint8: np.ndarray, scale: int, quantize: bool = True) -> np.ndarray:
    """LR float32 in ``[0, 1]`` from a uint8 HR by MATLAB bicubic ``imresize(hr, 1/scale)``.

    ``hr_uint8`` is ``(H, W, 3)`` or ``(N, H, W, 3)`` with H, W multiples of ``scale``. With
    ``quantize`` (the protocol, and how LR test sets are distributed) the LR is rounded to 8-bit
    levels first, as MATLAB does for uint8 input.
    """
    hr = np.asarray(hr_uint8)
    _check_divisible(hr.shape[-3:-1], scale)
    h, w = hr.shape[-3:-1]
    lr = imresize(hr.astype(np.float64), 1.0 / scale, (h // scale, w // scale))
    if quantize:
        return (to_uint8(lr / 255.0).astype(np.float32)) / np.float32(255.0)
    return np.clip(lr / 255.0, 0.0, 1.0).astype(np.float32)


def bicubic_upsample(lr_float: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic ``imresize(lr, scale)`` of float ``[0, 1]`` images, clipped to ``[0, 1]``.

    ``(h, w, 3)`` or ``(N, h, w, 3)`` -> float32 of the same rank, ``scale`` times larger: the
    bicubic baseline as an upscaler.
    """
    lr = np.asarray(lr_float, dtype=np.float64)
    h, w = lr.shape[-3:-1]
    sr = imresize(lr, float(scale), (h * scale, w * scale))
    return np.clip(sr, 0.0, 1.0).astype(np.float32)


def bicubic_upscaler(scale: int) -> Upscaler:
    """The bicubic baseline as an upscaler (float32 NHWC ``[0, 1]`` in and out)."""

    def upscale(lr: np.ndarray) -> np.ndarray:
        return bicubic_upsample(lr, scale)

    upscale.scale = scale  # type: ignore[attr-defined]
    return upscale


# --------------------------------------------------------------------------- measures


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """The BT.601 studio-swing luma (16..235) of RGB in 0..255, float64, not rounded.

    Equal to MATLAB ``rgb2ycbcr`` on double input (times 255), as EDSR/BasicSR compute it.
    """
    rgb = np.asarray(image, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


SSIM_WINDOW = 11
"""The SSIM window's side: scikit-image's Gaussian window of sigma 1.5 (cut at 3.5 sigma)."""


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Wang et al. (2004) SSIM of two 2-D images, the literature's configuration.

    scikit-image computes it: an 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population
    (not sample) covariances, ``data_range`` 255 for the Y channel, the mean of the map without
    the 5-pixel margin the window cannot cover (the "valid" map of the MATLAB script).
    """
    from skimage.metrics import structural_similarity

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise HarnessError(f"ssim needs two 2-D images of equal shape, got {x.shape}, {y.shape}.")
    if min(x.shape) < SSIM_WINDOW:
        raise HarnessError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (after the border "
            f"crop), got {x.shape[1]}x{x.shape[0]}."
        )
    return float(
        structural_similarity(
            x,
            y,
            gaussian_weights=True,
            sigma=1.5,
            win_size=SSIM_WINDOW,
            K1=0.01,
            K2=0.03,
            use_sample_covariance=False,
            data_range=data_range,
        )
    )


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` without ``border`` pixels on each side."""
    if border <= 0:
        return image
    return image[border:-border, border:-border]


# --------------------------------------------------------------------------- metric protocols


@dataclass(frozen=True)
class MetricProtocol:
    """How the evaluation hands images to a metric plugin, declared by the plugin itself.

    Perceptual metrics are reported on a different protocol from PSNR/SSIM: the perceptual-SR
    papers (SPSR, LDL, traiNNer-redux) compute LPIPS on the whole RGB image, while PSNR/SSIM crop
    ``scale`` pixels from each border and use the BT.601 Y channel. A metric declares which it
    wants, and ``harness evaluate``, validation, sweeps and ``harness report`` all follow it.

    Attributes:
        crop_border: crop the protocol's border (``scale`` pixels) from each side first.
        color: ``"rgb"``: uint8 ``(H, W, 3)``; ``"y"``: the BT.601 luma, float64 ``(H, W)`` in
            16..235 (:func:`rgb_to_y`).
        higher_is_better: the metric's direction (sweeps, best checkpoints, reports).
        decimals: digits printed in tables.
        in_validation: measured at every validation by default; a costly metric (a network per
            image) says ``False`` and runs only when ``[validation] metrics`` lists it.
    """

    crop_border: bool = True
    color: Literal["rgb", "y"] = "rgb"
    higher_is_better: bool = True
    decimals: int = 4
    in_validation: bool = True

    def __post_init__(self) -> None:
        if self.color not in ("rgb", "y"):
            raise HarnessError(f'a metric protocol\'s color is "rgb" or "y", not "{self.color}".')

    def describe(self) -> str:
        """A short text for tables and reports, e.g. ``RGB, whole image, lower is better``."""
        crop = "border cropped" if self.crop_border else "whole image"
        better = "higher" if self.higher_is_better else "lower"
        return f"{self.color.upper()}, {crop}, {better} is better"


def metric_protocol(metric: Any) -> MetricProtocol:
    """The protocol a metric plugin (its factory or the built metric) declares.

    ``protocol = MetricProtocol(...)`` on the object wins; a bare ``higher_is_better``
    attribute (the older declaration) is honoured; otherwise the PSNR protocol's defaults.
    """
    declared = getattr(metric, "protocol", None)
    if isinstance(declared, MetricProtocol):
        return declared
    if declared is not None:
        raise HarnessError(
            f"{getattr(metric, '__name__', metric)!r} declares protocol = {declared!r}; it must "
            "be a harness.evaluation.protocol.MetricProtocol."
        )
    return MetricProtocol(higher_is_better=bool(getattr(metric, "higher_is_better", True)))


def build_metric(factory: Callable[..., Any], **params: Any) -> Callable[..., float]:
    """``factory(**params)`` carrying the factory's protocol when the metric declares none."""
    metric = factory(**params)
    if getattr(metric, "protocol", None) is None:
        protocol = metric_protocol(factory)
        try:
            metric.protocol = protocol
        except AttributeError:  # a callable that takes no attributes: wrap it
            inner = metric

            def metric(sr: np.ndarray, hr: np.ndarray) -> float:
                return inner(sr, hr)

            metric.protocol = protocol  # type: ignore[attr-defined]
    return metric


PROTOCOL_MEASURES: dict[str, MetricProtocol] = {
    "psnr_y": MetricProtocol(True, "y", True, 2),
    "ssim_y": MetricProtocol(True, "y", True, 4),
    "psnr_rgb": MetricProtocol(True, "rgb", True, 2),
}
"""The protocol's own measures, with the same declaration as plugins."""


def format_value(value: float, protocol: MetricProtocol | None = None) -> str:
    """A table cell: ``inf`` or the value with the protocol's decimals (4 by default)."""
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    return f"{value:.{(protocol or MetricProtocol()).decimals}f}"


# --------------------------------------------------------------------------- evaluation

MEASURES: tuple[str, ...] = ("psnr_y", "ssim_y", "psnr_rgb")


@dataclass(frozen=True)
class ImageScore:
    """The protocol's figures for one image (plus any extra metrics by name)."""

    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "psnr_y": self.psnr_y,
            "ssim_y": self.ssim_y,
            "psnr_rgb": self.psnr_rgb,
            **self.extra,
        }


@dataclass(frozen=True)
class EvalResult:
    """Per-image scores and their means."""

    images: tuple[ImageScore, ...]
    scale: int
    border: int

    @property
    def measures(self) -> tuple[str, ...]:
        extra = list(self.images[0].extra) if self.images else []
        return (*MEASURES, *extra)

    def mean(self, measure: str) -> float:
        """The mean of ``measure`` over the images (PSNR of identical images counts as inf)."""
        values = [s.as_dict()[measure] for s in self.images]
        return float(np.mean(values)) if values else math.nan

    @property
    def psnr_y(self) -> float:
        return self.mean("psnr_y")

    @property
    def ssim_y(self) -> float:
        return self.mean("ssim_y")

    @property
    def psnr_rgb(self) -> float:
        return self.mean("psnr_rgb")

    def means(self) -> dict[str, float]:
        return {m: self.mean(m) for m in self.measures}

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "border": self.border,
            "count": len(self.images),
            "mean": self.means(),
            "images": [s.as_dict() for s in self.images],
        }


def score(
    sr_uint8: np.ndarray,
    hr_uint8: np.ndarray,
    border: int,
    extra: Mapping[str, Callable[[np.ndarray, np.ndarray], float]] | None = None,
    name: str = "",
) -> ImageScore:
    """The protocol's figures for one 8-bit SR image against its HR (same shape)."""
    if sr_uint8.shape != hr_uint8.shape:
        raise HarnessError(
            f"{name or 'image'}: SR shape {sr_uint8.shape} differs from HR shape {hr_uint8.shape}."
        )
    sr = crop_border(sr_uint8, border)
    hr = crop_border(hr_uint8, border)
    sr_y, hr_y = rgb_to_y(sr), rgb_to_y(hr)
    extras = {}
    for key, fn in (extra or {}).items():
        protocol = metric_protocol(fn)
        a, b = (sr, hr) if protocol.crop_border else (sr_uint8, hr_uint8)
        if protocol.color == "y":
            a, b = (sr_y, hr_y) if protocol.crop_border else (rgb_to_y(a), rgb_to_y(b))
        extras[key] = float(fn(a, b))
    return ImageScore(
        name=name,
        psnr_y=psnr(sr_y, hr_y),
        ssim_y=ssim(sr_y, hr_y),
        psnr_rgb=psnr(sr, hr),
        extra=extras,
    )


def evaluate(
    upscale: Upscaler,
    images: Iterable[tuple[str, np.ndarray] | tuple[str, np.ndarray, np.ndarray]],
    scale: int,
    border: int | None = None,
    extra: Mapping[str, Callable[[np.ndarray, np.ndarray], float]] | None = None,
) -> EvalResult:
    """Run the protocol: ``upscale`` each image's bicubic LR and score it against its HR.

    ``images`` holds ``(name, uint8 HR (H, W, 3))``; HR is cropped to a multiple of ``scale``
    here. An item ``(name, HR, LR)`` gives its uint8 LR (real or separately degraded LR, e.g.
    ``harness evaluate --lr``), which is upscaled instead of the bicubic one; the HR is then
    of the size LR * ``scale``. ``border`` defaults to ``scale``. ``extra`` adds metrics
    ``fn(sr, hr) -> float`` on the images each metric's :class:`MetricProtocol` asks for (the
    registered ``metric`` plugins have this signature): cropped or whole, RGB or Y.
    """
    border = scale if border is None else border
    scores = []
    for name, hr, *given in images:
        hr = np.asarray(hr)
        if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
            raise HarnessError(
                f"{name}: evaluation needs uint8 (H, W, 3) HR images, not {hr.dtype} {hr.shape}."
            )
        hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
        lr = given_lr(name, hr, given[0], scale) if given else bicubic_downsample(hr, scale)
        sr = np.asarray(upscale(lr[None]))
        if sr.ndim != 4 or sr.shape[1:] != hr.shape:
            raise HarnessError(
                f"{name}: the model returned shape {tuple(sr.shape)} for an LR of shape "
                f"{(1, *lr.shape)}; expected {(1, *hr.shape)} (scale {scale}). Is --scale right?"
            )
        scores.append(score(to_uint8(sr[0]), hr, border, extra, name))
    return EvalResult(tuple(scores), scale, border)


def given_lr(name: str, hr: np.ndarray, lr: np.ndarray, scale: int) -> np.ndarray:
    """A given uint8 LR checked against its (modcropped) HR, as float32 ``[0, 1]``."""
    lr = np.asarray(lr)
    if lr.dtype != np.uint8 or lr.ndim != 3 or lr.shape[2] != 3:
        raise HarnessError(
            f"{name}: a given LR must be uint8 (h, w, 3), not {lr.dtype} {lr.shape}."
        )
    if (lr.shape[0] * scale, lr.shape[1] * scale) != hr.shape[:2]:
        raise HarnessError(
            f"{name}: the LR is {lr.shape[1]}x{lr.shape[0]} px and the HR (cropped to a "
            f"multiple of {scale}) {hr.shape[1]}x{hr.shape[0]} px; at scale {scale} the HR must "
            f"be {lr.shape[1] * scale}x{lr.shape[0] * scale}."
        )
    return lr.astype(np.float32) / np.float32(255.0)
