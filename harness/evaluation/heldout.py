"""Held-out judging: which of a report's metrics a run trained on.

A run trains on a metric when one of its ``[losses.*]`` (weight not 0) is the content-loss
plugin of the metric's name with the same settings on the parameters both share (an ``lpips``
loss with ``net = "vgg"`` trains on LPIPS-VGG, not on the report's LPIPS-Alex). Such a column
says little about that run: the report marks it, and names the metrics that stay held out (for a
run trained on LPIPS-VGG, the default pair is DISTS and LPIPS-Alex).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.evaluation.records import RunInfo

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry


def _defaults(factory: Any) -> dict[str, str]:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: no settings to compare
        return {}
    return {p.name: str(p.default) for p in parameters if p.default is not inspect.Parameter.empty}


def metric_losses(
    run: RunInfo, metrics: Sequence[str], registry: Registry
) -> list[tuple[str, dict[str, str]]]:
    """``(plugin, settings)`` of each of the run's losses named like one of ``metrics``, the
    settings being the loss's values of the parameters the metric also takes."""
    keys = dict.fromkeys(k.split(".")[1] for k in run.params if k.startswith("losses."))
    losses = set(registry.names("content_loss"))
    out = []
    for key in keys:
        plugin = run.params.get(f"losses.{key}.name", key)
        weight = run.params.get(f"losses.{key}.weight", "scheduled")
        if plugin not in metrics or weight in ("0", "0.0"):
            continue
        loss = _defaults(registry.factory("content_loss", plugin)) if plugin in losses else {}
        metric = _defaults(registry.factory("metric", plugin))
        settings = {
            k: run.params.get(f"losses.{key}.{k}", loss.get(k, "")).strip('"')
            for k in metric
            if k in loss or f"losses.{key}.{k}" in run.params
        }
        out.append((plugin, settings))
    return out


def describe(plugin: str, settings: Mapping[str, str]) -> str:
    """``lpips (net=vgg)``."""
    text = ", ".join(f"{k}={v}" for k, v in settings.items())
    return f"{plugin} ({text})" if text else plugin


def trained_on(run: RunInfo, metrics: Sequence[str], registry: Registry) -> list[str]:
    """The report's metrics (built with their defaults) that ``run`` trained on."""
    out = []
    for plugin, settings in metric_losses(run, metrics, registry):
        metric = _defaults(registry.factory("metric", plugin))
        if all(metric.get(k) == v for k, v in settings.items()) and plugin not in out:
            out.append(plugin)
    return out


def mark_runs(runs: Sequence[RunInfo], metrics: Mapping[str, Any], registry: Registry) -> None:
    """Fill each run's ``metric_losses`` and ``trained_on`` for the report's ``metrics``."""
    names = list(metrics)
    for run in runs:
        run.metric_losses = [describe(*m) for m in metric_losses(run, names, registry)]
        run.trained_on = trained_on(run, names, registry)


__all__ = ["describe", "mark_runs", "metric_losses", "trained_on"]
