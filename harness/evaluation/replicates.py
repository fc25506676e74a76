"""Replicates in a report: runs of one experiment with different seeds (``harness compare
--seeds``, grouped by ``[experiment] group``) shown as their mean and spread.

A table row of a group is the mean over its runs of each run's set mean, with the standard
deviation over the runs (``ddof=1``); a curve is the mean over the runs at the steps all of
them validated, with a band from the lowest to the highest run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.evaluation.plots import Curves
from harness.evaluation.records import RunInfo


def members(runs: Sequence[RunInfo]) -> dict[str, list[RunInfo]]:
    """Group label -> its runs, in report order (a run without a group is its own)."""
    out: dict[str, list[RunInfo]] = {}
    for run in runs:
        out.setdefault(run.group_label, []).append(run)
    return out


def has_replicates(runs: Sequence[RunInfo]) -> bool:
    return any(len(m) > 1 for m in members(runs).values())


def shared_starts(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Group label -> the group every one of its runs was fine-tuned from, when that start is
    one run of the report (one fixed model for the group's statistics: its seed is shared)."""
    groups = members(runs)
    group_of = {r.label: r.group_label for r in runs}
    out = {}
    for group, rs in groups.items():
        starts = {group_of.get(r.init_label) for r in rs}
        if len(starts) == 1:
            (start,) = starts
            if start is not None and start != group and len(groups[start]) == 1:
                out[group] = start
    return out


@dataclass
class GroupedTables:
    """Per set and row (bicubic or a group): the mean, the spread and the number of runs."""

    means: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    spreads: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"means": self.means, "std": self.spreads, "runs": self.counts}


def grouped_tables(
    tables: Mapping[str, Mapping[str, Mapping[str, float]]], runs: Sequence[RunInfo]
) -> GroupedTables:
    """``tables`` (set -> run label -> measure -> mean) as one row per group."""
    groups = {"bicubic": ["bicubic"]} | {
        g: [r.label for r in rs] for g, rs in members(runs).items()
    }
    out = GroupedTables(counts={g: len(labels) for g, labels in groups.items()})
    for label, table in tables.items():
        out.means[label], out.spreads[label] = {}, {}
        for group, labels in groups.items():
            rows = [table[x] for x in labels if x in table]
            if not rows:
                continue
            out.means[label][group] = {m: float(np.mean([r[m] for r in rows])) for m in rows[0]}
            out.spreads[label][group] = {
                m: float(np.std([r[m] for r in rows], ddof=1)) if len(rows) > 1 else math.nan
                for m in rows[0]
            }
    return out


def group_curves(runs: Sequence[RunInfo]) -> list[Curves]:
    """One :class:`Curves` per group: a single run's own history, or the mean of a group's
    runs at their common steps with the min-max band."""
    out = []
    for group, rs in members(runs).items():
        if len(rs) == 1:
            out.append(Curves(rs[0].label, rs[0].history, rs[0].bicubic_val))
            continue
        history, band = {}, {}
        for key in dict.fromkeys(k for r in rs for k in r.history):
            series = [dict(r.history.get(key, ())) for r in rs]
            steps = sorted(set.intersection(*(set(s) for s in series)))
            values = np.array([[s[step] for step in steps] for s in series])
            if steps:
                history[key] = list(zip(steps, values.mean(axis=0).tolist(), strict=True))
                low, high = values.min(axis=0).tolist(), values.max(axis=0).tolist()
                band[key] = list(zip(steps, low, high, strict=True))
        label = f"{group} (mean of {len(rs)} seeds)"
        out.append(Curves(label, history, rs[0].bicubic_val, band))
    return out


__all__ = [
    "GroupedTables",
    "group_curves",
    "grouped_tables",
    "has_replicates",
    "members",
    "shared_starts",
]
