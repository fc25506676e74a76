"""The study in its Optuna RDB storage: opening it, and the trial bookkeeping around it.

Liveness is Optuna's: a worker's ``study.optimize`` records a heartbeat for each trial it runs,
and before asking for a trial it fails the trials whose heartbeat is stale
(``fail_stale_trials``); :class:`RetryLost`, the storage's stale-trial callback, queues such a
lost trial again with its parameters. :func:`counts` says which trials count toward the
study's size and :class:`StudySize` stops a worker when no slot is free.
"""

from __future__ import annotations

import os
import random
import socket
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from harness.errors import ConfigError
from harness.sweep.plan import Plan, SweepError, grace_period, make_pruner, make_sampler, redact
from harness.tracking import database_url

if TYPE_CHECKING:
    from harness.config import SweepConfig

WORKER_ATTR = "worker"  # host:pid of the worker that ran a trial
ERROR_ATTR = "error"  # a crashed trial's error; such a trial counts as done
INTERRUPTED_ATTR = "interrupted"  # a trial given up by its worker; it is run again
RETRY_ATTR = "retry_of"  # a queued retry: the number of the lost trial it runs again
RUN_ATTR = "mlflow_run_id"
RUN_URL_ATTR = "mlflow_run_url"  # the run's MLflow UI page, when the UI's address is known
PARENT_ATTR = "mlflow_parent_run_id"


def quiet_optuna() -> None:
    """Optuna's own log lines and experimental warnings off (the sweep prints its own)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def worker_id() -> str:
    """This process as the worker that ran a trial: ``host:pid`` (the user attribute
    ``worker``; informative only, liveness is the trial's heartbeat)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RetryLost:
    """The storage's stale-trial callback: a lost trial is queued again with its parameters
    (a WAITING trial the next ``ask`` takes) and ``on_lost`` hears its number.

    Optuna's ``RetryHeartbeatStaleTrialCallback`` would do, but it copies the user attributes,
    which name the worker that died; ``enqueue_trial`` starts clean.
    """

    def __init__(self, on_lost: Callable[[int], Any] | None = None) -> None:
        self.on_lost = on_lost

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        retry_lost(study, trial)
        if self.on_lost is not None:
            self.on_lost(trial.number)


def retry_lost(study: optuna.Study, trial: optuna.trial.BaseTrial) -> None:
    """Queue a lost or interrupted trial again with its parameters (user attribute
    ``retry_of`` = its number)."""
    study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})


def _begin_immediate(engine: sqlalchemy.engine.Engine) -> None:
    """SQLite: every transaction takes the write lock when it begins (SQLAlchemy's pysqlite
    recipe for serializable transactions), so two threads or workers never both turn one
    queued (WAITING) trial into their RUNNING one: Optuna's ``SELECT ... FOR UPDATE`` locks
    nothing on SQLite (optuna/optuna#4621: enqueued trials raced between workers)."""

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_storage(
    url: str,
    sweep: SweepConfig | None = None,
    on_lost: Callable[[int], Any] | None = None,
    *,
    stale: Callable[[optuna.Study, FrozenTrial], Any] | None = None,
) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for ``url``; with ``sweep``, heartbeats are on (a worker's view):
    ``study.optimize`` records them for its trials and fails stale ones, which :class:`RetryLost`
    queues again (``on_lost`` hears their numbers), or which ``stale`` (the storage's stale-trial
    callback instead) handles."""
    quiet_optuna()
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        raise ConfigError(
            f"sweep storage {redact(url)} is not a database URL. Use sqlite:///optuna.db (one "
            "machine) or postgresql://user@host/db (many workers)."
        )
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        # the driver's own transaction handling off: _begin_immediate begins them
        engine_kwargs["connect_args"] = {"timeout": 60, "isolation_level": None}
    else:
        engine_kwargs["pool_pre_ping"] = True
    beat: dict[str, Any] = {}
    if sweep is not None:
        beat = {
            "heartbeat_interval": sweep.heartbeat_interval,
            "grace_period": grace_period(sweep),
            "heartbeat_stale_trial_callback": stale or RetryLost(on_lost),
        }
    try:
        for attempt in range(3):
            try:
                storage = optuna.storages.RDBStorage(
                    database_url(url), engine_kwargs=engine_kwargs, **beat
                )
                break
            except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError):
                if attempt == 2:  # workers creating the tables at once may collide: retry
                    raise
                time.sleep(0.5 + random.random() * 2)
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
    if url.startswith("sqlite:"):
        _begin_immediate(storage.engine)
    return storage


def open_study(p: Plan, storage: Any, *, create: bool = True) -> optuna.Study:
    """The plan's study in ``storage``: created, or loaded when it exists (``load_if_exists``)."""
    directions = [o.direction for o in p.objectives]
    sampler, pruner = make_sampler(p.sweep), make_pruner(p.sweep, len(directions))
    try:
        if create:
            study = optuna.create_study(
                storage=storage,
                study_name=p.study_name,
                directions=directions,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
        else:
            study = optuna.load_study(
                study_name=p.study_name, storage=storage, sampler=sampler, pruner=pruner
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


def trial_of(study: optuna.Study, storage: Any, number: int) -> optuna.Trial:
    """The writable trial ``number`` of ``study`` in ``storage`` (a trial process's view).

    Optuna has no public route from a trial number to a trial one can write to (its trial id
    is private: optuna/optuna#6365, "Get trial by id"); the storage's public methods find it.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    return optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))


# --------------------------------------------------------------------------- trial bookkeeping


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials by what they mean for the sweep: done (count), running, waiting (queued again),
    retry (lost or interrupted: run again)."""
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0, "retry": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            out["complete"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
        elif t.state == TrialState.FAIL:
            out["failed" if ERROR_ATTR in t.user_attrs else "retry"] += 1
        elif t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
    out["done"] = out["complete"] + out["pruned"] + out["failed"]
    return out


def _counts_toward(t: FrozenTrial) -> bool:
    if t.state == TrialState.FAIL:
        return ERROR_ATTR in t.user_attrs
    return t.state != TrialState.WAITING


def surplus(study: optuna.Study, trial: Any, target: int) -> bool:
    """Whether ``trial`` lies past the study's size (two workers asked for the last slot)."""
    ahead = [
        t for t in study.get_trials(deepcopy=False) if t.number < trial.number and _counts_toward(t)
    ]
    return len(ahead) >= target


class StudySize:
    """An ``optimize`` callback that stops this worker when no slot of the study is free:
    ``target`` minus the done trials (COMPLETE, PRUNED, and FAIL with an ``error``) minus the
    running ones (this worker's and others').

    Optuna's ``MaxTrialsCallback`` counts by state, and a crashed trial (counts) and a lost
    one (run again) are both FAIL (optuna/optuna#5860 asked for a STALE state); without running
    trials it overshoots by one trial a worker (optuna/optuna#3518).
    """

    def __init__(self, target: int) -> None:
        self.target = target

    def free(self, study: optuna.Study) -> int:
        """Free slots, after failing (and queueing again) the trials lost meanwhile."""
        optuna.storages.fail_stale_trials(study)
        c = counts(study)
        return self.target - c["done"] - c["running"]

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.free(study) <= 0:
            study.stop()
