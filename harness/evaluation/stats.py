"""Is A better than B? Paired statistics over the images both were scored on.

For a run (or a group of replicates) against a baseline, per measure, per set and pooled over
all sets: the mean paired difference ``run - baseline`` with a 95% bootstrap confidence interval
(:func:`scipy.stats.bootstrap`, BCa, resampling images, and seeds when both sides have
replicates), and a two-sided Wilcoxon signed-rank p-value (:func:`scipy.stats.wilcoxon`) over
the images' differences (each the mean over seeds). Holm's correction runs across every
comparison of one report. A difference is called significant only when its interval excludes
zero and its corrected p is below :data:`ALPHA`. A set so small that even the most extreme
ranking cannot reach :data:`ALPHA` (5 images: the exact two-sided p is at least 0.0625) is
said to be too small, never "no difference".

The inputs are the rows of ``scores.csv`` (:mod:`harness.evaluation.per_image`), so a reader
can redo every number from that file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
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


@dataclass
class Comparison:
    """``run`` against ``baseline`` on ``measure`` over the images of ``set``."""

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
    p_holm: float = math.nan

    @property
    def min_p(self) -> float:
        """The smallest two-sided exact Wilcoxon p that ``images`` pairs can give."""
        return min(1.0, 2.0 * 0.5**self.images)

    @property
    def too_small(self) -> bool:
        return self.min_p >= ALPHA

    @property
    def significant(self) -> bool:
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
        return "not significant"

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "significant": self.significant,
            "too_small": self.too_small,
            "verdict": self.verdict,
        }


def paired_differences(run: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """``(seeds, images)`` differences of two ``(replicates, images)`` score arrays: replicate
    ``i`` against replicate ``i`` when both have as many (the same seeds), against the single
    baseline when it has one, else the seed means against each other (images only)."""
    if run.shape[0] == baseline.shape[0] or 1 in (run.shape[0], baseline.shape[0]):
        return run - baseline
    return (run.mean(axis=0) - baseline.mean(axis=0))[None]


def confidence_interval(differences: np.ndarray) -> tuple[float, float]:
    """The BCa bootstrap interval of the mean of ``differences`` ``(seeds, images)``: images
    resampled, and seeds too (independently: a crossed bootstrap) when there are several."""
    rng = np.random.default_rng(SEED)
    common = {"n_resamples": N_RESAMPLES, "confidence_level": CONFIDENCE, "rng": rng}
    seeds, images = differences.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate data (all equal): a nan interval, below
        if seeds == 1:
            result = stats.bootstrap((differences[0],), np.mean, **common)
        else:

            def mean_of(seed_index: np.ndarray, image_index: np.ndarray, axis: int = -1) -> Any:
                cells = differences[seed_index[..., :, None], image_index[..., None, :]]
                return cells.mean(axis=(-2, -1))

            data = (np.arange(seeds), np.arange(images))
            result = stats.bootstrap(data, mean_of, vectorized=True, batch=500, **common)
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        mean = float(differences.mean())  # every resample has the same mean
        return mean, mean
    return float(low), float(high)


def wilcoxon_p(per_image: np.ndarray) -> float:
    """The two-sided Wilcoxon signed-rank p of the images' differences (1 when all are 0)."""
    if not np.any(per_image != 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few non-zero pairs: SciPy warns, the p is still exact
        return float(stats.wilcoxon(per_image).pvalue)


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
) -> Comparison:
    """One comparison of the groups ``run`` and ``baseline`` over the images of ``sets``
    (``label`` names them: a set, or :data:`POOLED`)."""
    a, images_a = matrix(rows, run, measure, sets)
    b, images_b = matrix(rows, baseline, measure, sets)
    if images_a != images_b:
        raise ValueError(f"{run} and {baseline} were scored on different images of {label}")
    differences = paired_differences(a, b)
    finite = np.all(np.isfinite(differences), axis=0)  # PSNR of an exact copy is inf
    differences = differences[:, finite]
    if differences.shape[1] == 0:
        return Comparison(run, baseline, measure, label, 0, 0, *(math.nan,) * 4, higher_is_better)
    low, high = confidence_interval(differences) if differences.shape[1] > 1 else (math.nan,) * 2
    return Comparison(
        run=run,
        baseline=baseline,
        measure=measure,
        set=label,
        images=differences.shape[1],
        seeds=differences.shape[0],
        difference=float(differences.mean()),
        low=low,
        high=high,
        p=wilcoxon_p(differences.mean(axis=0)),
        higher_is_better=higher_is_better,
    )


def pairs_against(
    groups: Sequence[str], baseline: str | None = None, bicubic: str = "bicubic"
) -> tuple[str, list[tuple[str, str]]]:
    """``(baseline, pairs)``: every group against ``baseline`` (default: the first group, or
    ``bicubic`` when there is one group only). An unknown ``baseline`` raises ``KeyError``."""
    if baseline is None:
        baseline = groups[0] if len(groups) > 1 else bicubic
    if baseline != bicubic and baseline not in groups:
        raise KeyError(baseline)
    return baseline, [(g, baseline) for g in groups if g != baseline]


def compare_all(
    rows: Sequence[Mapping[str, Any]],
    pairs: Sequence[tuple[str, str]],
    measures: Mapping[str, bool],
) -> list[Comparison]:
    """Every ``(run, baseline)`` group pair on every measure (name -> higher is better), per
    set and pooled over the sets (when there are several), Holm-corrected together."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    scopes = [([s], s) for s in sets] + ([(sets, POOLED)] if len(sets) > 1 else [])
    out = [
        compare(rows, run, baseline, measure, scope, better, label)
        for run, baseline in pairs
        for measure, better in measures.items()
        for scope, label in scopes
    ]
    for comparison, adjusted in zip(out, holm([c.p for c in out]), strict=True):
        comparison.p_holm = adjusted
    return out


__all__ = [
    "ALPHA",
    "POOLED",
    "Comparison",
    "compare",
    "compare_all",
    "confidence_interval",
    "holm",
    "paired_differences",
    "pairs_against",
    "wilcoxon_p",
]
