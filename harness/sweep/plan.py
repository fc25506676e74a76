"""What a sweep is: its objectives, the checked plan, and the Optuna search space.

A :class:`Plan` is everything a worker needs (the experiment file, its overrides, the checked
``[sweep]`` table, the study's name and storage, the objectives). The search space is turned
into Optuna distributions, a grid, a sampler and a pruner here; nothing in this module touches
a storage.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna import distributions as d

from harness import config
from harness.errors import ConfigError, HarnessError
from harness.plugin_api.metrics import PROTOCOL_MEASURES, metric_protocol

if TYPE_CHECKING:
    from harness.config import Experiment, SweepConfig
    from harness.plugin_api.registry import Registry

DEFAULT_STORAGE = "sqlite:///optuna.db"
DEFAULT_OBJECTIVE = {"metric": "val/psnr_y", "direction": "maximize", "reduce": "best"}


class SweepError(HarnessError):
    """A sweep cannot start or go on (storage unreachable, study mismatch, ...)."""


@dataclass(frozen=True)
class Objective:
    """One objective: a validation metric, its direction, and how a run's curve is reduced."""

    metric: str
    direction: str = "maximize"
    reduce: str = "best"  # "best": best validation of the run; "final": the last one

    def value(self, history: Sequence[tuple[int, Mapping[str, float]]]) -> float:
        """The objective value of a run from its validation history ``[(step, metrics)]``."""
        values = [float(m[self.metric]) for _, m in history if self.metric in m]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            seen = sorted({k for _, m in history for k in m})
            raise SweepError(
                f'the run reported no finite "{self.metric}" (validation metrics seen: '
                f"{', '.join(seen) or 'none'}). Check [validation] and the objective's metric."
            )
        if self.reduce == "final":
            return values[-1]
        return max(values) if self.direction == "maximize" else min(values)


@dataclass
class SweepResult:
    """What one worker did (the trials it ran), and the study's state when it stopped."""

    study_name: str
    storage: str
    parent_run_id: str
    ran: list[int]
    counts: dict[str, int]
    best: list[Any]


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs: the experiment file, its overrides and the checked sweep."""

    path: str
    overrides: dict[str, Any]
    exp: Experiment
    sweep: SweepConfig
    study_name: str
    storage_url: str
    trials: int
    jobs: int
    objectives: tuple[Objective, ...] = field(default=())

    @property
    def trial_root(self) -> Path:
        """Where trial run directories and logs go: ``<run_dir>/<study>/``."""
        return self.exp.run_dir / self.study_name


def _default_direction(metric: str, registry: Registry) -> str:
    """``val/<name>``: the direction the metric plugin ``<name>`` declares (maximize else)."""
    name = metric.removeprefix("val/")
    if name in PROTOCOL_MEASURES or name not in registry.names("metric"):
        return "maximize"
    protocol = metric_protocol(registry.factory("metric", name))
    return "maximize" if protocol.higher_is_better else "minimize"


def plan(
    path: str | Path,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    *,
    registry: Registry,
    trials: int | None = None,
    jobs: int | None = None,
    storage: str | None = None,
    study: str | None = None,
) -> Plan:
    """Load and check a sweep file; command-line values win over ``[sweep]``."""
    if not isinstance(overrides, Mapping):
        overrides = config.parse_overrides(overrides)
    overrides = dict(overrides)
    exp = config.load(path, overrides, registry=registry)
    sweep = config.check_sweep(exp)
    objectives = tuple(
        Objective(
            metric=o["metric"],
            direction=o.get("direction") or _default_direction(o["metric"], registry),
            reduce=o.get("reduce", "best"),
        )
        for o in (sweep.objectives or (DEFAULT_OBJECTIVE,))
    )
    if sweep.sampler == "grid":
        grid(sweep)  # every parameter must have a finite set of values
    n = sweep.trials if trials is None else trials
    j = sweep.jobs if jobs is None else jobs
    if n < 1 or j < 1:
        raise ConfigError(f"--trials and --jobs must be at least 1, not {n} and {j}.")
    return Plan(
        path=str(path),
        overrides=overrides,
        exp=exp,
        sweep=sweep,
        study_name=study or sweep.study or exp.experiment.name,
        storage_url=storage or sweep.storage or DEFAULT_STORAGE,
        trials=n,
        jobs=j,
        objectives=objectives,
    )


def grace_period(sweep: SweepConfig) -> int:
    """Seconds without a heartbeat after which a running trial counts as lost."""
    return sweep.grace_period or 3 * sweep.heartbeat_interval


def redact(url: str) -> str:
    """``url`` without its password, for messages and tags."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"


