"""The per-image evaluation: upscale each LR, score the SR against its HR, and the means.

:func:`evaluate` runs the protocol over a set of images (the bicubic LR of each HR, or a given
LR); :func:`score` measures one SR image: PSNR-Y, SSIM-Y, PSNR-RGB, and each extra metric on the
images its :class:`~harness.plugin_api.metrics.MetricProtocol` declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.data.images import to_uint8
from harness.errors import HarnessError
from harness.measures.bicubic import Upscaler, bicubic_downsample
from harness.measures.quality import PSNR_CAP, crop_border, psnr, ssim
from harness.plugin_api.metrics import MEASURES, metric_protocol, rgb_to_y


@dataclass(frozen=True)
class ImageScore:
    """The protocol's figures for one image (plus any extra metrics by name)."""

    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def capped(self) -> tuple[str, ...]:
        """The PSNR measures at the cap: the image is (all but) identical to its HR."""
        return tuple(k for k in ("psnr_y", "psnr_rgb") if getattr(self, k) >= PSNR_CAP)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "psnr_y": self.psnr_y,
            "ssim_y": self.ssim_y,
            "psnr_rgb": self.psnr_rgb,
            **self.extra,
        }
        if self.capped:
            out["note"] = capped_note(self.capped)
        return out


def capped_note(measures: tuple[str, ...]) -> str:
    """What a capped PSNR means, said beside the image's numbers."""
    return f"{', '.join(measures)} capped at {PSNR_CAP:g} dB (SR equal to HR: PSNR infinite)"


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
        """The mean of ``measure`` over the images (PSNR of identical images counts as
        :data:`~harness.measures.quality.PSNR_CAP`)."""
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
