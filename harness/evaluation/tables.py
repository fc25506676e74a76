"""Tables of measures, one implementation each: plain text for the terminal (``evaluate``,
``report``, ``sweep --show``) and Markdown for ``report.md``, and the cells and headers they
share (each measure with its protocol's decimals, ``psnr_y`` as ``PSNR-Y``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.plugin_api.metrics import PROTOCOL_MEASURES, format_value

NAMES = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB"}


def text_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """``header`` and ``rows`` as aligned text lines (cells are ``str()``-ed): the first column
    left-aligned, the others right-aligned, columns two spaces apart."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def markdown_table(
    header: Sequence[object], rows: Sequence[Sequence[object]], numeric: int | None = None
) -> list[str]:
    """A Markdown table as lines; the first ``numeric`` columns after the first are
    right-aligned (all when ``None``)."""
    right = len(header) - 1 if numeric is None else numeric
    align = ["---", *["---:"] * right, *["---"] * (len(header) - 1 - right)]
    cells = [header, align, *rows]
    return ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in cells]


def measure_name(measure: str) -> str:
    """``psnr_y`` -> ``PSNR-Y``, ``lpips`` -> ``LPIPS``."""
    return NAMES.get(measure, measure.upper())


def format_measure(value: float, measure: str, protocols: Mapping[str, Any] | None = None) -> str:
    """A cell of ``measure``: the protocol's own measures and those of ``protocols`` (metric
    name -> :class:`~harness.plugin_api.metrics.MetricProtocol`) with their decimals."""
    return format_value(value, {**PROTOCOL_MEASURES, **(protocols or {})}.get(measure))
