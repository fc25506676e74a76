"""The generators a run keeps besides its last one: the best by each validation metric.

GAN runs do not end at their best: the lowest-loss checkpoint is often not the best-looking one,
and PSNR and perceptual metrics peak at different steps. At every validation the run keeps
``best_psnr_y.keras`` (highest validation PSNR-Y) and, for each metric listed in
``[validation] metrics``, ``best_<metric>.keras`` in the direction the metric plugin declares.
``kept.json`` in the run directory records each one's step and value, so a resumed run keeps
comparing against the same bests. A model reference names them as
``runs/<name>@best_lpips``; at the end of a run MLflow logs each as a model of that name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import diskwrite
from harness.config import Experiment
from harness.deploy.models import load_generator
from harness.plugin_api.registry import Registry
from harness.rundir import RunDir, kept_name
from harness.training.validation import metric_directions


@dataclass(frozen=True)
class Kept:
    """One kept generator, loaded."""

    model: Any
    step: int
    value: float


def tracked_metrics(exp: Experiment, registry: Registry) -> dict[str, tuple[str, bool]]:
    """``best_<name>`` -> (the validation metric, higher is better) for this experiment; the
    direction is the one each metric plugin declares."""
    return {
        kept_name(metric): (metric, higher)
        for metric, higher in metric_directions(exp, registry).items()
    }


class KeptGenerators:
    """Keeps ``best_<metric>.keras`` files in a run directory, one per tracked metric."""

    def __init__(
        self,
        run_dir: Path,
        exp: Experiment,
        registry: Registry,
        enabled: bool = True,
        resumed: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.registry = registry
        self.tracked = tracked_metrics(exp, registry)
        self.path = RunDir(self.run_dir).kept_json
        self.state: dict[str, dict[str, Any]] = {}
        if resumed and self.path.is_file():  # a new run starts with no bests
            try:
                self.state = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.state = {}

    def update(self, model: Any, step: int, scores: Mapping[str, float]) -> list[str]:
        """Keep ``model`` for every metric it is the best by so far; returns their names."""
        if not self.enabled:
            return []
        improved = []
        for name, (metric, higher) in self.tracked.items():
            value = scores.get(metric)
            if value is None or not math.isfinite(value):
                continue
            best = self.state.get(name, {}).get("value")
            if best is not None and not (value > best if higher else value < best):
                continue
            path = RunDir(self.run_dir).kept(name)
            with diskwrite.atomic(path, f"the kept generator {name}") as tmp:
                model.save(tmp)
            self.state[name] = {"metric": metric, "value": float(value), "step": int(step)}
            improved.append(name)
        if improved:
            diskwrite.write_json(self.path, self.state)
        return improved

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: dict(v) for k, v in self.state.items()}

    def load_all(self) -> Iterator[tuple[str, Kept]]:
        """Each kept generator, loaded (for logging to MLflow)."""
        for name, info in self.state.items():
            path = RunDir(self.run_dir).kept(name)
            if path.is_file():
                model = load_generator(path, registry=self.registry)
                yield name, Kept(model, int(info["step"]), float(info["value"]))


__all__ = ["Kept", "KeptGenerators", "tracked_metrics"]
