"""The paired statistics and the per-image scores as ``report.md`` shows them: a table per
comparison (each cell the difference, its interval and p), what the comparison can say (about
these models, about the recipes, or nothing without replicates), a sentence for each
significant difference, and the per-image scores folded away in ``<details>`` blocks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from harness.evaluation.stats import (
    ALPHA,
    CONFIDENCE,
    MIN_SEEDS,
    MODEL,
    N_RESAMPLES,
    ONE_SAMPLE,
    POOLED,
    WELCH,
    WILCOXON,
    Comparison,
)
from harness.evaluation.tables import markdown_table, measure_name
from harness.plugin_api.metrics import MetricProtocol, format_value

REPLICATE = "`harness compare --seeds N`"
"""How to get replicates, as the report says it."""
TEST_NAMES = {WILCOXON: "Wilcoxon", WELCH: "Welch", ONE_SAMPLE: "one-sample t"}


def p_text(p: float) -> str:
    if not math.isfinite(p):
        return "p = -"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _signed(value: float, protocol: MetricProtocol | None) -> str:
    text = format_value(abs(value), protocol)
    return f"-{text}" if value < 0 else f"+{text}"


def _where(c: Comparison) -> str:
    return "all sets" if c.set == POOLED else c.set


def _seeds(c: Comparison) -> str:
    """The runs a recipe-level test is over: "4 and 4 seeds", or the trained side's "4 seeds"."""
    if c.run_fixed or c.baseline_fixed:
        return f"{c.baseline_seeds if c.run_fixed else c.seeds} seeds"
    return f"{c.seeds} and {c.baseline_seeds} seeds"


def _over(c: Comparison) -> str:
    if c.level == MODEL or not c.test:
        return f"over {c.images} images ({_where(c)})"
    return f"over {_seeds(c)} and {c.images} images ({_where(c)})"


def _p(c: Comparison) -> str:
    test = TEST_NAMES.get(c.test, "Wilcoxon")
    return f"{test} {p_text(c.p_holm)}"


def _trained_single(c: Comparison) -> str:
    """The single trained run of a model-level comparison ("" when both sides are fixed)."""
    if c.level != MODEL:
        return ""
    return next(
        (
            name
            for name, fixed in ((c.run, c.run_fixed), (c.baseline, c.baseline_fixed))
            if not fixed
        ),
        "",
    )


def _interval(c: Comparison, protocol: MetricProtocol | None) -> str:
    return f"[{_signed(c.low, protocol)}, {_signed(c.high, protocol)}]"


def sentence(c: Comparison, protocol: MetricProtocol | None) -> str:
    """What ``c`` says, in words, with the measure's direction: "A lowers LPIPS against B by
    0.012 [0.006, 0.018], Welch p = 0.002 over 3 and 3 seeds and 114 images (Set14): better"."""
    name = measure_name(c.measure)
    if c.images == 0:
        return f"{c.run} and {c.baseline} have no finite {name} pairs on {c.set}."
    if c.significant:
        verb = "raises" if c.difference > 0 else "lowers"
        low, high = sorted((abs(c.low), abs(c.high)))
        amount = format_value(abs(c.difference), protocol)
        interval = f"[{format_value(low, protocol)}, {format_value(high, protocol)}]"
        text = (
            f"{c.run} {verb} {name} against {c.baseline} by {amount} {interval}, "
            f"{_p(c)} {_over(c)}: {'better' if c.better else 'worse'}"
        )
        single = _trained_single(c)
        if single:
            text += f", for the trained model {single} (one run: not a verdict on its recipe)"
        return text + "."
    difference = f"{_signed(c.difference, protocol)} {_interval(c, protocol)}"
    if c.too_small:
        numbers = f"{_signed(c.difference, protocol)}, {_p(c)}" if c.test else difference
        if c.level != MODEL and c.test:
            numbers += f" over the seeds, on these {c.images} images only"
        return (
            f"{c.set} is too small to tell {c.run} from {c.baseline} on images like these (not "
            f"'no difference'): with {c.images} images no two-sided Wilcoxon p can be below "
            f"{c.min_p:.4f} ({name}: {numbers})."
        )
    if c.one_run_a_side:
        return (
            f"{c.run} and {c.baseline} are one trained run each: {name} differs by {difference} "
            f"between these two models on these images ({_where(c)}), but one run per side "
            "cannot separate the recipe from the seed, so there is no verdict; "
            f"{REPLICATE} trains replicates for one."
        )
    if c.too_few_seeds:
        return (
            f"{c.run} ({c.seeds} runs) against {c.baseline} ({c.baseline_seeds} runs): a verdict "
            f"on recipes needs at least {MIN_SEEDS} runs on every trained side; no verdict "
            f"({name}: {difference} over {c.images} images, {_where(c)})."
        )
    return (
        f"No significant difference in {name} between {c.run} and {c.baseline} {_over(c)} "
        f"({_signed(c.difference, protocol)}, {_p(c)})."
    )


