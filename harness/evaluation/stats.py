"""Is A better than B? Paired statistics over the images both were scored on, at the level the
two sides can answer.

For a run (or a group of replicates) against a baseline, per measure, per set and pooled over
all sets, the report gives the mean difference ``run - baseline`` (over runs and images), a 95%
interval (bootstraps: :func:`scipy.stats.bootstrap`) and a p-value; Holm's correction runs
across every test of one report. What the test is depends on what varies between the two sides
(the unit of replication):

- **model** (a side has no training seed: bicubic, a model with no recorded experiment, or the
  start every run of the other side was fine-tuned from; the other side is one model): the
  question is "does this model beat that one on images like these?". Images are the unit: a
  two-sided Wilcoxon signed-rank p over the images' differences (:func:`scipy.stats.wilcoxon`)
  and a BCa interval resampling images.
- **recipe** (the sides are trained runs, or trained runs against a fixed model, with two or
  more seeds on every trained side): the question is "does recipe A beat recipe B?", and a
  second seed of one recipe is a different model. Seeds are the unit of the test: Welch's t over
  the runs' means (:func:`scipy.stats.ttest_ind`, ``equal_var=False``, as replicate studies in
  ML do), or a one-sample t of the runs' differences from a fixed side's mean
  (:func:`scipy.stats.ttest_1samp`), conditional on the benchmark's images. The interval spans
  two: the t-test's own interval over the runs' means (the seed-to-seed spread, as wide as few
  seeds leave it) and a percentile bootstrap resampling the seeds within each side and,
  independently, the images (every run is scored on the same images: a crossed design), which
  adds the images' variation. Neither alone will do: two seeds resample to three values, so the
  bootstrap alone shows too little of the seed-to-seed spread (two seed pairs of one MSRResNet
  experiment: bootstrap [+0.001, +0.015] dB, Welch p = 0.27), and the t interval holds the
  images fixed. A Wilcoxon over the images of the seed-averaged differences sees none of the
  seed-to-seed variance (the same two pairs: p = 0.0001); it is kept as ``p_images``, an
  image-level consistency figure, never as the verdict.
- With one run on a trained side no seed-level test exists (Welch's t needs two runs a side):
  the difference between the two models is shown with its images-only interval, unmarked.

A difference is called significant only when its interval excludes zero and its corrected p is
below :data:`ALPHA`. A set so small that even the most extreme ranking of its images cannot
reach :data:`ALPHA` (5 images: the exact two-sided Wilcoxon p is at least 0.0625) is said to be
too small at either level, never "no difference".

The inputs are the rows of ``scores.csv`` (:mod:`harness.evaluation.per_image`; a run with an
empty ``seed`` has no training seed), so a reader can redo every number from that file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from harness.evaluation.per_image import matrix

ALPHA = 0.05
"""The significance level (family-wise, after Holm's correction)."""
CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 0
"""The bootstrap's random generator seed: the same scores give the same report."""
POOLED = "all sets"
"""The ``set`` of a comparison pooled over the images of every set."""
MODEL, RECIPE = "model", "recipe"
"""The levels of a comparison: images are the unit (these models), or seeds (these recipes)."""
WILCOXON, WELCH, ONE_SAMPLE = "wilcoxon", "welch", "one-sample t"
"""The tests behind ``p``: over images (model level), over runs' means (recipe level)."""
MIN_SEEDS = 2
"""The fewest runs a trained side needs for a recipe-level verdict."""


@dataclass
class Comparison:
    """``run`` against ``baseline`` on ``measure`` over the images of ``set``: ``seeds`` and
    ``baseline_seeds`` runs (1 for a fixed model), compared at ``level`` by ``test``."""

    run: str
    baseline: str
    measure: str
    set: str
    images: int
    seeds: int
    difference: float
    low: float
    high: float
    p: float
    higher_is_better: bool
    baseline_seeds: int = 1
    level: str = MODEL
    test: str = WILCOXON  # "" when no test is possible (too few seeds)
    resampled: str = "images"  # what the bootstrap resamples: "images" or "seeds and images"
    t_low: float = math.nan  # recipe level: the t-test's interval, over the runs' means
    t_high: float = math.nan
    boot_low: float = math.nan  # recipe level: the bootstrap's, over seeds and images
    boot_high: float = math.nan
    p_images: float = math.nan  # Wilcoxon over the images of the seed-averaged differences
    run_fixed: bool = False  # a side with no training seed (or the other side's start)
    baseline_fixed: bool = False
    p_holm: float = math.nan

    @property
    def min_p(self) -> float:
        """The smallest two-sided exact Wilcoxon p that ``images`` pairs can give."""
        return min(1.0, 2.0 * 0.5**self.images)

    @property
    def too_small(self) -> bool:
        """Too few images for a verdict at any level."""
        return self.min_p >= ALPHA

    @property
    def too_few_seeds(self) -> bool:
        """A recipe-level question with a trained side of fewer than :data:`MIN_SEEDS` runs."""
        return self.level == RECIPE and not self.test

    @property
    def one_run_a_side(self) -> bool:
        """Two single trained runs: the recipe cannot be told from the seed."""
        return self.too_few_seeds and self.seeds == self.baseline_seeds == 1

    @property
    def significant(self) -> bool:
        if self.too_small or self.too_few_seeds:
            return False
        excludes_zero = self.low > 0 or self.high < 0
        return bool(excludes_zero and self.p_holm < ALPHA)

    @property
    def better(self) -> bool:
        return (self.difference > 0) == self.higher_is_better

    @property
    def verdict(self) -> str:
        if self.significant:
            return "better" if self.better else "worse"
        if self.too_small:
            return "too few images"
        if self.one_run_a_side:
            return "no verdict: one run a side"
        if self.too_few_seeds:
            return "too few seeds"
        return "not significant"

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "significant": self.significant,
            "too_small": self.too_small,
            "too_few_seeds": self.too_few_seeds,
            "verdict": self.verdict,
        }


