"""What a run measures at a validation: the protocol's PSNR/SSIM plus the metric plugins that
``[validation] metrics`` lists (only those), on the final generator; and the sample grids.

A metric's protocol and direction come from its plugin
(:func:`harness.plugin_api.metrics.metric_protocol`); the host names no metric plugin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from harness.config import Experiment
from harness.data import pipeline as data
from harness.data.images import to_uint8
from harness.deploy.upscaler import Upscaler
from harness.measures.bicubic import bicubic_downsample, bicubic_upsample, bicubic_upscaler
from harness.measures.quality import crop_border, psnr
from harness.measures.scoring import EvalResult, evaluate, given_lr
from harness.plugin_api.metrics import build_metric, metric_protocol, rgb_to_y
from harness.plugin_api.registry import Registry


def validation_metrics(exp: Experiment) -> list[str]:
    """The metric plugins a run measures at each validation: ``[validation] metrics`` (the
    configuration has already folded the older ``lpips = true`` spelling into it)."""
    return list(exp.validation.metrics)


def metric_directions(exp: Experiment, registry: Registry) -> dict[str, bool]:
    """``val/<metric>`` -> higher is better, for PSNR-Y and every listed metric plugin."""
    out = {"val/psnr_y": True}
    for name in validation_metrics(exp):
        factory = registry.factory("metric", name, where="[validation] metrics")
        out[f"val/{name}"] = metric_protocol(factory).higher_is_better
    return out


def validation_extras(exp: Experiment, registry: Registry) -> dict[str, Callable[..., float]]:
    """The listed metric plugins, built; each is measured on the protocol it declares."""
    return {
        name: build_metric(registry.factory("metric", name, where="[validation] metrics"))
        for name in validation_metrics(exp)
    }


def mean_metrics(result: Any, prefix: str = "val/") -> dict[str, float]:
    """An ``EvalResult`` -> its finite means under MLflow names (``val/psnr_y``, ...)."""
    return {prefix + k: float(v) for k, v in result.means().items() if math.isfinite(v)}


class Validator:
    """The validation images of a run and the metrics measured on them."""

    def __init__(self, exp: Experiment, registry: Registry) -> None:
        self.scale = exp.data.scale
        self.images = data.validation_images(exp.data)
        self.samples = self.images[: exp.validation.samples]
        self.extras = validation_extras(exp, registry) if self.images else {}
        self._upscalers: dict[int, Any] = {}
        self.last: EvalResult | None = None  # the last validation's per-image scores

    def bicubic(self) -> dict[str, float]:
        """The bicubic baseline's metrics (``val/bicubic_psnr_y``, ...)."""
        result = evaluate(bicubic_upscaler(self.scale), self.images, self.scale)
        return mean_metrics(result, "val/bicubic_")

    def upscaler(self, generator: Any) -> Callable[[np.ndarray], np.ndarray]:
        """``generator`` as an upscaler, LR ``[0, 1]`` -> SR ``[0, 1]`` (built once per model)."""
        key = id(generator)
        if key not in self._upscalers:
            self._upscalers[key] = Upscaler.from_generator(generator)
        return self._upscalers[key]

    def __call__(self, generator: Any) -> dict[str, float]:
        """The validation metrics of ``generator`` under their MLflow names."""
        upscale = self.upscaler(generator)
        self.last = evaluate(upscale, self.images, self.scale, extra=self.extras)
        return mean_metrics(self.last)


SAMPLE_COLUMNS = ("LR", "bicubic", "SR", "HR")
"""The sample grid's columns, left to right (LR enlarged by pixel repetition)."""

_GAP = 4  # white pixels between tiles and rows
MIN_TILE = 128
"""Tiles narrower than this are enlarged by a whole factor (pixel repetition, no new detail),
so that captions sized to the tile stay legible."""


