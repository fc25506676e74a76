"""The files of a report: ``report.json`` (every number, per image too), ``report.md``
(:mod:`harness.evaluation.markdown`) and ``report.html``, the same page rendered by
Python-Markdown, self-contained with its figures embedded."""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import markdown

from harness import __version__, diskwrite
from harness.evaluation.markdown import render_markdown
from harness.evaluation.records import Report

STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
    "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%}blockquote{color:#555;border-left:3px solid #ccc;"
    "margin-left:0;padding-left:1em}"
)
"""The page's CSS: numbers right-aligned, the row label left, figures at most page-wide."""
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def write_files(
    report: Report,
    command: str,
    now: _dt.datetime,
    protocols: Mapping[str, Any],
    references: Mapping[str, Any],
    data: Mapping[str, str],
    scale: int,
    given_lr: Mapping[str, str] | None = None,
) -> None:
    """``report.json``, ``report.md`` and ``report.html`` of ``report`` (its figures are in its
    folder already)."""
    date = now.isoformat(timespec="seconds")
    head = {
        "command": command,
        "date": date,
        "scale": scale,
        "data": dict(data),
        "given_lr": dict(given_lr or {}),
        "protocols": {k: dataclasses.asdict(p) for k, p in protocols.items()},
        "references": dict(references),
    }
    diskwrite.write_json(report.json, to_json(report, **head), null=True)
    text = render_markdown(
        report,
        command=command,
        date=date,
        protocols=protocols,
        references=references,
        data=data,
        scale=scale,
        given_lr=given_lr,
    )
    diskwrite.write_text(report.markdown, text)
    title = text.splitlines()[0].lstrip("# ")
    diskwrite.write_text(report.html, markdown_to_html(text, report.out, title))


def to_json(report: Report, **extra: Any) -> dict[str, Any]:
    """Every number of the report, per set, per row, per measure and per image."""
    return {
        **extra,
        "harness_version": __version__,
        "measures": list(report.measures),
        "runs": [r.facts() for r in report.runs],
        "tables": report.tables,
        "sets": {
            s: {row: res.to_dict() for row, res in rows.items()}
            for s, rows in report.results.items()
        },
        "figures": [p.name for p in report.figures],
        "scores": "scores.csv",
        "baselines": report.baselines,
        "grouped": report.grouped.to_dict() if report.grouped else None,
        "interpolation": report.interpolation,
        "statistics": [c.to_dict() for c in report.comparisons],
        "mlflow_run_id": report.mlflow_run_id,
    }


def markdown_to_html(text: str, folder: Path, title: str = "harness report") -> str:
    """The Markdown ``text`` as one self-contained HTML page (Python-Markdown with its
    ``tables`` extension, and ``md_in_html`` for the folded per-image tables), each image of
    ``folder`` it shows embedded as a base64 PNG."""

    def embed(match: re.Match[str]) -> str:
        path = folder / match.group(2)
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    body = markdown.markdown(
        IMAGE.sub(embed, text), extensions=["tables", "md_in_html"], output_format="html"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


__all__ = ["markdown_to_html", "to_json", "write_files"]
