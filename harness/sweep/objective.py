"""One trial of either sweep mode: trained in its own process, its result read back, its
MLflow run linked and its sample grid uploaded (the trial is still RUNNING meanwhile).

Both modes hold the Optuna trial in the worker and train it in a child process
(:mod:`harness.sweep.trial`): an optimising sweep inside ``study.optimize``, whose heartbeat
thread keeps the trial alive while the worker lives; a preferential one through
``PreferentialStudy.ask``. The child reads its standard input until the worker closes it, so
it stops when the worker dies. A SIGINT or SIGTERM to the worker stops the children
(:meth:`TrialRunner.interrupt`) and their trials are given up and queued again.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from harness import diskwrite, tracking
from harness.signals import handling
from harness.sweep.artifacts import upload_grid
from harness.sweep.parent import ParentRun, save_note
from harness.sweep.plan import Plan, params_text
from harness.sweep.storage import INTERRUPTED_ATTR, RUN_ATTR, RUN_URL_ATTR, retry_lost
from harness.sweep.trial import COMMAND, dir_name

STOP_WAIT_S = 20  # after SIGTERM, how long a trial process may take to end its MLflow run


class TrialInterrupted(Exception):
    """The sweep was interrupted (Ctrl-C, SIGTERM); the trial is failed and queued again."""


@dataclass
class TrialOutcome:
    """What a trial process handed back: ``state`` is complete, pruned or fail."""

    state: str
    values: list[float] = field(default_factory=list)
    error: str = ""
    step: int | None = None
    run_id: str = ""
    log: Path | None = None
    seconds: float = 0.0


class TrialRunner:
    """Trains trials of one plan, each in its own process; :meth:`interrupt` stops them all.

    ``retry``: an interrupted trial is queued again with its parameters (an optimising sweep;
    a preferential one fails it).
    """

    def __init__(self, p: Plan, parent: ParentRun, echo: Any, *, retry: bool = True) -> None:
        self.p, self.parent, self.echo, self.retry = p, parent, echo, retry
        self.stopping = threading.Event()
        self.ran: list[int] = []
        self._children: set[subprocess.Popen] = set()
        self._lock = threading.RLock()  # the signal handler may stop children mid-spawn

    def interrupt(self) -> None:
        """Stop every trial process now (SIGTERM: each ends its MLflow run as KILLED)."""
        self.stopping.set()
        with self._lock:
            children = list(self._children)
        for process in children:
            with contextlib.suppress(OSError):
                process.terminate()

    def train(self, trial: optuna.Trial, params: dict[str, Any]) -> TrialOutcome:
        """Train ``trial`` in its process; link it to its MLflow run and upload its sample grid.

        Raises :class:`TrialInterrupted` (the trial marked ``interrupted`` and queued again)
        when the sweep is interrupted.
        """
        if self.stopping.is_set():
            self._give_up(trial)
        process, result, log = self._spawn(trial)
        started = time.monotonic()
        self.ran.append(trial.number)
        self.echo(f"trial {trial.number} started: {params_text(params)}")
        try:
            process.wait()
        except BaseException:  # Ctrl-C in this thread (one job): stop the children, give up
            self.interrupt()
            self._give_up(trial, reraise=True)
            raise
        finally:
            if process.poll() is None:
                _stop(process)
            self._forget(process)
            process.stdin.close()
        interrupted = process.returncode in (130, 143, -signal.SIGINT, -signal.SIGTERM)
        if self.stopping.is_set() or (interrupted and not result.is_file()):
            self._give_up(trial)
        outcome = _read_result(process, result, log)
        outcome.seconds = time.monotonic() - started
        if outcome.run_id:
            trial.set_user_attr(RUN_ATTR, outcome.run_id)
            trial.set_user_attr(RUN_URL_ATTR, self.parent.run_url(outcome.run_id))
            save_note(trial, self.parent.note(outcome.run_id))
        try:
            upload_grid(self.p, trial, self.p.trial_root / dir_name(trial.number), outcome.run_id)
        except Exception as exc:  # noqa: BLE001 - the trial's result matters more than its picture
            self.echo(f"trial {trial.number}: could not upload its sample grid: {exc}")
        return outcome

    def annotate(self, number: int, outcome: TrialOutcome, label: str) -> None:
        """Tag the trial's MLflow run with its Optuna state and attach its log."""
        if not outcome.run_id:
            return
        files = {outcome.log: "logs"} if outcome.log else {}
        try:  # the trial logged its sampled values as its parameters itself
            tracking.annotate_run(
                self.p.exp, outcome.run_id, tags={"optuna.state": label}, files=files
            )
        except Exception as exc:  # noqa: BLE001 - the trial is told; its run lacks a note
            self.echo(f"trial {number}: could not annotate MLflow run {outcome.run_id}: {exc}")

    def _give_up(self, trial: optuna.Trial, *, reraise: bool = False) -> None:
        """Mark ``trial`` interrupted (not counted) and queue it again with its parameters
        (its trial process was stopped, by this sweep or from outside)."""
        trial.set_user_attr(INTERRUPTED_ATTR, "the sweep was interrupted")
        if self.retry:
            retry_lost(trial.study, trial)
        if not reraise:
            raise TrialInterrupted("the sweep was interrupted")

    def _forget(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._children.discard(process)

    def _spawn(self, trial: optuna.Trial) -> tuple[subprocess.Popen, Path, Path]:
        number = trial.number
        root = self.p.trial_root
        result = (root / f"trial_{number:04d}.result.json").resolve()
        job = {
            "path": str(Path(self.p.path).resolve()),
            "overrides": self.p.overrides,
            "storage": self.p.storage_url,
            "study": self.p.study_name,
            "trial_number": number,
            "parent_run_id": self.parent.run_id,
            "runs_dir": str(root.resolve()),
            "objectives": [o.__dict__ for o in self.p.objectives],
            "result": str(result),
        }
        job_path = root / f"trial_{number:04d}.job.json"
        diskwrite.write_json(job_path, job)
        result.unlink(missing_ok=True)
        log = root / f"trial_{number:04d}.log"
        # TF_CPP_MIN_LOG_LEVEL=2 (what the CLI sets unless --verbose) makes the trial hide
        # TensorFlow's start-up lines as the CLI does
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self._lock, log.open("w", encoding="utf-8") as log_file:
            if self.stopping.is_set():  # interrupted while this trial was being set up
                self._give_up(trial)
            process = subprocess.Popen(
                [sys.executable, "-c", COMMAND, str(job_path.resolve())],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,  # never written: its end of file says the worker is gone
                env=env,
            )
            self._children.add(process)
        return process, result, log


@contextlib.contextmanager
def interrupts_stop(runner: TrialRunner) -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM stop the runner's trial processes and raise
    ``KeyboardInterrupt`` in the main thread (where ``study.optimize`` or its thread pool
    waits); outside the main thread, nothing changes."""

    def handler(signum: int, frame: Any) -> None:
        runner.interrupt()
        raise KeyboardInterrupt(f"signal {signum}")

    with handling(handler):
        yield


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (the trial ends its MLflow run as KILLED), then SIGKILL after a while."""
    with contextlib.suppress(OSError):
        process.terminate()
    try:
        process.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_result(process: subprocess.Popen, result: Path, log: Path) -> TrialOutcome:
    """The trial process's result file, or a failure naming its exit code and log tail."""
    try:
        data = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        return TrialOutcome(
            "fail",
            error=f"the trial process exited with code {process.returncode} and no result; "
            f"the end of {log}:\n" + "\n".join(tail),
            log=log,
        )
    return TrialOutcome(
        state=str(data.get("state") or "fail"),
        # JSON has no NaN: the trial writes a NaN objective value as null
        values=[math.nan if v is None else float(v) for v in data.get("values") or []],
        error=str(data.get("error") or ("" if data.get("state") != "fail" else "unknown error")),
        step=data.get("step"),
        run_id=str(data.get("run_id") or ""),
        log=log,
    )