def _cell(c: Comparison, protocol: MetricProtocol | None) -> str:
    if c.images == 0:
        return "-"
    if c.too_few_seeds:
        why = "one run a side" if c.one_run_a_side else "too few seeds"
        return f"{_signed(c.difference, protocol)} {_interval(c, protocol)} ({why})"
    text = f"{_signed(c.difference, protocol)} {_interval(c, protocol)}, {p_text(c.p_holm)}"
    if c.significant:
        return f"**{text}** ({c.verdict})"
    return f"{text} (too few images)" if c.too_small else text


def level_line(c: Comparison) -> str:
    """What the comparisons of one pair (``c`` is one of them) test, in a sentence."""
    if c.one_run_a_side:
        return (
            f"One trained run a side: each cell is the difference between these two models on "
            "these images, with its interval over the images, and is never marked. It cannot "
            "say whether the recipes differ: a second seed of one experiment is a different "
            f"model too. Train replicates ({REPLICATE}) for a verdict on the recipes."
        )
    if c.too_few_seeds:
        return (
            f"{c.run} has {c.seeds} run(s) and {c.baseline} {c.baseline_seeds}: a verdict on "
            f"recipes needs at least {MIN_SEEDS} runs on every trained side (Welch's t), so the "
            f"cells are unmarked differences with their intervals over the images ({REPLICATE})."
        )
    if c.level == MODEL:
        single = _trained_single(c)
        about = (
            f"a statement about the trained model {single}, not its recipe (one run)"
            if single
            else "a statement about these models"
        )
        return (
            "Images are the unit (a side is a fixed model): Wilcoxon signed-rank p over the "
            f"images' differences and a BCa interval over the images; {about}."
        )
    if c.test == ONE_SAMPLE:
        trained, fixed = (c.baseline, c.run) if c.run_fixed else (c.run, c.baseline)
        return (
            f"Seeds are the unit: the {_seeds(c)} of {trained} against the fixed model {fixed} "
            "by a one-sample t over the runs' means; the interval spans the t-test's and a "
            "bootstrap's over the seeds and the images."
        )
    return (
        f"Seeds are the unit: the recipes compared by Welch's t over the runs' means "
        f"({_seeds(c)}); the interval spans the t-test's and a bootstrap's over each side's "
        "seeds and the images."
    )


def statistics_lines(
    comparisons: Sequence[Comparison], protocols: Mapping[str, MetricProtocol]
) -> list[str]:
    """The ``## Paired statistics`` section of ``report.md``."""
    lines = ["## Paired statistics", ""]
    if not comparisons:
        return [*lines, "No pair to compare: the report holds one run (or group) only.", ""]
    tests = sum(math.isfinite(c.p) for c in comparisons)
    corrected = (
        f"its p, Holm-corrected across all {tests} tests of this report"
        if tests
        else "no p (no comparison of this report can be tested, see below)"
    )
    lines += [
        "Each cell: the mean difference (run minus baseline, over runs and images) with its "
        f"{CONFIDENCE:.0%} interval and {corrected}. What is tested follows what varies "
        f"between the two sides (bootstraps: `scipy.stats.bootstrap`, {N_RESAMPLES} resamples):",
        "",
        "- a side is a fixed model (bicubic, a model with no training seed, or the start the "
        "other side was fine-tuned from) and the other is one model: images are the unit, a "
        "statement about these models. Two-sided Wilcoxon signed-rank p over the images' "
        "differences (`scipy.stats.wilcoxon`), BCa interval over the images.",
        f"- trained runs with at least {MIN_SEEDS} seeds on every trained side: seeds are the "
        "unit, a statement about the recipes. Welch's t over the runs' means "
        "(`scipy.stats.ttest_ind`, `equal_var=False`; `ttest_1samp` against a fixed side); the "
        "interval spans the t-test's own (the seed-to-seed spread, as wide as few seeds leave "
        "it) and a percentile bootstrap resampling each side's seeds and, independently, the "
        "images (their variation).",
        "- one trained run on a side: the difference between the models is shown with its "
        "interval over the images, unmarked; one run cannot separate the recipe from the seed.",
        "",
        f"Bold: significant (the interval excludes 0 and the corrected p < {ALPHA}); better or "
        "worse follows each measure's direction. The per-image scores are in `scores.csv`; "
        "`report.json` also holds each comparison's image-level Wilcoxon p (`p_images`).",
        "",
    ]
    measures = list(dict.fromkeys(c.measure for c in comparisons))
    for pair in dict.fromkeys((c.run, c.baseline) for c in comparisons):
        lines += [f"### {pair[0]} against {pair[1]}", ""]
        mine = [c for c in comparisons if (c.run, c.baseline) == pair]
        lines += [level_line(mine[0]), ""]
        rows = []
        for label in dict.fromkeys(c.set for c in mine):
            cells = {c.measure: _cell(c, protocols.get(c.measure)) for c in mine if c.set == label}
            first = next(c for c in mine if c.set == label)
            seeds = f", {_seeds(first)}" if first.test in (WELCH, ONE_SAMPLE) else ""
            rows.append([f"{label} ({first.images} images{seeds})", *map(cells.get, measures)])
        lines += [*markdown_table(["", *map(measure_name, measures)], rows, numeric=0), ""]
        for c in mine:
            if c.significant or (c.too_small and c.test and c.measure == measures[0]):
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


__all__ = ["level_line", "per_image_lines", "p_text", "sentence", "statistics_lines"]