def tile_factor(width: int) -> int:
    """The whole factor a tile ``width`` pixels wide is enlarged by (:data:`MIN_TILE`)."""
    return max(1, -(-MIN_TILE // max(1, width)))


def caption_height(width: int) -> int:
    """The caption band above a tile ``width`` pixels wide (after :func:`tile_factor`): two
    lines in a font a fifth of the tile wide, so the numbers stay legible when MLflow or
    optuna-dashboard shrinks the grid of four columns to a 256-pixel thumbnail."""
    return 5 * _font_size(width) // 2 + 2


def _font_size(width: int) -> int:
    return max(12, width // 5)


def _caption(lines: Sequence[str], width: int) -> np.ndarray:
    """A white band of :func:`caption_height` with ``lines`` in black, each made smaller where
    it would not fit the width."""
    size = _font_size(width)
    band = Image.new("RGB", (width, caption_height(width)), "white")
    draw = ImageDraw.Draw(band)
    for i, text in enumerate(lines):
        font = ImageFont.load_default(size=size)
        fit = size
        while fit > 8 and font.getlength(text) > width - 2:
            fit -= 1
            font = ImageFont.load_default(size=fit)
        draw.text((1, 1 + i * (size + size // 4)), text, fill="black", font=font)
    return np.asarray(band, dtype=np.uint8)


def sample_grid(
    upscale: Callable[[np.ndarray], np.ndarray],
    images: Sequence[tuple[str, np.ndarray] | tuple[str, np.ndarray, np.ndarray]],
    scale: int,
) -> np.ndarray:
    """A ``uint8 (H, W, 3)`` image: one row per image, columns LR (nearest) | bicubic | SR | HR,
    each tile captioned with its column's name and, for bicubic and SR, its PSNR-Y against HR
    (the protocol's: Y channel, ``scale`` pixels of border cropped). An image given with its LR
    (paired validation data) shows that LR. Tiles narrower than :data:`MIN_TILE` are enlarged
    by pixel repetition."""
    rows = []
    for name, hr, *given in images:
        h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
        hr = hr[:h, :w]
        # the LR the protocol scores: the given one (checked against HR) or MATLAB bicubic
        if given:
            lr = given_lr(name, hr, given[0], scale)[None]
        else:
            lr = bicubic_downsample(hr, scale)[None]
        nearest = np.repeat(np.repeat(lr[0], scale, axis=0), scale, axis=1)
        tiles = [to_uint8(t) for t in (nearest, bicubic_upsample(lr, scale)[0], upscale(lr)[0])]
        tiles.append(hr.astype(np.uint8))
        hr_y = rgb_to_y(crop_border(hr, scale))
        captions = [[f"LR x{scale}", name]]
        for label, tile in zip(SAMPLE_COLUMNS[1:3], tiles[1:3], strict=True):
            db = psnr(rgb_to_y(crop_border(tile, scale)), hr_y)
            captions.append([label, f"{db:.2f} dB"])
        captions.append(["HR", "reference"])
        k = tile_factor(w)
        tiles = [np.repeat(np.repeat(t, k, axis=0), k, axis=1) for t in tiles]
        gap = np.full((caption_height(k * w) + k * h, _GAP, 3), 255, np.uint8)
        parts = []
        for lines, tile in zip(captions, tiles, strict=True):
            parts += [np.concatenate([_caption(lines, k * w), tile], 0), gap]
        rows.append(np.concatenate(parts[:-1], 1))
    width = max(r.shape[1] for r in rows)
    padded = []
    for r in rows:
        pad = np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)
        padded += [np.concatenate([r, pad], 1), np.full((_GAP, width, 3), 255, np.uint8)]
    return np.concatenate(padded[:-1], 0)


__all__ = [
    "MIN_TILE",
    "SAMPLE_COLUMNS",
    "Validator",
    "caption_height",
    "mean_metrics",
    "metric_directions",
    "sample_grid",
    "tile_factor",
    "validation_extras",
    "validation_metrics",
]
