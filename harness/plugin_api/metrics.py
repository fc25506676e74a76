"""How a metric declares the images it is measured on, and how the host builds it from a plugin.

A metric plugin's factory (or the metric it builds) carries ``protocol = MetricProtocol(...)``:
cropped or whole image, RGB or the BT.601 luma (:func:`rgb_to_y`), its direction and its
decimals. The protocol's own measures (PSNR-Y, SSIM-Y, PSNR-RGB) are declared the same way
(:data:`PROTOCOL_MEASURES`), so evaluation, validation, sweeps and reports read one declaration
for every measure. A metric plugin imports this module and nothing else of the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from harness.errors import HarnessError


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """The BT.601 studio-swing luma (16..235) of RGB in 0..255, float64, not rounded.

    What ``color="y"`` hands a metric, and the channel of PSNR-Y and SSIM-Y. Equal to MATLAB
    ``rgb2ycbcr`` on double input (times 255), as EDSR/BasicSR compute it.
    """
    rgb = np.asarray(image, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


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
            "be a harness.plugin_api.metrics.MetricProtocol."
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

MEASURES: tuple[str, ...] = tuple(PROTOCOL_MEASURES)
"""Their names, in table order: what every evaluation and validation measures."""


def format_value(value: float, protocol: MetricProtocol | None = None) -> str:
    """A table cell: ``inf`` or the value with the protocol's decimals (4 by default)."""
    if math.isinf(value):
        return "inf"
    if math.isnan(value):
        return "nan"
    return f"{value:.{(protocol or MetricProtocol()).decimals}f}"