def params_text(params: Mapping[str, Any]) -> str:
    """A trial's parameters on one line (floats to 4 significant digits)."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


# --------------------------------------------------------------------------- the search space


def distributions(sweep: SweepConfig) -> dict[str, d.BaseDistribution]:
    """``[sweep.params]`` as Optuna distributions, keyed by the dotted keys."""
    out: dict[str, d.BaseDistribution] = {}
    for key, spec in sweep.params.items():
        kind = spec["type"]
        if kind == "categorical":
            out[key] = d.CategoricalDistribution(list(spec["choices"]))
        elif kind == "int":
            out[key] = d.IntDistribution(
                int(spec["low"]),
                int(spec["high"]),
                log=bool(spec.get("log", False)),
                step=int(spec.get("step", 1)),
            )
        else:
            out[key] = d.FloatDistribution(
                float(spec["low"]),
                float(spec["high"]),
                log=bool(spec.get("log", False)),
                step=float(spec["step"]) if spec.get("step") is not None else None,
            )
    return out


def suggest(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, Any]:
    """Sample every parameter of ``space`` (from :func:`distributions`) with ``trial.suggest_*``
    (the route ``study.optimize`` gives an objective); returns ``trial.params``."""
    for key, dist in space.items():
        if isinstance(dist, d.CategoricalDistribution):
            trial.suggest_categorical(key, list(dist.choices))
        elif isinstance(dist, d.IntDistribution):
            trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            trial.suggest_float(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return dict(trial.params)


def grid(sweep: SweepConfig) -> dict[str, list[Any]]:
    """The grid sampler's search space: every choice, or every ``step`` from low to high."""
    out: dict[str, list[Any]] = {}
    for key, spec in sweep.params.items():
        if spec["type"] == "categorical":
            out[key] = list(spec["choices"])
            continue
        step = spec.get("step")
        if step is None:
            if spec["type"] != "int":
                raise ConfigError(
                    f'[sweep.params."{key}"]: the grid sampler needs a "step" (or choices) for '
                    "a float parameter."
                )
            step = 1
        n = int(math.floor((spec["high"] - spec["low"]) / step + 1e-9)) + 1
        values = [round(spec["low"] + i * step, 12) for i in range(n)]
        out[key] = [int(v) for v in values] if spec["type"] == "int" else values
    return out


def grid_size(sweep: SweepConfig) -> int:
    """How many points the grid of ``sweep`` has."""
    return math.prod(len(v) for v in grid(sweep).values())


def make_sampler(sweep: SweepConfig) -> optuna.samplers.BaseSampler:
    """The configured sampler (``sampler_options`` are its keyword arguments)."""
    options = dict(sweep.sampler_options)
    try:
        if sweep.sampler == "random":
            return optuna.samplers.RandomSampler(**options)
        if sweep.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(**options)
        if sweep.sampler == "grid":
            return optuna.samplers.GridSampler(grid(sweep), **options)
        return optuna.samplers.TPESampler(**options)
    except TypeError as exc:
        raise ConfigError(f"[sweep] sampler_options for {sweep.sampler!r}: {exc}.") from None


def make_pruner(sweep: SweepConfig, n_objectives: int = 1) -> optuna.pruners.BasePruner:
    """The configured pruner; none for several objectives (Optuna cannot prune those) and for
    a preferential sweep (people judge its trials)."""
    options = dict(sweep.pruner_options)
    if sweep.pruner == "none" or n_objectives > 1 or sweep.mode == "preferential":
        return optuna.pruners.NopPruner()
    try:
        if sweep.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(**options)
        if sweep.pruner == "wilcoxon":
            with warnings.catch_warnings():  # asked for by name: Optuna's "experimental" note
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.pruners.WilcoxonPruner(**options)
        return optuna.pruners.MedianPruner(**options)
    except TypeError as exc:
        raise ConfigError(f"[sweep] pruner_options for {sweep.pruner!r}: {exc}.") from None
