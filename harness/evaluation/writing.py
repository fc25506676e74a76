"""The files of a report: ``report.json`` (every number, per image too), ``report.md``
(:mod:`harness.evaluation.markdown`) and ``report.html``, the same page self-contained with its
figures embedded."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.evaluation.markdown import render_markdown

if TYPE_CHECKING:
    from harness.evaluation.report import Report


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
    report.json.write_text(json.dumps(to_json(report, **head), indent=2) + "\n", encoding="utf-8")
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
    report.markdown.write_text(text, encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ")
    report.html.write_text(markdown_to_html(text, report.out, title), encoding="utf-8")


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
        "mlflow_run_id": report.mlflow_run_id,
    }


def _inline(text: str) -> str:
    import html
    import re

    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def markdown_to_html(markdown: str, folder: Path, title: str = "harness report") -> str:
    """The markdown subset :func:`render_markdown` writes as one self-contained HTML page,
    images embedded as base64 PNGs."""
    import base64
    import html
    import re

    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([c.strip() for c in re.split(r"(?<!\\)\|", lines[i])[1:-1]])
                i += 1
            head, body = block[0], block[2:]
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>")
            for row in body:
                out.append(
                    "<tr>"
                    + "".join(f"<td>{_inline(c.replace(chr(92) + '|', '|'))}</td>" for c in row)
                    + "</tr>"
                )
            out.append("</table>")
            continue
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
            continue
        elif match := re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line):
            path = folder / match.group(2)
            data = base64.b64encode(path.read_bytes()).decode() if path.is_file() else ""
            out.append(
                f'<p><img alt="{html.escape(match.group(1))}" '
                f'src="data:image/png;base64,{data}"></p>'
            )
        elif line.startswith("> "):
            out.append(f"<blockquote>{_inline(line[2:])}</blockquote>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}blockquote{color:#555;border-left:3px solid #ccc;"
        "margin-left:0;padding-left:1em}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


__all__ = ["markdown_to_html", "to_json", "write_files"]
