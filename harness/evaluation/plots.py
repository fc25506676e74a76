"""The figures of ``harness report``: validation curves, the perception-distortion plane and
side-by-side crops.

Curves and the perception-distortion plane are drawn with matplotlib (Agg backend, no display);
crops are composed with PIL and labelled with its default font, so the figures need nothing
beyond the harness's own dependencies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CROP = 96
"""HR side of the crop windows (smaller images use their whole shorter side)."""

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
BICUBIC_COLOR = "#7f7f7f"


def color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curves:
    """One run's validation history: ``metric -> [(step, value)]`` and its bicubic line."""

    label: str
    history: Mapping[str, Sequence[tuple[int, float]]]
    bicubic_psnr_y: float | None = None


def plot_curves(runs: Sequence[Curves], path: Path, perceptual: str = "lpips") -> Path:
    """``val/psnr_y`` over steps (and ``val/<perceptual>`` when a run logged it), one line per
    run, each run's bicubic PSNR-Y on its validation set as a dashed line (Ledig et al. Figs.
    6-8 style)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    keys = ["val/psnr_y"]
    if any(r.history.get(f"val/{perceptual}") for r in runs):
        keys.append(f"val/{perceptual}")
    fig, axes = plt.subplots(1, len(keys), figsize=(6.0 * len(keys), 4.2), squeeze=False)
    bases = [r.bicubic_psnr_y for r in runs]
    shared = len({round(b, 6) for b in bases if b is not None}) == 1 and None not in bases
    for ax, key in zip(axes[0], keys, strict=True):
        drawn = False
        for i, run in enumerate(runs):
            points = sorted(run.history.get(key, ()))
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o", ms=3, color=color(i), label=run.label)
                drawn = True
            base = run.bicubic_psnr_y
            if key != "val/psnr_y" or base is None or not math.isfinite(base):
                continue
            if shared:
                if i == 0:
                    ax.axhline(base, ls="--", lw=1, color=BICUBIC_COLOR, label="bicubic")
            else:
                ax.axhline(base, ls="--", lw=1, color=color(i), label=f"bicubic ({run.label})")
            drawn = True
        name = key.split("/", 1)[1]
        ax.set_title(f"validation {name}")
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("PSNR-Y (dB)" if name == "psnr_y" else name.upper())
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(
                0.5,
                0.5,
                "no validation logged in MLflow",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="gray",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- perception-distortion


def plot_perception_distortion(
    tables: Mapping[str, Mapping[str, Mapping[str, float]]],
    references: Mapping[str, Mapping[str, Mapping[str, float]]],
    path: Path,
    y: str = "lpips",
    y_label: str = "LPIPS",
    lower_is_better: bool = True,
) -> Path:
    """One panel per set: PSNR-Y (x) against ``y`` (lower is better), a point per row of the
    set's table (bicubic first) and the published points of ``references`` (``method -> set ->
    measures``, hollow grey markers; a method without ``y`` is a labelled vertical dashed line at
    its PSNR-Y)."""
    plt = _pyplot()
    sets = list(tables)
    cols = min(3, max(1, len(sets)))
    rows = math.ceil(len(sets) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.flat[len(sets) :]:
        ax.axis("off")
    for ax, label in zip(axes.flat, sets, strict=False):
        run_i = 0
        for row, values in tables[label].items():
            px, py = values.get("psnr_y", math.nan), values.get(y, math.nan)
            if not (math.isfinite(px) and math.isfinite(py)):
                continue
            if row == "bicubic":
                ax.scatter(px, py, marker="s", s=50, color=BICUBIC_COLOR, label="bicubic", zorder=3)
            else:
                ax.scatter(px, py, marker="o", s=60, color=color(run_i), label=row, zorder=3)
                run_i += 1
        published = False
        for j, (method, per_set) in enumerate(references.items()):
            point = per_set.get(reference_key(label))
            if not point or "psnr_y" not in point:
                continue
            if y in point:
                ax.scatter(
                    point["psnr_y"],
                    point[y],
                    marker="D",
                    s=40,
                    facecolors="none",
                    edgecolors="black",
                    zorder=2,
                    label=None if published else "published (authors' protocols)",
                )
                published = True
                ax.annotate(
                    method,
                    (point["psnr_y"], point[y]),
                    fontsize=7,
                    xytext=(5, -3 + 8 * (j % 3)),  # staggered: published points often cluster
                    textcoords="offset points",
                )
            else:
                ax.axvline(point["psnr_y"], ls="--", lw=1, color="black", alpha=0.6)
                ax.annotate(
                    f"{method} (published, no {y_label})",
                    (point["psnr_y"], 0.98),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    rotation=90,
                    ha="right",
                    va="top",
                )
        ax.set_title(label)
        ax.set_xlabel("PSNR-Y (dB), higher is better")
        ax.set_ylabel(f"{y_label}, {'lower' if lower_is_better else 'higher'} is better")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(
        "perception-distortion plane\n(filled: measured here; hollow: published)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reference_key(label: str) -> str:
    """A data set label -> the key of :file:`references.toml` (``Set5`` -> ``set5``)."""
    key = label.lower().replace("-", "").replace("_", "")
    return {"b100": "bsd100", "bsds100": "bsd100"}.get(key, key)


# --------------------------------------------------------------------------- crops


def crop_window(hr: np.ndarray, scale: int, size: int = CROP) -> tuple[int, int, int]:
    """``(y, x, side)``: the ``side`` x ``side`` HR window (``side`` = ``size`` or the image's
    shorter side, a multiple of ``scale``) with the highest gradient energy of the luma, on a grid
    of ``scale`` pixels so the window is whole LR pixels; the first such window on ties."""
    h, w = hr.shape[:2]
    side = max(scale, min(size, h, w) // scale * scale)
    luma = hr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    energy = np.zeros_like(luma)
    energy[:, 1:] += np.diff(luma, axis=1) ** 2
    energy[1:, :] += np.diff(luma, axis=0) ** 2
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = np.arange(0, h - side + 1, scale)
    xs = np.arange(0, w - side + 1, scale)
    sums = (
        integral[ys[:, None] + side, xs[None, :] + side]
        - integral[ys[:, None], xs[None, :] + side]
        - integral[ys[:, None] + side, xs[None, :]]
        + integral[ys[:, None], xs[None, :]]
    )
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(ys[iy]), int(xs[ix]), int(side)


@dataclass(frozen=True)
class Tile:
    """One column of a crop figure: a uint8 RGB crop and its caption lines."""

    title: str
    image: np.ndarray
    lines: tuple[str, ...] = ()


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def crop_figure(tiles: Sequence[Tile], path: Path, heading: str = "", zoom: int = 0) -> Path:
    """Tiles side by side (nearest-zoomed to at least 160 px), each captioned below."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    side = max(t.image.shape[0] for t in tiles)
    zoom = zoom or max(1, math.ceil(160 / side))
    cell, pad, line = side * zoom, 6, 13
    caption = line * (1 + max(len(t.lines) for t in tiles)) + pad
    top = line + 2 * pad if heading else pad
    canvas = Image.new(
        "RGB", (len(tiles) * (cell + pad) + pad, top + cell + caption + pad), "white"
    )
    draw = ImageDraw.Draw(canvas)
    if heading:
        draw.text(
            (pad, pad), _fit(draw, heading, font, canvas.width - 2 * pad), fill="black", font=font
        )
    for i, tile in enumerate(tiles):
        x = pad + i * (cell + pad)
        img = Image.fromarray(np.ascontiguousarray(tile.image[..., :3]), "RGB")
        canvas.paste(img.resize((cell, cell), Image.Resampling.NEAREST), (x, top))
        for j, text in enumerate((tile.title, *tile.lines)):
            draw.text(
                (x, top + cell + pad // 2 + j * line),
                _fit(draw, text, font, cell),
                fill="black",
                font=font,
            )
    canvas.save(path, format="PNG")
    return path


def nearest_up(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour ``scale`` x enlargement (how an LR input looks at HR size)."""
    return np.repeat(np.repeat(lr_uint8, scale, axis=0), scale, axis=1)


# --------------------------------------------------------------------------- report.md / .html

NAMES = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y", "psnr_rgb": "PSNR-RGB"}


def measure_name(measure: str) -> str:
    """``psnr_y`` -> ``PSNR-Y``, ``lpips`` -> ``LPIPS``."""
    return NAMES.get(measure, measure.upper())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _md_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: int | None = None
) -> list[str]:
    """A Markdown table; the first ``numeric`` columns after the first are right-aligned (all
    when ``None``)."""
    right = len(header) - 1 if numeric is None else numeric
    align = ["---", *["---:"] * right, *["---"] * (len(header) - 1 - right)]
    cells = [header, align, *rows]
    return ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in cells]


def render_markdown(
    report: Any,
    *,
    command: str,
    date: str,
    protocols: Mapping[str, Any],
    references: Mapping[str, Any],
    data: Mapping[str, str],
    scale: int,
) -> str:
    """The text of ``report.md`` (a :class:`harness.evaluation.report.Report` as ``report``)."""
    from harness.evaluation.protocol import format_value

    runs = report.runs
    lines = [
        f"# Comparison report: {', '.join(r.label for r in runs)}",
        "",
        f"Made with `{command}` on {date}. Every number in the tables was measured afresh here "
        "on the images of each set (nothing is copied from training logs); only the curves "
        "come from MLflow.",
        "",
        "## Protocol",
        "",
        f"- Scale x{scale}: HR cropped to a multiple of {scale}, LR by MATLAB bicubic `imresize` "
        "rounded to 8 bits, model outputs clipped and rounded to 8 bits "
        "(`harness.evaluation.protocol`).",
    ]
    for key, protocol in protocols.items():
        notes = [f"{scale} px cut from each side"] if protocol.crop_border else []
        notes += ["Y = BT.601 luma, 16..235"] if protocol.color == "y" else []
        notes.append(f"{protocol.decimals} decimals")
        lines.append(f"- {measure_name(key)}: {protocol.describe()} ({'; '.join(notes)}).")
    lines.append(
        "- Models: each run's final generator, or the kept one its label names (`@best_<metric>`)."
    )
    sets = ", ".join(
        f"{label} (`{spec}`, {len(next(iter(report.results[label].values())).images)} images)"
        for label, spec in data.items()
    )
    lines += [f"- Data: {sets}.", "", "## Results", ""]
    for label, table in report.tables.items():
        count = len(next(iter(report.results[label].values())).images)
        lines += [f"### {label} ({count} images)", ""]
        best = {}
        for key in report.measures:
            values = [v[key] for v in table.values() if math.isfinite(v[key])]
            if values:
                best[key] = max(values) if protocols[key].higher_is_better else min(values)
        rows = []
        for row, values in table.items():
            cells = []
            for key in report.measures:
                text = format_value(values[key], protocols[key])
                cells.append(f"**{text}**" if best.get(key) == values[key] else text)
            rows.append([row, *cells])
        lines += _md_table(["", *(measure_name(k) for k in report.measures)], rows)
        lines += ["", "Bold: the best of the column.", ""]

    methods = references.get("methods", {})
    ref_sets = list(
        dict.fromkeys(k for m in methods.values() for k, v in m.items() if isinstance(v, dict))
    )
    lines += [
        "## Published references",
        "",
        "> Measured by their authors with their own protocols, not by this harness: only the "
        "rows measured here (bicubic and the runs above) are strictly comparable with each "
        "other. Cells: PSNR-Y / SSIM-Y / LPIPS (- where not published).",
        "",
    ]
    rows = []
    for method, info in methods.items():
        cells = []
        for s in ref_sets:
            point = info.get(s, {})
            cells.append(
                " / ".join(
                    format_value(point[k], protocols.get(k)) if k in point else "-"
                    for k in ("psnr_y", "ssim_y", "lpips")
                )
            )
        rows.append([method, *cells, info.get("source", "")])
    lines += _md_table(["method", *ref_sets, "source"], rows, numeric=len(ref_sets))
    lines.append("")
    for key, source in references.get("sources", {}).items():
        lines.append(
            f"- {key}: {source.get('citation', '')}, {source.get('where', '')} "
            f"({source.get('url', '')}); {source.get('protocol', '')}."
        )

    lines += ["", "## Runs", ""]
    rows = [
        [
            r.label,
            r.mlflow_experiment or "-",
            r.init_label or "-",
            "-" if r.steps is None else str(r.steps),
            _duration(r.wall_s),
            f"{r.kind} (step {'?' if r.model_step is None else r.model_step})",
        ]
        for r in runs
    ]
    lines += _md_table(
        ["run", "MLflow experiment", "starts from", "steps", "wall time", "evaluated model"],
        rows,
        numeric=0,
    )
    lines.append("")
    shared: dict[str, list[str]] = {}
    for r in runs:
        if r.init_label:
            shared.setdefault(r.init_label, []).append(r.label)
    for source, members in shared.items():
        if len(members) > 1:
            lines.append(f"Shared start: {', '.join(members)} all start from {source}.")
            lines.append("")
    for r in runs:
        lines += [f"### {r.label}", ""]
        if r.params.get("experiment.description"):
            lines.append(f"- description: {r.params['experiment.description']}")
        lines += [
            f"- generator: {r.generator}",
            f"- losses: {r.losses}; adversarial: {r.adversarial}",
            f"- evaluated: `{r.model_ref}`",
        ]
        if r.run_dir:
            lines.append(f"- run directory: `{r.run_dir}`")
        if r.run_id:
            lines.append(f"- MLflow run: `{r.run_id}` ({r.status or 'not found'}) in `{r.uri}`")
        if r.init_ref or r.init_run:
            run = f", MLflow run `{r.init_run}`" if r.init_run else ""
            lines.append(f"- warm start: generator from `{r.init_ref}` = {r.init_label}{run}")
        lines.append("")

    lines += [
        "## Figures",
        "",
        "### Validation curves",
        "",
        "As logged by each run's training (MLflow, on its own validation set); the dashed line "
        "is bicubic on that set.",
        "",
        "![validation curves](curves.png)",
        "",
        "### Perception-distortion plane",
        "",
        "![perception-distortion plane](perception_distortion.png)",
        "",
        "### Crops",
        "",
    ]
    for path in report.figures:
        if path.name.startswith("crops_"):
            lines += [f"![{path.stem}]({path.name})", ""]
    return "\n".join(lines).rstrip() + "\n"


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


__all__ = [
    "CROP",
    "Curves",
    "Tile",
    "color",
    "crop_figure",
    "crop_window",
    "markdown_to_html",
    "measure_name",
    "nearest_up",
    "plot_curves",
    "plot_perception_distortion",
    "reference_key",
    "render_markdown",
]