def level(run_runs: int, run_fixed: bool, baseline_runs: int, baseline_fixed: bool) -> str:
    """:data:`MODEL` when a side is fixed and the other is one model (images are the unit),
    else :data:`RECIPE` (seeds are; it needs :data:`MIN_SEEDS` runs on every trained side)."""
    if (run_fixed or baseline_fixed) and (
        (run_fixed or run_runs == 1) and (baseline_fixed or baseline_runs == 1)
    ):
        return MODEL
    return RECIPE


def _interval(
    statistic: Callable[..., Any], data: tuple[np.ndarray, ...], method: str, fallback: float
) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate data (all equal): a nan interval, below
        result = stats.bootstrap(
            data,
            statistic,
            n_resamples=N_RESAMPLES,
            confidence_level=CONFIDENCE,
            method=method,
            rng=np.random.default_rng(SEED),
            vectorized=True,
            batch=500,
        )
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return fallback, fallback  # every resample has the same mean
    return float(low), float(high)


def confidence_interval(differences: np.ndarray) -> tuple[float, float]:
    """The BCa bootstrap interval of the mean of the images' ``differences`` (images resampled)."""
    return _interval(np.mean, (differences,), "BCa", float(np.mean(differences)))


def seed_interval(run: np.ndarray, baseline: np.ndarray, fixed: str = "") -> tuple[float, float]:
    """The percentile bootstrap interval of ``mean(run) - mean(baseline)``, both
    ``(runs, images)``: the runs of each side resampled independently of the other's, and the
    images (one draw for both sides: they are paired). ``fixed`` ("run" or "baseline") names a
    side that is one fixed model, whose runs are not resampled.

    Percentile, not BCa: BCa's acceleration is a jackknife over the fewest seeds (2 or 3 runs),
    which says little, and the resampled means of a few seeds take few distinct values."""
    samples = {"run": run, "baseline": baseline}
    varied = [k for k in samples if k != fixed]

    def mean_of(*index: np.ndarray, axis: int = -1) -> Any:
        images = index[-1]
        means = {}
        for key, scores in samples.items():
            if key in varied:
                seeds = index[varied.index(key)]
                cells = scores[seeds[..., :, None], images[..., None, :]]
                means[key] = cells.mean(axis=(-2, -1))
            else:
                means[key] = scores[:, images].mean(axis=(0, -1))
        return means["run"] - means["baseline"]

    data = (*(np.arange(samples[k].shape[0]) for k in varied), np.arange(run.shape[1]))
    return _interval(mean_of, data, "percentile", float(run.mean() - baseline.mean()))


