"""The study in its Optuna RDB storage: opening it, and the trial bookkeeping around it.

Who owns a running trial (user attribute ``worker`` = host:pid:start), which trials count
toward the study's size (:func:`counts`), and which were lost and are run again
(:func:`fail_lost_trials`): a trial whose worker is gone is failed without ``error`` and queued
again with the same parameters (:func:`retry_lost`, Optuna's stale-trial callback).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import random
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness.sweep.plan import Plan, SweepError, grace_period, make_pruner, make_sampler, redact

if TYPE_CHECKING:
    import optuna

    from harness.config import SweepConfig

WORKER_ATTR = "worker"  # host:pid:start of the worker that owns a running trial
ERROR_ATTR = "error"  # a crashed trial's error; such a trial counts as done
INTERRUPTED_ATTR = "interrupted"  # a trial given up by its worker; it is run again
RETRY_ATTR = "retry_of"  # a queued retry: the number of the lost trial it runs again
RUN_ATTR = "mlflow_run_id"
RUN_URL_ATTR = "mlflow_run_url"  # the run's MLflow UI page, when the UI's address is known
PARENT_ATTR = "mlflow_parent_run_id"


def quiet_optuna() -> None:
    """Optuna's own log lines and experimental warnings off (the sweep prints its own)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def open_storage(url: str, sweep: SweepConfig | None = None) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage for ``url``; with ``sweep``, heartbeats are on (a worker's view):
    ``study.optimize`` records them for its trials and fails stale ones, which
    :func:`retry_lost` queues again."""
    import optuna
    import sqlalchemy.exc

    from harness.tracking import database_url  # mlflow is imported only when a sweep runs

    quiet_optuna()
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
            "heartbeat_stale_trial_callback": retry_lost,
        }
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


@functools.cache
def _study_class() -> type:
    import optuna

    class SweepStudy(optuna.Study):
        """An Optuna study that keeps the storage it was opened with (``storage``).

        Optuna has no public route from a trial number to a trial one can write to (its trial
        id is private: optuna/optuna#6365, "Get trial by id"); the sweep looks it up through
        the storage's public methods instead (:func:`trial_of`).
        """

        def __init__(self, study_name: str, storage: Any, **kwargs: Any) -> None:
            super().__init__(study_name=study_name, storage=storage, **kwargs)
            self.storage = storage
            self.ask_lock = threading.Lock()

        def ask(self, fixed_distributions: Any = None) -> optuna.Trial:
            """``Study.ask``, one thread at a time: on SQLite (no row locks) two ``--jobs``
            threads could otherwise both take the same queued (WAITING) trial."""
            with self.ask_lock:
                return super().ask(fixed_distributions)

    return SweepStudy


def open_study(p: Plan, storage: Any, *, create: bool = True) -> optuna.Study:
    """The plan's study in ``storage``: created, or loaded when it exists (``load_if_exists``)."""
    import optuna

    directions = [o.direction for o in p.objectives]
    sampler, pruner = make_sampler(p.sweep), make_pruner(p.sweep, len(directions))
    try:
        if create:
            optuna.create_study(
                storage=storage,
                study_name=p.study_name,
                directions=directions,
                load_if_exists=True,
            )
        study = _study_class()(p.study_name, storage, sampler=sampler, pruner=pruner)
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


def load_study(url: str, name: str, pruner: Any = None) -> optuna.Study:
    """An existing study (a trial process's view: no heartbeats, no sampling)."""
    import optuna

    return _study_class()(
        name, open_storage(url), sampler=optuna.samplers.RandomSampler(), pruner=pruner
    )


def trial_of(study: optuna.Study, number: int) -> optuna.Trial:
    """The writable trial ``number`` of a study from :func:`open_study` or :func:`load_study`
    (see optuna/optuna#6365: Optuna has no public trial lookup by number)."""
    import optuna

    storage = study.storage
    study_id = storage.get_study_id_from_name(study.study_name)
    return optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))


# --------------------------------------------------------------------------- trial bookkeeping


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` (Linux), so a reused pid is not taken for its owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def worker_id() -> str:
    """This process as a trial owner: ``host:pid:start``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def owner_alive(owner: str) -> bool | None:
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
    """Trials by what they mean for the sweep: done (count), running, waiting (queued again),
    retry (lost: run again)."""
    from optuna.trial import TrialState

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


def _counts_toward(t: optuna.trial.FrozenTrial) -> bool:
    from optuna.trial import TrialState

    if t.state == TrialState.FAIL:
        return ERROR_ATTR in t.user_attrs
    return t.state != TrialState.WAITING


def surplus(study: optuna.Study, trial: Any, target: int) -> bool:
    """Whether ``trial`` lies past the study's size (two workers asked for the last slot)."""
    ahead = [
        t for t in study.get_trials(deepcopy=False) if t.number < trial.number and _counts_toward(t)
    ]
    return len(ahead) >= target


def retry_lost(study: optuna.Study, trial: optuna.trial.BaseTrial) -> None:
    """Queue a lost or interrupted trial again with its parameters (a WAITING trial the next
    ``ask`` takes).

    Optuna's ``RetryHeartbeatStaleTrialCallback`` would do, but it copies the user attributes,
    which here name the dead owner and the interruption; ``enqueue_trial`` starts clean.
    """
    study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})


def fail_lost_trials(study: optuna.Study, sweep: SweepConfig) -> list[int]:
    """Fail running trials whose worker is gone, so they are run again; their numbers.

    Same machine: the owner process is checked directly. Elsewhere: the heartbeat (Optuna's
    ``fail_stale_trials``, whose callback queues the trial again). A trial never heartbeaten
    (its worker died right after asking) is failed once it is older than the grace period.
    """
    import optuna
    from optuna.trial import TrialState

    lost = []
    grace = grace_period(sweep)
    now = dt.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(WORKER_ATTR, "")
        alive = owner_alive(owner) if owner else None
        old = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > grace
        if alive is False or (not owner and old):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                trial_of(study, t.number).set_user_attr(
                    INTERRUPTED_ATTR, f"worker {owner or '?'} is gone"
                )
                failed = study.tell(t.number, state=TrialState.FAIL)
                lost.append(t.number)
                retry_lost(study, failed)
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    optuna.storages.fail_stale_trials(study)
    after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    return sorted([*lost, *(after - before)])
