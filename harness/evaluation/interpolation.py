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
) -> dict[str, Curve]:
    """Run label -> its interpolation curve, for each run with a loadable base of its own
    architecture (the others are skipped with a message)."""
    out: dict[str, Curve] = {}
    alphas = np.linspace(0.0, 1.0, max(points, 2)).tolist()
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
        curve: Curve = {label: [] for label in images}
        for alpha in alphas:
            base.set_weights(blend(weights_base, weights_run, alpha))
            for label, items in images.items():
                means = evaluate(upscale, items, scale, extra=extra).means()
                curve[label].append({"alpha": alpha, **means})
        out[run.label] = curve
    return out


__all__ = ["Curve", "interpolation_curves"]
