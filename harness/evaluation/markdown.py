"""The text of ``report.md``: the protocol, a table per benchmark set (the best of each column
in bold), the published references, the runs (what each is, where it starts from) and the
figures."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.evaluation.stats_text import per_image_lines, statistics_lines
from harness.evaluation.tables import markdown_table, measure_name
from harness.plugin_api.metrics import MEASURES, format_value


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _held_out(run: Any, measures: Sequence[str]) -> list[str]:
    """The run's losses that are metrics, and the report's metrics it did not train on."""
    if not run.metric_losses:
        return []
    held = [measure_name(m) for m in measures if m not in (*MEASURES, *run.trained_on)]
    return [
        f"- trains on metrics: {', '.join(run.metric_losses)}; held out here: "
        f"{', '.join(held) or 'none'} (judge it on those)"
    ]


def _interpolation_note(report: Any) -> list[str]:
    curves = report.interpolation
    if not curves:
        return []
    points = len(next(iter(next(iter(curves.values())).values())))
    where = (
        "drawn as dotted lines"
        if report.grouped is None
        else "drawn as dotted lines, each group's the mean of its runs' curves (every run's is in "
        "`report.json`)"
    )
    return [
        f"Network interpolation (ESRGAN): {', '.join(curves)}, each with its base, at "
        f"{points} alphas from 0 (the base) to 1 (the run), {where}; every point is a model "
        "`harness interpolate` writes.",
        "",
    ]


def render_markdown(
    report: Any,
    *,
    command: str,
    date: str,
    protocols: Mapping[str, Any],
    references: Mapping[str, Any],
    data: Mapping[str, str],
    scale: int,
    given_lr: Mapping[str, str] | None = None,
) -> str:
    """The text of ``report.md`` (a :class:`harness.evaluation.report.Report` as ``report``)."""
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
        "(`harness.measures`).",
    ]
    for label, folder in (given_lr or {}).items():
        lines.append(
            f"- LR of {label}: the given images of `{folder}` (matched by file name), not bicubic; "
            "the bicubic row upscales them with MATLAB bicubic."
        )
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
    grouped = report.grouped
    trained = {r.group_label: r.trained_on for r in runs} | {r.label: r.trained_on for r in runs}
    for label, table in (grouped.means if grouped else report.tables).items():
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
                text = f"**{text}**" if best.get(key) == values[key] else text
                spread = grouped.spreads[label][row][key] if grouped else math.nan
                if math.isfinite(spread):
                    text += f" ± {format_value(spread, protocols[key])}"
                cells.append(f"{text} †" if key in trained.get(row, ()) else text)
            runs_in = grouped.counts.get(row, 1) if grouped else 1
            rows.append([f"{row} ({runs_in} seeds)" if runs_in > 1 else row, *cells])
        lines += markdown_table(["", *(measure_name(k) for k in report.measures)], rows)
        note = "Bold: the best of the column."
        if any(trained.values()):
            note += (
                " †: the run trained on this metric (a loss of the same name and settings); "
                "judge it on the held-out columns."
            )
        if grouped:
            note += (
                " A group of seeds shows the mean over its runs ± their standard deviation "
                "(each run's own row: `report.json`, `scores.csv`)."
            )
        lines += ["", note, ""]
    lines += statistics_lines(report.comparisons, protocols)

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
    if rows:
        lines += markdown_table(["method", *ref_sets, "source"], rows, numeric=len(ref_sets))
    elif given_lr:
        lines.append("None shown: published figures are measured on bicubic LR, not these.")
    else:
        lines.append(f"None at x{scale} in `harness/evaluation/references.toml`.")
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
            r.kind if r.model_step is None else f"{r.kind} (step {r.model_step})",
        ]
        for r in runs
    ]
    lines += markdown_table(
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
        if r.params:
            lines += [
                f"- generator: {r.generator}",
                f"- losses: {r.losses}; adversarial: {r.adversarial}",
                *_held_out(r, report.measures),
            ]
        else:
            lines.append("- a model with no recorded experiment: how it was trained is not known")
        lines.append(f"- evaluated: `{r.model_ref}`")
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
        *_interpolation_note(report),
        "### Crops",
        "",
    ]
    for path in report.figures:
        if path.name.startswith("crops_"):
            lines += [f"![{path.stem}]({path.name})", ""]
    lines += per_image_lines(report.scores, report.measures, protocols)
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["render_markdown"]
