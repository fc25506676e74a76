"""Hyperparameter sweeps: an Optuna study whose trials are training runs (``harness sweep``).

How a sweep runs (one worker, i.e. one ``harness sweep`` process):

- The study lives in an Optuna RDB storage (``sqlite:///optuna.db`` by default; a
  ``postgresql://`` URL lets workers on many machines share one study).
- The worker asks the study for a trial (the sampler picks the parameters there), records a
  heartbeat for it and starts a child Python process (TensorFlow does not give memory back
  between runs in one process). The child loads the trial from the storage, applies its
  parameters as ``--set`` overrides (same keys, same type checks), trains with
  :func:`harness.training.loop.train`, reports each validation to the storage (``trial.report``)
  and
  stops when the pruner says so. It hands its objective values back in a small JSON file, and
  the worker tells the study. ``--jobs J`` keeps J children running.
- ``trials`` is the size of the study, across workers and restarts: COMPLETE, PRUNED and crashed
  (FAIL with a user attribute ``error``) trials count. A trial whose worker died (killed sweep,
  lost machine) is failed without ``error`` and so is run again: a worker fails it at once when
  its owner was a process on the same machine that is gone, otherwise when its heartbeat is
  older than the grace period (Optuna's ``fail_stale_trials``), so a live trial is never taken.
- MLflow: one parent run per study, one nested run per trial (tags ``optuna.study``,
  ``optuna.trial_number``; the trial's user attribute ``mlflow_run_id`` points back), the parent
  holding the best trial(s) and the study's plots.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import config
from harness.errors import ConfigError, HarnessError
from harness.signals import raise_interrupt

if TYPE_CHECKING:
    import optuna

    from harness.config import Experiment, SweepConfig

DEFAULT_STORAGE = "sqlite:///optuna.db"
DEFAULT_OBJECTIVE = {"metric": "val/psnr_y", "direction": "maximize", "reduce": "best"}
WORKER_ATTR = "worker"  # host:pid:start of the worker that owns a running trial
ERROR_ATTR = "error"  # a crashed trial's error; such a trial counts as done
INTERRUPTED_ATTR = "interrupted"  # a trial given up by its worker; it is run again
RUN_ATTR = "mlflow_run_id"
PARENT_ATTR = "mlflow_parent_run_id"
POLL_S = 0.5


class SweepError(HarnessError):
    """A sweep cannot start or go on (storage unreachable, study mismatch, ...)."""


# --------------------------------------------------------------------------- the plan


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


def _default_direction(metric: str) -> str:
    """``val/<name>``: the direction the metric plugin ``<name>`` declares (maximize else)."""
    from harness.evaluation.protocol import PROTOCOL_MEASURES, metric_protocol
    from harness.plugin_api.registry import build_registry

    name = metric.removeprefix("val/")
    if name in PROTOCOL_MEASURES:
        return "maximize"
    registry = build_registry()
    if name not in registry.names("metric"):
        return "maximize"
    protocol = metric_protocol(registry.factory("metric", name))
    return "maximize" if protocol.higher_is_better else "minimize"


def plan(
    path: str | Path,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    *,
    trials: int | None = None,
    jobs: int | None = None,
    storage: str | None = None,
    study: str | None = None,
) -> Plan:
    """Load and check a sweep file; command-line values win over ``[sweep]``."""
    if not isinstance(overrides, Mapping):
        overrides = config.parse_overrides(overrides)
    overrides = dict(overrides)
    exp = config.load(path, overrides)
    sweep = config.check_sweep(exp)
    objectives = tuple(
        Objective(
            metric=o["metric"],
            direction=o.get("direction", _default_direction(o["metric"])),
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


# --------------------------------------------------------------------------- optuna pieces


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def open_storage(url: str, sweep: SweepConfig | None = None) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for ``url``; with ``sweep``, heartbeats are on (a worker's view)."""
    import optuna
    import sqlalchemy.exc

    _quiet_optuna()
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ConfigError(
            f"sweep storage {redact(url)} is not a database URL. Use sqlite:///optuna.db (one "
            "machine) or postgresql://user@host/db (many workers)."
        )
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    beat: dict[str, Any] = {}
    if sweep is not None:
        beat = {
            "heartbeat_interval": sweep.heartbeat_interval,
            "grace_period": grace_period(sweep),
        }
    from harness.tracking import database_url  # mlflow is imported only when a sweep runs

    try:
        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(
                    database_url(url), engine_kwargs=engine_kwargs, **beat
                )
            except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError):
                if attempt == 2:  # workers creating the tables at once may collide: retry
                    raise
                time.sleep(0.5 + random.random() * 2)
        raise AssertionError("unreachable")
    except ImportError as exc:
        raise SweepError(
            f"sweep storage {redact(url)} needs a database driver that is not installed "
            f'({exc.__cause__ or exc}): pip install "srgan-harness[postgres]" '
            "(psycopg2-binary) for PostgreSQL."
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise SweepError(
            f"cannot open the sweep storage {redact(url)}: {exc}. Check --storage or "
            "[sweep].storage, and that the database server is running."
        ) from None


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


def distributions(sweep: SweepConfig) -> dict[str, optuna.distributions.BaseDistribution]:
    """``[sweep.params]`` as Optuna distributions, keyed by the dotted keys."""
    from optuna import distributions as d

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


def make_sampler(sweep: SweepConfig) -> optuna.samplers.BaseSampler:
    """The configured sampler (``sampler_options`` are its keyword arguments)."""
    import optuna

    options = dict(sweep.sampler_options)
    try:
        if sweep.sampler == "random":
            return optuna.samplers.RandomSampler(**options)
        if sweep.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(**options)
        if sweep.sampler == "grid":
            return _GridSampler(grid(sweep), **options)
        return optuna.samplers.TPESampler(**options)
    except TypeError as exc:
        raise ConfigError(f"[sweep] sampler_options for {sweep.sampler!r}: {exc}.") from None


def make_pruner(sweep: SweepConfig, n_objectives: int = 1) -> optuna.pruners.BasePruner:
    """The configured pruner; none for several objectives (Optuna cannot prune those)."""
    import optuna

    options = dict(sweep.pruner_options)
    if sweep.pruner == "none" or n_objectives > 1:
        return optuna.pruners.NopPruner()
    try:
        if sweep.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(**options)
        return optuna.pruners.MedianPruner(**options)
    except TypeError as exc:
        raise ConfigError(f"[sweep] pruner_options for {sweep.pruner!r}: {exc}.") from None


def _grid_sampler_class() -> type:
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        """Optuna's grid sampler without ``study.stop()`` (which only works in ``optimize``).

        A worker stops by counting trials, so the grid's size caps the study instead.
        """

        def after_trial(self, study, trial, state, values):  # noqa: ANN001, D102
            return None

    return GridSampler


def _GridSampler(search_space: dict[str, list[Any]], **options: Any):  # noqa: N802
    return _grid_sampler_class()(search_space, **options)


def open_study(p: Plan, storage: Any, *, create: bool = True) -> optuna.Study:
    """The plan's study in ``storage``: created, or loaded when it exists (``load_if_exists``)."""
    import optuna

    directions = [o.direction for o in p.objectives]
    sampler, pruner = make_sampler(p.sweep), make_pruner(p.sweep, len(directions))
    try:
        if not create:
            return optuna.load_study(
                study_name=p.study_name, storage=storage, sampler=sampler, pruner=pruner
            )
        study = optuna.create_study(
            storage=storage,
            study_name=p.study_name,
            sampler=sampler,
            pruner=pruner,
            directions=directions,
            load_if_exists=True,
        )
    except KeyError:
        raise SweepError(
            f'there is no study "{p.study_name}" in {redact(p.storage_url)}. Run '
            f"`harness sweep {p.path}` first, or name the storage with --storage."
        ) from None
    if [d.name.lower() for d in study.directions] != directions:
        raise SweepError(
            f'study "{p.study_name}" in {redact(p.storage_url)} optimises '
            f"{[d.name.lower() for d in study.directions]}, but {p.path} asks for {directions}. "
            "Name another study ([sweep] study = ...) or another storage."
        )
    return study


# --------------------------------------------------------------------------- trial bookkeeping


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` (Linux), so a reused pid is not taken for its owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def _owner_alive(owner: str) -> bool | None:
    """Whether the worker ``owner`` still runs; ``None`` when it is on another machine."""
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or _process_start(pid) in ("", start)


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by what they mean for the sweep: done (count), running, retry (run again)."""
    from optuna.trial import TrialState

    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "retry": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            out["complete"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
        elif t.state == TrialState.FAIL:
            out["failed" if ERROR_ATTR in t.user_attrs else "retry"] += 1
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            out["running"] += 1
    out["done"] = out["complete"] + out["pruned"] + out["failed"]
    return out


def _counts_toward(t: optuna.trial.FrozenTrial) -> bool:
    from optuna.trial import TrialState

    if t.state == TrialState.FAIL:
        return ERROR_ATTR in t.user_attrs
    return True


def fail_lost_trials(study: optuna.Study, sweep: SweepConfig) -> list[int]:
    """Fail running trials whose worker is gone, so they are run again; their numbers.

    Same machine: the owner process is checked directly. Elsewhere: the heartbeat
    (``fail_stale_trials``). A trial never heartbeaten (its worker died right after asking)
    is failed once it is older than the grace period.
    """
    import datetime as dt

    import optuna
    from optuna.trial import TrialState

    lost = []
    grace = grace_period(sweep)
    now = dt.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(WORKER_ATTR, "")
        alive = _owner_alive(owner) if owner else None
        old = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace
        if alive is False or (not owner and old):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study._storage.set_trial_user_attr(
                    t._trial_id, INTERRUPTED_ATTR, f"worker {owner or '?'} is gone"
                )
                if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    lost.append(t.number)
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    return sorted([*lost, *(after - before)])


# --------------------------------------------------------------------------- MLflow (parent)


class ParentRun:
    """The sweep's MLflow parent run: one per study, shared by every worker."""

    def __init__(self, p: Plan, study: optuna.Study) -> None:
        from mlflow.tracking import MlflowClient

        from harness import tracking

        self.uri = tracking.tracking_uri(p.exp)
        self.experiment = tracking.experiment_name(p.exp)
        self.client = MlflowClient(tracking_uri=self.uri)
        try:
            self.run_id = self._get_or_create(p, study)
            self.client.update_run(self.run_id, status="RUNNING")
        except Exception as exc:
            raise SweepError(
                f"MLflow tracking store {self.uri} failed: {exc}. Check [tracking].uri or "
                "MLFLOW_TRACKING_URI."
            ) from exc

    def _exists(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception:
            return False

    def _get_or_create(self, p: Plan, study: optuna.Study) -> str:
        known = study.user_attrs.get(PARENT_ATTR)
        if self._exists(known):
            return known
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            experiment_id = self.client.create_experiment(self.experiment)
        else:
            if found.lifecycle_stage != "active":
                self.client.restore_experiment(found.experiment_id)
            experiment_id = found.experiment_id
        run = self.client.create_run(
            experiment_id,
            run_name=f"sweep {p.study_name}",
            tags={
                "optuna.study": p.study_name,
                "optuna.storage": redact(p.storage_url),
                "harness.sweep": "parent",
                "harness.source": p.exp.source,
            },
        )
        run_id = run.info.run_id
        study.set_user_attr(PARENT_ATTR, run_id)
        # Two workers starting together may both create one: the last writer's run is kept.
        time.sleep(1.0)
        kept = study._storage.get_study_user_attrs(study._study_id).get(PARENT_ATTR)
        if kept != run_id and self._exists(kept):
            self.client.delete_run(run_id)
            return kept
        self._log_setup(p, run_id)
        return run_id

    def _log_setup(self, p: Plan, run_id: str) -> None:
        from mlflow.entities import Param

        s = p.sweep
        params = {
            "sweep.study": p.study_name,
            "sweep.sampler": s.sampler,
            "sweep.pruner": s.pruner if len(p.objectives) == 1 else "none",
            "sweep.objectives": json.dumps([o.__dict__ for o in p.objectives]),
        }
        for key, spec in s.params.items():
            params[f"sweep.params.{key}"] = json.dumps(spec)[:6000]
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "experiment.toml"
            path.write_text(p.exp.to_toml(), encoding="utf-8")
            self.client.log_artifact(run_id, str(path))

    def summarise(self, p: Plan, study: optuna.Study) -> None:
        """Best trial(s), counts and plots onto the parent run (each worker, at its end)."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        c = counts(study)
        metrics = [Metric(f"sweep/trials_{k}", c[k], now, 0) for k in c]
        tags: list[RunTag] = []
        best = best_trials(study, p.objectives)
        if best:
            top = best[0]
            tags += [
                RunTag("best.trial_number", str(top.number)),
                RunTag("best.mlflow_run_id", str(top.user_attrs.get(RUN_ATTR, ""))),
            ]
            tags += [RunTag(f"best.params.{k}", str(v)[:5000]) for k, v in top.params.items()]
            if len(p.objectives) == 1:
                metrics.append(Metric(f"best/{p.objectives[0].metric}", top.values[0], now, 0))
        self.client.log_batch(self.run_id, metrics=metrics, tags=tags)
        with tempfile.TemporaryDirectory() as tmp:
            report = [
                {
                    "number": t.number,
                    "values": dict(zip([o.metric for o in p.objectives], t.values, strict=True)),
                    "params": t.params,
                    RUN_ATTR: t.user_attrs.get(RUN_ATTR),
                }
                for t in best
            ]
            (Path(tmp) / "best_trials.json").write_text(json.dumps(report, indent=2))
            self.client.log_artifact(self.run_id, str(Path(tmp) / "best_trials.json"))
            plots = Path(tmp) / "plots"
            if save_plots(study, p.objectives, plots):
                self.client.log_artifacts(self.run_id, str(plots), "plots")

    def end(self, status: str = "FINISHED") -> None:
        with contextlib.suppress(Exception):
            self.client.set_terminated(self.run_id, status=status)


def save_plots(study: optuna.Study, objectives: Sequence[Objective], folder: Path) -> list[Path]:
    """The study's plots as PNG files (matplotlib backend; plots that cannot be drawn yet, say
    parameter importances with one finished trial, are skipped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as vis

    _quiet_optuna()
    folder.mkdir(parents=True, exist_ok=True)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    names = [o.metric for o in objectives]
    jobs: list[tuple[str, Any]] = []
    if len(objectives) == 1:
        jobs += [
            ("optimization_history", lambda: vis.plot_optimization_history(study)),
            ("param_importances", lambda: vis.plot_param_importances(study)),
            ("intermediate_values", lambda: vis.plot_intermediate_values(study)),
        ]
    else:
        for i, name in enumerate(names):
            slug = name.replace("/", "_")
            jobs += [
                (
                    f"optimization_history_{slug}",
                    lambda i=i, name=name: vis.plot_optimization_history(
                        study, target=lambda t: t.values[i], target_name=name
                    ),
                ),
                (
                    f"param_importances_{slug}",
                    lambda i=i, name=name: vis.plot_param_importances(
                        study, target=lambda t: t.values[i], target_name=name
                    ),
                ),
            ]
        if len(objectives) in (2, 3):
            jobs.append(("pareto_front", lambda: vis.plot_pareto_front(study, target_names=names)))
    saved = []
    for name, draw in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = draw()
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=100)
            saved.append(path)
        except Exception:  # noqa: S112 - a plot that cannot be drawn yet is left out
            continue
        finally:
            plt.close("all")
    optuna.logging.set_verbosity(verbosity)
    return saved


def best_trials(study: optuna.Study, objectives: Sequence[Objective]) -> list[Any]:
    """The best trial first (one objective: sorted by value), or the Pareto front."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return []
    if len(objectives) > 1:
        return sorted(study.best_trials, key=lambda t: t.number)
    sign = -1.0 if objectives[0].direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * t.values[0], t.number))


# --------------------------------------------------------------------------- the worker


@dataclass
class _Child:
    trial: Any  # optuna.Trial
    process: subprocess.Popen
    result: Path
    log: Path
    log_file: Any
    started: float


@dataclass
class SweepResult:
    """What one worker did, and the study's state when it stopped."""

    study_name: str
    storage: str
    parent_run_id: str
    ran: list[int]
    counts: dict[str, int]
    best: list[Any]


def run(p: Plan, echo: Any = print) -> SweepResult:
    """Run trials of ``p``'s study until it holds ``p.trials`` done trials (or the timeout).

    ``echo`` prints progress lines. Interrupting (Ctrl-C, SIGTERM) stops the children, marks
    their trials interrupted (they run again next time) and re-raises.
    """
    from optuna.trial import TrialState

    storage = open_storage(p.storage_url, p.sweep)
    study = open_study(p, storage)
    parent = ParentRun(p, study)
    me = _worker_id()
    space = distributions(p.sweep)
    target = p.trials
    if p.sweep.sampler == "grid":
        size = math.prod(len(v) for v in grid(p.sweep).values())
        if size < target:
            echo(f"grid of {size} points: the study stops at {size} trials, not {target}")
            target = size
    p.trial_root.mkdir(parents=True, exist_ok=True)
    echo(
        f'sweep "{p.study_name}" in {redact(p.storage_url)}: {target} trials, {p.jobs} at once; '
        f"MLflow {parent.uri} (experiment {parent.experiment}, parent run {parent.run_id})"
    )
    children: dict[int, _Child] = {}
    ran: list[int] = []
    start = time.monotonic()
    last_beat = 0.0
    last_check = -math.inf
    status = "FINISHED"
    stop_signal = _TermToInterrupt()
    try:
        while True:
            now = time.monotonic()
            if now - last_beat >= max(1.0, p.sweep.heartbeat_interval / 2):
                for child in children.values():
                    storage.record_heartbeat(child.trial._trial_id)
                last_beat = now
            for number in [n for n, c in children.items() if c.process.poll() is not None]:
                _finish(p, study, parent, children.pop(number), echo)
                last_check = -math.inf
            if now - last_check >= 2.0:
                for number in fail_lost_trials(study, p.sweep):
                    echo(f"trial {number}: its worker is gone; it will be run again")
                c = counts(study)
                last_check = now
                timed_out = p.sweep.timeout and now - start >= p.sweep.timeout
                free = target - c["done"] - c["running"]
                if len(children) < p.jobs and free > 0 and not timed_out:
                    trial = study.ask(space)
                    storage.record_heartbeat(trial._trial_id)
                    trial.set_user_attr(WORKER_ATTR, me)
                    if _surplus(study, trial, target):
                        trial.set_user_attr(INTERRUPTED_ATTR, "surplus: the study was full")
                        study.tell(trial, state=TrialState.FAIL)
                    else:
                        children[trial.number] = _spawn(p, trial, parent.run_id)
                        ran.append(trial.number)
                        echo(f"trial {trial.number} started: {_params_text(trial.params)}")
                    last_check = -math.inf
                    continue
                if not children and (c["done"] >= target or timed_out or c["running"] == 0):
                    break
            time.sleep(POLL_S)
    except BaseException:
        status = "KILLED"
        for child in children.values():
            _stop(child)
            with contextlib.suppress(Exception):
                child.trial.set_user_attr(INTERRUPTED_ATTR, "the sweep was interrupted")
                study.tell(child.trial, state=TrialState.FAIL)
        raise
    finally:
        stop_signal.restore()
        if status == "FINISHED":
            with contextlib.suppress(Exception):
                parent.summarise(p, study)
        parent.end(status)
    return SweepResult(
        study_name=p.study_name,
        storage=p.storage_url,
        parent_run_id=parent.run_id,
        ran=ran,
        counts=counts(study),
        best=best_trials(study, p.objectives),
    )


class _TermToInterrupt:
    """SIGTERM raises KeyboardInterrupt in the worker, so its children are stopped cleanly."""

    def __init__(self) -> None:
        self.previous = None
        with contextlib.suppress(ValueError):  # not the main thread
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    @staticmethod
    def _handle(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _surplus(study: optuna.Study, trial: Any, target: int) -> bool:
    """Whether ``trial`` lies past the study's size (two workers asked for the last slot)."""
    ahead = [
        t for t in study.get_trials(deepcopy=False) if t.number < trial.number and _counts_toward(t)
    ]
    return len(ahead) >= target


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _spawn(p: Plan, trial: Any, parent_run_id: str) -> _Child:
    root = p.trial_root
    job = {
        "path": str(Path(p.path).resolve()),
        "overrides": p.overrides,
        "storage": p.storage_url,
        "study": p.study_name,
        "trial_id": trial._trial_id,
        "trial_number": trial.number,
        "parent_run_id": parent_run_id,
        "parent_pid": os.getpid(),
        "runs_dir": str(root.resolve()),
        "objectives": [o.__dict__ for o in p.objectives],
        "result": str((root / f"trial_{trial.number:04d}.result.json").resolve()),
    }
    job_path = root / f"trial_{trial.number:04d}.job.json"
    job_path.write_text(json.dumps(job, indent=2), encoding="utf-8")
    Path(job["result"]).unlink(missing_ok=True)
    log = root / f"trial_{trial.number:04d}.log"
    log_file = log.open("w", encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from harness.sweep.study import main; sys.exit(main())",
            str(job_path.resolve()),
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    return _Child(trial, process, Path(job["result"]), log, log_file, time.monotonic())


def _stop(child: _Child) -> None:
    if child.process.poll() is None:
        child.process.terminate()
        try:
            child.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
    child.log_file.close()


def _finish(p: Plan, study: optuna.Study, parent: ParentRun, child: _Child, echo: Any) -> None:
    """Tell the study what a finished child did; tag and annotate its MLflow run."""
    import optuna
    from optuna.trial import TrialState

    child.log_file.close()
    trial, seconds = child.trial, time.monotonic() - child.started
    try:
        result = json.loads(child.result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tail = child.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        result = {
            "state": "fail",
            "error": f"the trial process exited with code {child.process.returncode} and no "
            f"result; the end of {child.log}:\n" + "\n".join(tail),
        }
    run_id = result.get("run_id") or ""
    state = result.get("state")
    if run_id:
        with contextlib.suppress(Exception):
            trial.set_user_attr(RUN_ATTR, run_id)
    try:
        if state == "complete":
            study.tell(trial, result["values"])
            shown = ", ".join(
                f"{o.metric}={v:.4f}" for o, v in zip(p.objectives, result["values"], strict=True)
            )
            echo(f"trial {trial.number} COMPLETE in {seconds:.0f} s: {shown}")
        elif state == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
            echo(f"trial {trial.number} PRUNED at step {result.get('step')} ({seconds:.0f} s)")
        else:
            error = str(result.get("error") or "unknown error")
            trial.set_user_attr(ERROR_ATTR, error[:4000])
            study.tell(trial, state=TrialState.FAIL)
            echo(f"trial {trial.number} FAIL: {error.splitlines()[0]}")
    except optuna.exceptions.UpdateFinishedTrialError:
        # Its heartbeat was late and another worker failed it; it is run again there.
        echo(f"trial {trial.number}: already failed as lost by another worker; result dropped")
    if run_id:
        from mlflow.entities import Param

        with contextlib.suppress(Exception):
            state_name = study._storage.get_trial(trial._trial_id).state.name
            parent.client.set_tag(run_id, "optuna.state", state_name)
            # the swept values under their own dotted keys (the run's parameters hold the
            # lists they sit in, e.g. losses.perpix.w1.values)
            params = [Param(k, str(v)) for k, v in trial.params.items()]
            parent.client.log_batch(run_id, params=params)
            parent.client.log_artifact(run_id, str(child.log), "logs")


# --------------------------------------------------------------------------- the trial process


class _Reporter:
    """The ``on_validation`` callback of a trial: history, ``trial.report``, pruning."""

    def __init__(self, trial: Any, objectives: Sequence[Objective], parent_pid: int) -> None:
        self.trial = trial
        self.objectives = objectives
        self.parent_pid = parent_pid
        self.history: list[tuple[int, dict[str, float]]] = []
        self.run_id = ""
        self.pruned_at: int | None = None

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        from harness.training.loop import StopTraining

        if os.getppid() != self.parent_pid:  # the worker died: stop rather than run orphaned
            raise StopTraining("the sweep worker is gone")
        self.history.append((int(step), {k: float(v) for k, v in metrics.items()}))
        with contextlib.suppress(Exception):
            import mlflow

            active = mlflow.active_run()
            self.run_id = self.run_id or (active.info.run_id if active else "")
        if len(self.objectives) > 1:
            return
        value = metrics.get(self.objectives[0].metric)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), int(step))
        if self.trial.should_prune():
            self.pruned_at = int(step)
            raise StopTraining(f"pruned by the sweep's pruner at step {step}")


def _watch_parent(parent_pid: int) -> None:
    """Stop this trial process when its worker dies (SIGTERM first, so MLflow ends the run)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30.0)
    os._exit(1)


def run_trial(job: Mapping[str, Any]) -> dict[str, Any]:
    """Train one trial (in the trial process); returns the result the worker tells the study."""
    import shutil

    import optuna

    from harness import tracking

    _quiet_optuna()
    base = config.load(job["path"], job["overrides"])
    objectives = [Objective(**o) for o in job["objectives"]]
    storage = open_storage(job["storage"])
    study = optuna.load_study(
        study_name=job["study"],
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),
        pruner=make_pruner(base.sweep, len(objectives)) if base.sweep else None,
    )
    trial = optuna.Trial(study, int(job["trial_id"]))
    number = int(job["trial_number"])
    name = f"trial_{number:04d}"
    overrides = {
        **job["overrides"],
        **trial.params,
        "experiment.runs_dir": job["runs_dir"],
        "experiment.name": name,
        "tracking.uri": tracking.tracking_uri(base),
        "tracking.experiment": tracking.experiment_name(base),
    }
    print(f"trial {number}: {_params_text(trial.params)}", flush=True)
    try:
        exp = config.load(job["path"], overrides)
    except HarnessError as exc:
        return {"state": "fail", "error": f"the trial's parameters make a bad experiment: {exc}"}
    run_dir = exp.run_dir
    if run_dir.exists():  # left by an earlier study of the same name: never resume it
        shutil.rmtree(run_dir)
    from harness.plugin_api.registry import build_registry
    from harness.training.loop import StopTraining, train

    reporter = _Reporter(trial, objectives, int(job["parent_pid"]))
    tags = {"optuna.study": job["study"], "optuna.trial_number": str(number)}
    result = None
    try:
        result = train(
            exp,
            registry=build_registry(),
            callbacks=[reporter],
            parent_run_id=job["parent_run_id"],
            run_name=f"{job['study']} trial {number}",
            tags=tags,
        )
    except StopTraining:
        pass
    except Exception as exc:
        traceback.print_exc()
        return {
            "state": "fail",
            "error": f"{type(exc).__name__}: {exc}",
            "run_id": _run_id(result, reporter, run_dir),
        }
    run_id = _run_id(result, reporter, run_dir)
    if reporter.pruned_at is not None:
        return {"state": "pruned", "step": reporter.pruned_at, "run_id": run_id}
    history = reporter.history or _history_of(result)
    try:
        values = [o.value(history) for o in objectives]
    except SweepError as exc:
        return {"state": "fail", "error": str(exc), "run_id": run_id}
    return {"state": "complete", "values": values, "run_id": run_id}


def _run_id(result: Any, reporter: _Reporter, run_dir: Path) -> str:
    if result is not None and getattr(result, "run_id", None):
        return str(result.run_id)
    marker = run_dir / "mlflow_run_id"
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip()
    return reporter.run_id


def _history_of(result: Any) -> list[tuple[int, dict[str, float]]]:
    history = getattr(result, "history", None) or []
    out = []
    for item in history:
        if isinstance(item, Mapping):
            step = int(item.get("step", 0))
            out.append((step, {k: float(v) for k, v in item.items() if k.startswith("val/")}))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """The trial process: ``python -c 'from harness.sweep.study import main; main()' JOB.json``."""
    args = list(sys.argv[1:] if argv is None else argv)
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    signal.signal(signal.SIGTERM, raise_interrupt)
    threading.Thread(target=_watch_parent, args=(int(job["parent_pid"]),), daemon=True).start()
    try:
        result = run_trial(job)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # anything: the worker records it as the trial's error
        traceback.print_exc()
        result = {"state": "fail", "error": f"{type(exc).__name__}: {exc}"}
    tmp = Path(job["result"]).with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(job["result"])
    return 0


# --------------------------------------------------------------------------- show


def show(p: Plan, top: int = 10) -> str:
    """The best trials as a text table, read from the storage alone (no MLflow)."""
    if p.storage_url.startswith("sqlite:///"):
        path = Path(p.storage_url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise SweepError(
                f"there is no sweep storage {path}: run `harness sweep {p.path}` first, or name "
                "the storage with --storage."
            )
    storage = open_storage(p.storage_url)
    study = open_study(p, storage, create=False)
    c = counts(study)
    best = best_trials(study, p.objectives)
    head = (
        f'study "{p.study_name}" in {redact(p.storage_url)}: {c["complete"]} complete, '
        f"{c['pruned']} pruned, {c['failed']} failed, {c['running']} running"
        + (f", {c['retry']} interrupted" if c["retry"] else "")
    )
    if not best:
        return head + "\nno complete trial yet"
    title = "Pareto front" if len(p.objectives) > 1 else f"best {min(top, len(best))}"
    rows = best[:top] if len(p.objectives) == 1 else best
    keys = sorted({k for t in rows for k in t.params})
    header = [
        "rank",
        "trial",
        *(f"{o.metric} ({'max' if o.direction == 'maximize' else 'min'})" for o in p.objectives),
        *keys,
        "mlflow run",
    ]
    table = [header]
    for i, t in enumerate(rows, 1):
        table.append(
            [
                str(i),
                str(t.number),
                *(f"{v:.4f}" for v in t.values),
                *(_cell(t.params.get(k)) for k in keys),
                str(t.user_attrs.get(RUN_ATTR, "")),
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in table]
    return "\n".join([head, f"{title}:", *(line.rstrip() for line in lines)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
