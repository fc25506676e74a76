"""The paired statistics and the per-image scores as ``report.md`` shows them: a table per
comparison (each cell the difference, its interval and p), a sentence for each significant
difference, and the per-image scores folded away in ``<details>`` blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.evaluation.stats import ALPHA, CONFIDENCE, N_RESAMPLES, POOLED, Comparison
from harness.evaluation.tables import markdown_table, measure_name
from harness.plugin_api.metrics import MetricProtocol, format_value


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _signed(value: float, protocol: MetricProtocol | None) -> str:
    text = format_value(abs(value), protocol)
    return f"-{text}" if value < 0 else f"+{text}"


def _over(c: Comparison) -> str:
    seeds = f" and {c.seeds} seeds" if c.seeds > 1 else ""
    where = "all sets" if c.set == POOLED else c.set
    return f"over {c.images} images{seeds} ({where})"


def sentence(c: Comparison, protocol: MetricProtocol | None) -> str:
    """What ``c`` says, in words, with the measure's direction: "A lowers LPIPS against B by
    0.012 [0.006, 0.018], p = 0.002 over 114 images and 3 seeds (Set14): better"."""
    name = measure_name(c.measure)
    if c.images == 0:
        return f"{c.run} and {c.baseline} have no finite {name} pairs on {c.set}."
    if c.significant:
        verb = "raises" if c.difference > 0 else "lowers"
        low, high = sorted((abs(c.low), abs(c.high)))
        amount = format_value(abs(c.difference), protocol)
        interval = f"[{format_value(low, protocol)}, {format_value(high, protocol)}]"
        return (
            f"{c.run} {verb} {name} against {c.baseline} by {amount} {interval}, "
            f"{p_text(c.p_holm)} {_over(c)}: {'better' if c.better else 'worse'}."
        )
    numbers = f"{_signed(c.difference, protocol)}, {p_text(c.p_holm)}"
    if c.too_small:
        return (
            f"{c.set} is too small to tell {c.run} from {c.baseline} (not 'no difference'): "
            f"with {c.images} images no two-sided Wilcoxon p can be below {c.min_p:.4f} "
            f"({name}: {numbers})."
        )
    return f"No significant difference in {name} between {c.run} and {c.baseline} {_over(c)}."


def _cell(c: Comparison, protocol: MetricProtocol | None) -> str:
    if c.images == 0:
        return "-"
    text = (
        f"{_signed(c.difference, protocol)} [{_signed(c.low, protocol)}, "
        f"{_signed(c.high, protocol)}], {p_text(c.p_holm)}"
    )
    if c.significant:
        return f"**{text}** ({c.verdict})"
    return f"{text} (too few images)" if c.too_small else text


def statistics_lines(
    comparisons: Sequence[Comparison], protocols: Mapping[str, MetricProtocol]
) -> list[str]:
    """The ``## Paired statistics`` section of ``report.md``."""
    lines = ["## Paired statistics", ""]
    if not comparisons:
        return [*lines, "No pair to compare: the report holds one run (or group) only.", ""]
    lines += [
        f"Each cell: the mean paired difference (run minus baseline, per image) with its "
        f"{CONFIDENCE:.0%} bootstrap interval (BCa, {N_RESAMPLES} resamples of the images, and "
        "of the seeds where both sides have replicates, `scipy.stats.bootstrap`) and the "
        "two-sided Wilcoxon signed-rank p over the images (`scipy.stats.wilcoxon`), "
        f"Holm-corrected across all {len(comparisons)} comparisons of this report. Bold: "
        f"significant (the interval excludes 0 and the corrected p < {ALPHA}); better or worse "
        "follows each measure's direction. The per-image scores are in `scores.csv`.",
        "",
    ]
    if any(c.seeds == 1 and c.baseline != "bicubic" for c in comparisons):
        lines += [
            "> With one run on a side, a comparison resamples images only: it says whether these "
            "two trained models differ on these images, not whether their recipes do. Two seeds "
            "of one experiment can differ significantly this way (a small MSRResNet trained twice "
            "on T91: 0.067 dB PSNR-Y on Set14, p < 0.001); `harness compare --seeds N` gives "
            "replicates, whose seeds the interval resamples too.",
            "",
        ]
    measures = list(dict.fromkeys(c.measure for c in comparisons))
    for pair in dict.fromkeys((c.run, c.baseline) for c in comparisons):
        lines += [f"### {pair[0]} against {pair[1]}", ""]
        mine = [c for c in comparisons if (c.run, c.baseline) == pair]
        rows = []
        for label in dict.fromkeys(c.set for c in mine):
            cells = {c.measure: _cell(c, protocols.get(c.measure)) for c in mine if c.set == label}
            first = next(c for c in mine if c.set == label)
            seeds = f", {first.seeds} seeds" if first.seeds > 1 else ""
            rows.append([f"{label} ({first.images} images{seeds})", *map(cells.get, measures)])
        lines += [*markdown_table(["", *map(measure_name, measures)], rows, numeric=0), ""]
        for c in mine:
            if c.significant or (c.too_small and c.measure == measures[0]):
                lines.append(f"- {sentence(c, protocols.get(c.measure))}")
        lines.append("")
    return lines


def per_image_lines(
    rows: Sequence[Mapping[str, Any]],
    measures: Sequence[str],
    protocols: Mapping[str, MetricProtocol],
) -> list[str]:
    """``## Per-image scores``: one folded table per measure, an image per row, a run per
    column (the same numbers as ``scores.csv``)."""
    runs = list(dict.fromkeys(r["run"] for r in rows))
    images = list(dict.fromkeys((r["set"], r["image"]) for r in rows))
    lines = [
        "## Per-image scores",
        "",
        "Every score the tables and statistics above are computed from (also `scores.csv`, "
        "logged to MLflow as the table `scores.json`).",
        "",
    ]
    for measure in measures:
        value = {(r["set"], r["image"], r["run"]): r[measure] for r in rows}
        table = [
            [
                f"{s} / {image}",
                *(
                    format_value(value[(s, image, run)], protocols.get(measure))
                    if (s, image, run) in value
                    else "-"
                    for run in runs
                ),
            ]
            for s, image in images
        ]
        lines += [
            '<details markdown="1">',
            f"<summary>{measure_name(measure)}, per image</summary>",
            "",
            *markdown_table(["set / image", *runs], table),
            "",
            "</details>",
            "",
        ]
    return lines


__all__ = ["per_image_lines", "p_text", "sentence", "statistics_lines"]
