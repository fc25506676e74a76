"""What a report is made of: a reported run (:class:`RunInfo`), the written report
(:class:`Report`), and the error and tag the report's modules share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

FINAL = "final"
"""The model kind of a run's final generator (``RUN@best_lpips`` names a kept one)."""
REPORT_TAG = "harness.report"
"""The tag of a report's own MLflow run (such runs are never reported themselves)."""


class ReportError(HarnessError):
    """A RUN cannot be resolved, has no model, or the report cannot be written or logged."""


@dataclass
class RunInfo:
    """One reported run: where it lives, what it was and which model is evaluated."""

    ref: str
    label: str
    kind: str = FINAL
    run_id: str = ""
    run_dir: Path | None = None
    uri: str = ""
    mlflow_experiment: str = ""
    status: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    model_ref: str = ""
    model_step: int | None = None
    steps: int | None = None
    wall_s: float | None = None
    init_ref: str = ""
    init_run: str = ""
    init_label: str = ""
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    bicubic_val: float | None = None
    group: str = ""  # the experiment whose replicate this run is ("": the run is its own group)
    seed: str = ""  # the replicate's seed ("" when unknown)
    metric_losses: list[str] = field(default_factory=list)  # losses named like a metric
    trained_on: list[str] = field(default_factory=list)  # the report's metrics it trained on

    @property
    def group_label(self) -> str:
        """The label the report's statistics and grouped tables use for this run's group."""
        return self.group or self.label

    @property
    def scale(self) -> int | None:
        """``data.scale`` as the run recorded it; ``None`` for a run directory holding only a
        model (its model says: :func:`harness.evaluation.report.report_scale`)."""
        value = self.params.get("data.scale")
        return int(value) if value else None

    def _table(self, prefix: str) -> str:
        skip = {"name", "init", "weight"}
        return ", ".join(
            f"{k[len(prefix) :]}={v}"
            for k, v in self.params.items()
            if k.startswith(prefix) and k[len(prefix) :] not in skip and "." not in k[len(prefix) :]
        )

    @property
    def generator(self) -> str:
        params = self._table("generator.")
        return f"{self.params.get('generator.name', '?')} ({params})" if params else "?"

    @property
    def losses(self) -> str:
        keys = dict.fromkeys(
            k.split(".")[1] for k in self.params if k.startswith("losses.") and k.count(".") >= 2
        )
        out = []
        for key in keys:
            weight = self.params.get(f"losses.{key}.weight", "scheduled")
            plugin = self.params.get(f"losses.{key}.name", key)
            out.append(f"{key}{'' if plugin == key else f' ({plugin})'} x {weight}")
        return ", ".join(out) or "?"

    @property
    def adversarial(self) -> str:
        name = self.params.get("adversarial.name")
        if not name:
            return "none"
        return f"{name} x {self.params.get('adversarial.weight', 'scheduled')}"

    def facts(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ref": self.ref,
            "model_kind": self.kind,
            "model": self.model_ref,
            "model_step": self.model_step,
            "mlflow_run_id": self.run_id,
            "mlflow_experiment": self.mlflow_experiment,
            "tracking_uri": self.uri,
            "run_dir": str(self.run_dir) if self.run_dir else "",
            "status": self.status,
            "description": self.params.get("experiment.description", ""),
            "generator": self.generator,
            "losses": self.losses,
            "adversarial": self.adversarial,
            "init": self.init_ref,
            "init_run": self.init_run,
            "init_label": self.init_label,
            "steps": self.steps,
            "wall_s": self.wall_s,
            "group": self.group_label,
            "seed": self.seed,
            "metric_losses": self.metric_losses,
            "trained_on": self.trained_on,
        }


@dataclass
class Report:
    """What :func:`write_report` wrote: the folder, its files and every number."""

    out: Path
    markdown: Path
    html: Path
    json: Path
    runs: list[RunInfo]
    tables: dict[str, dict[str, dict[str, float]]]
    results: dict[str, dict[str, Any]]
    figures: list[Path]
    measures: tuple[str, ...]
    protocols: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str = ""
    scores: list[dict[str, Any]] = field(default_factory=list)  # scores.csv's rows
    comparisons: list[Any] = field(default_factory=list)  # harness.evaluation.stats.Comparison
    baselines: list[str] = field(default_factory=list)  # what every run was compared with
    grouped: Any = None  # harness.evaluation.replicates.GroupedTables when runs have replicates
    interpolation: dict[str, Any] = field(default_factory=dict)  # run -> set -> alpha points


__all__ = ["FINAL", "REPORT_TAG", "Report", "ReportError", "RunInfo"]
