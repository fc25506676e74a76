"""Plain-text tables for the terminal (``evaluate``, ``report``, ``sweep --show``): the first
column left-aligned, the others right-aligned, columns two spaces apart."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """``header`` and ``rows`` as aligned text lines (cells are ``str()``-ed)."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