def wilcoxon_p(per_image: np.ndarray) -> float:
    """The two-sided Wilcoxon signed-rank p of the images' differences (1 when all are 0)."""
    if not np.any(per_image != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few non-zero pairs: SciPy warns, the p is still exact
        return float(stats.wilcoxon(per_image).pvalue)


def seed_test(
    run_means: np.ndarray, baseline_means: np.ndarray, fixed: str = ""
) -> tuple[float, float, float]:
    """``(p, low, high)``: the two-sided p that the runs' means (one per seed) of the two sides
    differ, and the interval of ``run - baseline`` of the same test: Welch's t, or a one-sample
    t of the differences of the trained side's runs from a ``fixed`` side's mean. ``p`` is 1
    when every mean is equal, nan when the runs of each side agree exactly but the sides
    differ (t is undefined); the interval is nan where SciPy's is."""
    if np.all(run_means == run_means[0]) and np.all(baseline_means == run_means[0]):
        return 1.0, math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero variance: SciPy warns and returns nan
        if fixed == "baseline":
            result = stats.ttest_1samp(run_means - baseline_means.mean(), 0.0)
        elif fixed == "run":
            result = stats.ttest_1samp(run_means.mean() - baseline_means, 0.0)
        else:
            result = stats.ttest_ind(run_means, baseline_means, equal_var=False)
        low, high = result.confidence_interval(CONFIDENCE)
    return float(result.pvalue), float(low), float(high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and is not counted).

    statsmodels' ``multipletests(method="holm")`` is the library form, but statsmodels is not
    a dependency, and SciPy ships only Benjamini-Hochberg/Yekutieli
    (``false_discovery_control``), which control the false discovery rate, not the family-wise
    error Holm's method does; the step-down itself is these few lines."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.full(p.shape, math.nan)
    out[order] = adjusted
    return out.tolist()


def compare(
    rows: Sequence[Mapping[str, Any]],
    run: str,
    baseline: str,
    measure: str,
    sets: Sequence[str],
    higher_is_better: bool,
    label: str,
    fixed: Sequence[str] = (),
) -> Comparison:
    """One comparison of the groups ``run`` and ``baseline`` over the images of ``sets``
    (``label`` names them: a set, or :data:`POOLED`); ``fixed`` names the sides ("run",
    "baseline") that are fixed models (see :func:`fixed_sides`)."""
    a, images_a = matrix(rows, run, measure, sets)
    b, images_b = matrix(rows, baseline, measure, sets)
    if images_a != images_b:
        raise ValueError(f"{run} and {baseline} were scored on different images of {label}")
    finite = np.all(np.isfinite(a), axis=0) & np.all(np.isfinite(b), axis=0)  # PSNR of a copy
    a, b = a[:, finite], b[:, finite]
    run_fixed, baseline_fixed = "run" in fixed, "baseline" in fixed
    at = level(a.shape[0], run_fixed, b.shape[0], baseline_fixed)
    out = Comparison(
        run=run,
        baseline=baseline,
        measure=measure,
        set=label,
        images=a.shape[1],
        seeds=a.shape[0],
        baseline_seeds=b.shape[0],
        difference=math.nan,
        low=math.nan,
        high=math.nan,
        p=math.nan,
        higher_is_better=higher_is_better,
        level=at,
        run_fixed=run_fixed,
        baseline_fixed=baseline_fixed,
    )
    if a.shape[1] == 0:
        return out
    per_image = a.mean(axis=0) - b.mean(axis=0)
    out.difference = float(a.mean() - b.mean())
    out.p_images = wilcoxon_p(per_image)
    sides = ((a.shape[0], run_fixed), (b.shape[0], baseline_fixed))
    if at == RECIPE and min(n for n, is_fixed in sides if not is_fixed) >= MIN_SEEDS:
        side = "baseline" if baseline_fixed else "run" if run_fixed else ""
        out.test = ONE_SAMPLE if side else WELCH
        out.p, out.t_low, out.t_high = seed_test(a.mean(axis=1), b.mean(axis=1), side)
        out.resampled = "seeds and images"
        if a.shape[1] > 1:
            out.boot_low, out.boot_high = seed_interval(a, b, side)
            # the span of both (nan, where the t interval is undefined, is left out)
            out.low = float(np.nanmin([out.t_low, out.boot_low]))
            out.high = float(np.nanmax([out.t_high, out.boot_high]))
        return out
    out.test = WILCOXON if at == MODEL else ""
    out.p = out.p_images if at == MODEL else math.nan
    if a.shape[1] > 1:
        out.low, out.high = confidence_interval(per_image)
    return out


def fixed_sides(
    run: str,
    baseline: str,
    unseeded: Sequence[str] = (),
    starts_from: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The sides of ``(run, baseline)`` that are one fixed model: a group in ``unseeded`` (no
    training seed: bicubic, a bare model), or the start every run of the other side was
    fine-tuned from (``starts_from``: group -> the group all its runs start from), whose own
    seed is then shared by every run compared with it."""
    starts = starts_from or {}
    out = []
    if run in unseeded or starts.get(baseline) == run:
        out.append("run")
    if baseline in unseeded or starts.get(run) == baseline:
        out.append("baseline")
    return tuple(out)


def pairs_against(
    groups: Sequence[str], baseline: str | Sequence[str] | None = None, bicubic: str = "bicubic"
) -> tuple[list[str], list[tuple[str, str]]]:
    """``(baselines, pairs)``: every group against each of ``baseline`` (one name or several;
    default: the first group, or ``bicubic`` when there is one group only), in that order; two
    baselines are compared once, the later against the earlier. An unknown baseline raises
    ``KeyError``."""
    if not baseline:
        baseline = groups[0] if len(groups) > 1 else bicubic
    baselines = list(dict.fromkeys([baseline] if isinstance(baseline, str) else baseline))
    pairs: list[tuple[str, str]] = []
    for b in baselines:
        if b != bicubic and b not in groups:
            raise KeyError(b)
        pairs += [(g, b) for g in groups if g != b and (b, g) not in pairs]
    return baselines, pairs


def unseeded_groups(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The groups of ``rows`` none of whose runs has a training seed (bicubic, bare models)."""
    seeded = {r["group"] for r in rows if str(r["seed"]) != ""}
    return list(dict.fromkeys(r["group"] for r in rows if r["group"] not in seeded))


def compare_all(
    rows: Sequence[Mapping[str, Any]],
    pairs: Sequence[tuple[str, str]],
    measures: Mapping[str, bool],
    starts_from: Mapping[str, str] | None = None,
) -> list[Comparison]:
    """Every ``(run, baseline)`` group pair on every measure (name -> higher is better), per
    set and pooled over the sets (when there are several), Holm-corrected together.
    ``starts_from`` (group -> the group all its runs were fine-tuned from) makes that start a
    fixed side for its fine-tunes (:func:`fixed_sides`)."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    scopes = [([s], s) for s in sets] + ([(sets, POOLED)] if len(sets) > 1 else [])
    unseeded = unseeded_groups(rows)
    out = [
        compare(
            rows,
            run,
            baseline,
            measure,
            scope,
            better,
            label,
            fixed_sides(run, baseline, unseeded, starts_from),
        )
        for run, baseline in pairs
        for measure, better in measures.items()
        for scope, label in scopes
    ]
    for comparison, adjusted in zip(out, holm([c.p for c in out]), strict=True):
        comparison.p_holm = adjusted
    return out


__all__ = [
    "ALPHA",
    "MIN_SEEDS",
    "MODEL",
    "ONE_SAMPLE",
    "POOLED",
    "RECIPE",
    "WELCH",
    "WILCOXON",
    "Comparison",
    "compare",
    "compare_all",
    "confidence_interval",
    "fixed_sides",
    "holm",
    "level",
    "pairs_against",
    "seed_interval",
    "seed_test",
    "unseeded_groups",
    "wilcoxon_p",
]
