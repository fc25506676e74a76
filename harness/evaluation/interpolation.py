"""``harness report --interpolate K``: the perception-distortion curve of each fine-tune.

A run whose lineage names its base (``[generator] init``, the MLflow tag
``harness.init.generator``) is interpolated with it (:mod:`harness.deploy.interpolate`): K
generators with weights ``(1 - alpha) base + alpha run``, alpha evenly from 0 to 1, each scored
on every set like any reported model. The report draws them as a line on the
perception-distortion plane, so a run shows the whole trade-off it offers, not one point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.deploy.interpolate import blend, check_same_architecture
from harness.deploy.models import load_generator
from harness.deploy.upscaler import Upscaler
from harness.errors import HarnessError
from harness.evaluation.records import RunInfo
from harness.measures.scoring import evaluate

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry

Curve = dict[str, list[dict[str, float]]]
"""Set label -> one ``{"alpha": a, <measure>: mean, ...}`` per alpha."""


def interpolation_curves(
    runs: Sequence[RunInfo],
    images: Mapping[str, Any],
    scale: int,
    extra: Mapping[str, Callable[..., float]],
    points: int,
    registry: Registry,
    say: Callable[[str], Any] = print,
    measured: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, Curve]:
    """Run label -> its interpolation curve, for each run with a loadable base of its own
    architecture (the others are skipped with a message).

    The ends are the two models themselves (alpha 0 is the base's weights exactly, alpha 1 the
    run's): where ``measured`` (set -> row -> means, the report's tables) already scored them,
    as the run and its base when that is reported too, those scores are used; a base outside
    the report is scored once for all the runs that start from it. So K points cost K - 2
    evaluations per run when the base is reported."""
    out: dict[str, Curve] = {}
    alphas = np.linspace(0.0, 1.0, max(points, 2)).tolist()
    known = measured or {}
    starts: dict[str, dict[str, dict[str, float]]] = {}  # init_ref -> set -> alpha-0 means
    for run in runs:
        if not run.init_ref:
            continue
        uri = run.uri or None
        try:
            base = load_generator(run.init_ref, registry=registry, tracking_uri=uri)
            tuned = load_generator(run.model_ref, registry=registry, tracking_uri=uri)
            check_same_architecture(base, tuned, run.init_ref, run.label)
        except HarnessError as exc:
            say(f"no interpolation curve for {run.label}: {exc}")
            continue
        upscale = Upscaler.from_generator(base)  # reads the weights set below at each call
        weights_base, weights_run = base.get_weights(), tuned.get_weights()
        start = starts.setdefault(run.init_ref, {})
        curve: Curve = {label: [] for label in images}
        for alpha in alphas:
            row = run.label if alpha == 1.0 else run.init_label if alpha == 0.0 else ""
            scored = start if alpha == 0.0 else {}
            done = {k: known.get(k, {}).get(row) or scored.get(k) for k in images}
            if not all(done.values()):
                base.set_weights(blend(weights_base, weights_run, alpha))
            for label, items in images.items():
                means = done[label] or evaluate(upscale, items, scale, extra=extra).means()
                if alpha == 0.0:
                    start[label] = dict(means)
                curve[label].append({"alpha": alpha, **means})
        out[run.label] = curve
    return out


def group_means(curves: Mapping[str, Curve], group_of: Mapping[str, str]) -> dict[str, Curve]:
    """Group label -> the mean curve of its runs' (``group_of``: run label -> group label), alpha
    by alpha: a replicated recipe's trade-off, drawn beside its mean point."""
    members: dict[str, list[Curve]] = {}
    for label, curve in curves.items():
        members.setdefault(group_of.get(label, label), []).append(curve)
    out: dict[str, Curve] = {}
    for group, found in members.items():
        out[group] = {}
        for label in found[0]:
            rows = list(zip(*(c[label] for c in found), strict=True))  # one tuple per alpha
            out[group][label] = [
                {k: float(np.mean([p[k] for p in row])) for k in row[0]} for row in rows
            ]
    return out


__all__ = ["Curve", "group_means", "interpolation_curves"]
