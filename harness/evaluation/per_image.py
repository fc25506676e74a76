"""The report's per-image scores as one table: a row per (set, run, image) with every measure.

``scores.csv`` in the report folder is what the paired statistics
(:mod:`harness.evaluation.stats`) are computed from, so anyone can redo them: read it back with
:func:`read_csv` and take the arrays with :func:`matrix`. ``run`` is the report's row label,
``group`` the experiment its replicates share (the run's own label when it has none) and
``seed`` the run's training seed, empty for bicubic and for a model with no recorded experiment:
the statistics treat a group without seeds as a fixed model (images are the unit).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

KEYS: tuple[str, ...] = ("set", "group", "seed", "run", "image")
"""The columns that name a score; the measures follow them."""


def score_rows(
    results: Mapping[str, Mapping[str, Any]],
    measures: Sequence[str],
    groups: Mapping[str, str] | None = None,
    seeds: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``results`` (set -> run label -> :class:`~harness.measures.scoring.EvalResult`) as rows
    of :data:`KEYS` and ``measures``; ``groups``/``seeds`` map a run label to its group/seed."""
    rows = []
    for label, by_run in results.items():
        for run, result in by_run.items():
            for image in result.images:
                values = image.as_dict()
                rows.append(
                    {
                        "set": label,
                        "group": (groups or {}).get(run, run),
                        "seed": (seeds or {}).get(run, ""),
                        "run": run,
                        "image": image.name,
                        **{m: float(values[m]) for m in measures},
                    }
                )
    return rows


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], measures: Sequence[str]) -> None:
    """``rows`` as CSV with full float precision (``repr``), so the statistics can be redone."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*KEYS, *measures])
        for row in rows:
            writer.writerow([*(row[k] for k in KEYS), *(repr(row[m]) for m in measures)])


def read_csv(path: str | Path) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """``(rows, measures)`` of a ``scores.csv`` written by :func:`write_csv`."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        measures = tuple(k for k in reader.fieldnames or () if k not in KEYS)
        rows = [{**r, **{m: float(r[m]) for m in measures}} for r in reader]
    return rows, measures


def columns(rows: Sequence[Mapping[str, Any]], measures: Sequence[str]) -> dict[str, list]:
    """The rows as ``column -> values`` (what MLflow's ``log_table`` takes)."""
    return {k: [r[k] for r in rows] for k in (*KEYS, *measures)}


def matrix(
    rows: Sequence[Mapping[str, Any]], group: str, measure: str, sets: Sequence[str]
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The scores of ``group`` on ``measure`` over the images of ``sets``, as a
    ``(replicates, images)`` array (replicates in the order of their rows), and the
    ``(set, image)`` of each column."""
    wanted = set(sets)
    runs: dict[str, dict[tuple[str, str], float]] = {}
    for r in rows:
        if r["group"] == group and r["set"] in wanted:
            runs.setdefault(r["run"], {})[(r["set"], r["image"])] = float(r[measure])
    if not runs:
        raise KeyError(f"no scores of {group} on {', '.join(sets)}")
    images = [key for s in sets for key in next(iter(runs.values())) if key[0] == s]
    return np.array([[scores[k] for k in images] for scores in runs.values()]), images


__all__ = ["KEYS", "columns", "matrix", "read_csv", "score_rows", "write_csv"]
