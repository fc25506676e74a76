"""The plots of ``harness report``: validation curves and the perception-distortion plane.

Both are drawn with matplotlib (Agg backend, no display). The side-by-side crops are
:mod:`harness.evaluation.crops`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import diskwrite

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
BICUBIC_COLOR = "#7f7f7f"


def color(index: int) -> str:
    return COLORS[index % len(COLORS)]


def _pyplot() -> Any:
    # matplotlib (seconds to import, and a backend to choose): only a report draws figures
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # as above, after the backend is chosen

    return plt


# --------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curves:
    """One run's validation history: ``metric -> [(step, value)]`` and its bicubic line; for a
    group of replicates the mean history and its ``band``: ``metric -> [(step, low, high)]``."""

    label: str
    history: Mapping[str, Sequence[tuple[int, float]]]
    bicubic_psnr_y: float | None = None
    band: Mapping[str, Sequence[tuple[int, float, float]]] = field(default_factory=dict)


def plot_curves(runs: Sequence[Curves], path: Path, perceptual: str = "lpips") -> Path:
    """``val/psnr_y`` over steps (and ``val/<perceptual>`` when a run logged it), one line per
    run, each run's bicubic PSNR-Y on its validation set as a dashed line (Ledig et al. Figs.
    6-8 style)."""
    plt = _pyplot()
    fig = curves_figure(runs, perceptual)
    with diskwrite.atomic(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def curves_figure(runs: Sequence[Curves], perceptual: str = "lpips") -> Any:
    """The figure :func:`plot_curves` saves (the caller closes it)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator  # matplotlib: loaded by _pyplot, as a figure is drawn

    keys = ["val/psnr_y"]
    if any(r.history.get(f"val/{perceptual}") for r in runs):
        keys.append(f"val/{perceptual}")
    fig, axes = plt.subplots(1, len(keys), figsize=(6.0 * len(keys), 4.2), squeeze=False)
    # one bicubic line when every run that logged one validated on the same images (a model
    # file in the report has no validation, so no line of its own)
    bases = {round(r.bicubic_psnr_y, 6) for r in runs if r.bicubic_psnr_y is not None}
    shared = len(bases) == 1
    for ax, key in zip(axes[0], keys, strict=True):
        drawn = bicubic_drawn = False
        for i, run in enumerate(runs):
            points = sorted(run.history.get(key, ()))
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o", ms=3, color=color(i), label=run.label)
                drawn = True
            band = sorted(run.band.get(key, ()))
            if band:
                at, low, high = zip(*band, strict=True)
                ax.fill_between(at, low, high, color=color(i), alpha=0.2, lw=0)
            base = run.bicubic_psnr_y
            if key != "val/psnr_y" or base is None or not math.isfinite(base):
                continue
            if shared:
                if not bicubic_drawn:
                    ax.axhline(base, ls="--", lw=1, color=BICUBIC_COLOR, label="bicubic")
                    bicubic_drawn = True
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
    return fig


# --------------------------------------------------------------------------- perception-distortion


def plot_perception_distortion(
    tables: Mapping[str, Mapping[str, Mapping[str, float]]],
    references: Mapping[str, Mapping[str, Mapping[str, float]]],
    path: Path,
    y: str = "lpips",
    y_label: str = "LPIPS",
    lower_is_better: bool = True,
    curves: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]] | None = None,
) -> Path:
    """One panel per set: PSNR-Y (x) against ``y`` (lower is better), a point per row of the
    set's table (bicubic first) and the published points of ``references`` (``method -> set ->
    measures``, hollow grey markers; a method without ``y`` is a labelled vertical dashed line at
    its PSNR-Y). ``curves`` (row -> set -> points with ``alpha``) are drawn as dotted lines in
    the row's colour, each point labelled with its alpha (network interpolation)."""
    plt = _pyplot()
    fig = plane_figure(tables, references, y, y_label, lower_is_better, curves)
    with diskwrite.atomic(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plane_figure(
    tables: Mapping[str, Mapping[str, Mapping[str, float]]],
    references: Mapping[str, Mapping[str, Mapping[str, float]]],
    y: str = "lpips",
    y_label: str = "LPIPS",
    lower_is_better: bool = True,
    curves: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]] | None = None,
) -> Any:
    """The figure :func:`plot_perception_distortion` saves (the caller closes it): one legend
    for all panels, below them, so that no panel's points hide under it."""
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
                _interpolation(ax, (curves or {}).get(row, {}).get(label, ()), y, color(run_i))
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
    legend: dict[str, Any] = {}  # label -> handle, in the order the panels drew them
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.suptitle(
        "perception-distortion plane\n(filled: measured here; hollow: published)", fontsize=10
    )
    fig.tight_layout()
    if legend:
        fig.legend(
            legend.values(),
            legend.keys(),
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            ncol=min(4, len(legend)),
            fontsize=8,
            frameon=False,
        )
    return fig


def _interpolation(ax: Any, points: Sequence[Mapping[str, float]], y: str, hue: str) -> None:
    points = [p for p in points if math.isfinite(p.get("psnr_y", math.nan)) and y in p]
    if not points:
        return
    xs, ys = [p["psnr_y"] for p in points], [p[y] for p in points]
    ax.plot(xs, ys, ls=":", marker=".", color=hue, lw=1.2, zorder=2)
    for p, px, py in zip(points, xs, ys, strict=True):
        ax.annotate(
            f"{p['alpha']:.2g}",
            (px, py),
            fontsize=6,
            color=hue,
            xytext=(3, 3),
            textcoords="offset points",
        )


def reference_key(label: str) -> str:
    """A data set label -> the key of :file:`references.toml` (``Set5`` -> ``set5``)."""
    key = label.lower().replace("-", "").replace("_", "")
    return {"b100": "bsd100", "bsds100": "bsd100"}.get(key, key)


def run_curves(
    runs: Sequence[Any],
    path: Path,
    extra: Mapping[str, Any],
    curves: Sequence[Curves] | None = None,
) -> Path:
    """``curves.png`` of the reported runs (or of ``curves`` made from them: replicates as
    their mean and band): PSNR-Y and the first of ``extra`` a run validated with (else LPIPS)."""
    perceptual = next((k for k in extra if any(f"val/{k}" in r.history for r in runs)), "lpips")
    if curves is None:
        curves = [Curves(r.label, r.history, r.bicubic_val) for r in runs]
    return plot_curves(curves, path, perceptual)


__all__ = [
    "Curves",
    "color",
    "curves_figure",
    "plot_curves",
    "plane_figure",
    "plot_perception_distortion",
    "reference_key",
    "run_curves",
]
