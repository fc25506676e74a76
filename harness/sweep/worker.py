"""The worker: one ``harness sweep`` process running a plan's trials, each in a child process.

Trials run in Optuna's own loop (``study.optimize``, ``--jobs`` threads), so Optuna asks the
sampler, records each running trial's heartbeat, fails stale trials of dead workers before
asking (their callback queues them again) and tells the study. The objective starts the trial
process (:mod:`harness.sweep.trial`), waits for it and returns its values, raises
``TrialPruned``, or fails the trial with its error (a crash counts toward the study's size).

``trials`` is the size of the study across workers and restarts; Optuna's
``MaxTrialsCallback`` cannot count it (it counts by state, and a crashed trial and a lost one
are both FAIL), so each ``optimize`` call gets the free slots as ``n_trials`` and a trial asked
for a slot another worker took meanwhile is failed unrun as surplus.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.signals import term_as_interrupt
from harness.sweep.artifacts import upload_grid
from harness.sweep.parent import ParentRun, best_trials
from harness.sweep.plan import Plan, distributions, grid_size, params_text, redact, suggest
from harness.sweep.storage import (
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    RUN_ATTR,
    RUN_URL_ATTR,
    WORKER_ATTR,
    counts,
    fail_lost_trials,
    open_storage,
    open_study,
    retry_lost,
    surplus,
    worker_id,
)
from harness.sweep.trial import COMMAND, dir_name

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

POLL_S = 0.5


@dataclass
class SweepResult:
    """What one worker did, and the study's state when it stopped."""

    study_name: str
    storage: str
    parent_run_id: str
    ran: list[int]
    counts: dict[str, int]
    best: list[Any]


class _Crashed(Exception):
    """The trial process failed; the trial is FAIL with ``error`` and counts."""


class _Surplus(Exception):
    """The trial was asked for a slot another worker took; it is failed unrun."""


class _Interrupted(Exception):
    """The sweep was interrupted (Ctrl-C, SIGTERM); the trial is failed and queued again."""


@dataclass
class _Child:
    process: subprocess.Popen
    result: Path
    log: Path
    started: float = field(default_factory=time.monotonic)


def run(p: Plan, echo: Callable[[str], Any] = print) -> SweepResult:
    """Run trials of ``p``'s study until it holds ``p.trials`` done trials (or the timeout).

    ``echo`` prints progress lines. Interrupting (Ctrl-C, SIGTERM) stops the children, marks
    their trials interrupted (they run again) and re-raises.
    """
    if p.sweep.mode == "preferential":
        from harness.sweep.preferential import run as run_preferential

        return run_preferential(p, echo)
    storage = open_storage(p.storage_url, p.sweep)
    study = open_study(p, storage)
    study.set_metric_names([o.metric for o in p.objectives])  # optuna-dashboard's axis names
    parent = ParentRun(p, study)
    parent.link(p, study)
    target = p.trials
    if p.sweep.sampler == "grid" and grid_size(p.sweep) < target:
        target = grid_size(p.sweep)
        echo(f"grid of {target} points: the study stops at {target} trials, not {p.trials}")
    p.trial_root.mkdir(parents=True, exist_ok=True)
    echo(
        f'sweep "{p.study_name}" in {redact(p.storage_url)}: {target} trials, {p.jobs} at once; '
        f"MLflow {parent.uri} (experiment {parent.experiment}, parent run {parent.run_id})"
    )
    worker = _Worker(p, parent, target, echo)
    start = time.monotonic()
    status = "FINISHED"
    try:
        with term_as_interrupt():
            while True:
                for number in fail_lost_trials(study, p.sweep):
                    echo(f"trial {number}: its worker is gone; it will be run again")
                c = counts(study)
                elapsed = time.monotonic() - start
                timed_out = bool(p.sweep.timeout) and elapsed >= p.sweep.timeout
                free = target - c["done"] - c["running"]
                if free > 0 and not timed_out:
                    left = p.sweep.timeout - elapsed if p.sweep.timeout else None
                    worker.optimize(study, free, left)
                    continue
                if c["done"] >= target or timed_out or c["running"] == 0:
                    break
                time.sleep(POLL_S)  # other workers' trials run: take over any that are lost
    except BaseException:
        status = "KILLED"
        raise
    finally:
        if status == "FINISHED":
            try:
                parent.summarise(p, study)
            except Exception as exc:  # noqa: BLE001 - the trials are done; say what is missing
                echo(f"could not summarise the study on the MLflow parent run: {exc}")
        parent.end(status)
    return SweepResult(
        study_name=p.study_name,
        storage=p.storage_url,
        parent_run_id=parent.run_id,
        ran=worker.ran,
        counts=counts(study),
        best=best_trials(study, p.objectives),
    )


class _Worker:
    """The objective and the after-trial callback of one worker's ``study.optimize`` calls."""

    def __init__(self, p: Plan, parent: ParentRun, target: int, echo: Any) -> None:
        self.p, self.parent, self.target, self.echo = p, parent, target, echo
        self.me = worker_id()
        self.space = distributions(p.sweep)
        self.stop = threading.Event()  # set by the main thread when the sweep is interrupted
        self.ran: list[int] = []
        self.finished: dict[int, tuple[dict[str, Any], _Child]] = {}

    def optimize(self, study: optuna.Study, n_trials: int, timeout: float | None) -> None:
        """``study.optimize`` for up to ``n_trials`` trials, in a thread: the main thread keeps
        signals, and on Ctrl-C or SIGTERM tells the trials to stop their processes."""
        import optuna

        errors: list[BaseException] = []

        def loop() -> None:
            verbosity = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep prints its own lines
            try:
                study.optimize(
                    self.objective,
                    n_trials=n_trials,
                    n_jobs=min(self.p.jobs, n_trials),
                    timeout=timeout,
                    catch=(_Crashed, _Surplus),
                    callbacks=[self.after_trial],
                )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                errors.append(exc)
            finally:
                optuna.logging.set_verbosity(verbosity)

        thread = threading.Thread(target=loop, name="sweep-optimize", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(POLL_S)
        except BaseException:
            self.stop.set()
            thread.join()
            raise
        for exc in errors:
            if isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
                # Its heartbeat was late and another worker failed it; it is run again there.
                self.echo("a trial was already failed as lost by another worker; result dropped")
            else:
                raise exc

    def objective(self, trial: optuna.Trial) -> float | list[float]:
        """Run ``trial`` in a trial process and return its values (or prune / fail it)."""
        import optuna

        study = trial.study
        trial.set_user_attr(WORKER_ATTR, self.me)
        params = suggest(trial, self.space)
        if self.stop.is_set():
            self._give_up(trial, "the sweep was interrupted")
        if surplus(study, trial, self.target):
            trial.set_user_attr(INTERRUPTED_ATTR, "surplus: the study was full")
            study.stop()
            raise _Surplus("the study was full")
        result = self.train(trial, params)
        if result.get("state") == "complete":
            values = [float(v) for v in result["values"]]
            return values[0] if len(values) == 1 else values
        if result.get("state") == "pruned":
            raise optuna.TrialPruned(f"pruned at step {result.get('step')}")
        error = str(result.get("error") or "unknown error")
        trial.set_user_attr(ERROR_ATTR, error[:4000])
        raise _Crashed(error)

    def train(self, trial: optuna.Trial, params: dict[str, Any]) -> dict[str, Any]:
        """Train ``trial`` in its process; link it to its MLflow run and upload its sample
        grid (the trial still runs: Optuna takes attributes and artifacts until it is told)."""
        child = self._spawn(trial.number)
        self.ran.append(trial.number)
        self.echo(f"trial {trial.number} started: {params_text(params)}")
        try:
            while child.process.poll() is None:
                if self.stop.wait(POLL_S):
                    _stop(child.process)
                    self._give_up(trial, "the sweep was interrupted")
        finally:
            if child.process.poll() is None:
                _stop(child.process)
        result = _read_result(child)
        run_id = result.get("run_id") or ""
        if run_id:
            trial.set_user_attr(RUN_ATTR, run_id)
            if self.parent.run_url(run_id):
                trial.set_user_attr(RUN_URL_ATTR, self.parent.run_url(run_id))
        try:
            upload_grid(self.p, trial, self.p.trial_root / dir_name(trial.number), run_id)
        except Exception as exc:  # noqa: BLE001 - the trial's result matters more than its picture
            self.echo(f"trial {trial.number}: could not upload its sample grid: {exc}")
        self.finished[trial.number] = (result, child)
        return result

    def _give_up(self, trial: optuna.Trial, why: str) -> None:
        """Fail ``trial`` as interrupted (not counted) and queue it again; stop asking."""
        trial.set_user_attr(INTERRUPTED_ATTR, why)
        retry_lost(trial.study, trial)
        trial.study.stop()
        raise _Interrupted(why)

    def after_trial(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        """Print the trial's line; tag and annotate its MLflow run (after Optuna told it)."""
        from harness import tracking

        if frozen.number not in self.finished:
            return  # surplus or interrupted: never ran
        result, child = self.finished.pop(frozen.number)
        seconds = time.monotonic() - child.started
        state = frozen.state.name
        if state == "COMPLETE":
            shown = ", ".join(
                f"{o.metric}={v:.4f}" for o, v in zip(self.p.objectives, frozen.values, strict=True)
            )
            self.echo(f"trial {frozen.number} COMPLETE in {seconds:.0f} s: {shown}")
        elif state == "PRUNED":
            step = result.get("step")
            self.echo(f"trial {frozen.number} PRUNED at step {step} ({seconds:.0f} s)")
        else:
            error = str(frozen.user_attrs.get(ERROR_ATTR) or "unknown error")
            self.echo(f"trial {frozen.number} FAIL: {error.splitlines()[0]}")
        run_id = result.get("run_id")
        if run_id:
            try:  # the trial logged its sampled values as its parameters itself
                tracking.annotate_run(
                    self.p.exp, run_id, tags={"optuna.state": state}, files={child.log: "logs"}
                )
            except Exception as exc:  # noqa: BLE001 - the trial is told; its run lacks a note
                self.echo(f"trial {frozen.number}: could not annotate MLflow run {run_id}: {exc}")

    def _spawn(self, number: int) -> _Child:
        root = self.p.trial_root
        result = (root / f"trial_{number:04d}.result.json").resolve()
        job = {
            "path": str(Path(self.p.path).resolve()),
            "overrides": self.p.overrides,
            "storage": self.p.storage_url,
            "study": self.p.study_name,
            "trial_number": number,
            "parent_run_id": self.parent.run_id,
            "parent_pid": os.getpid(),
            "runs_dir": str(root.resolve()),
            "objectives": [o.__dict__ for o in self.p.objectives],
            "result": str(result),
        }
        job_path = root / f"trial_{number:04d}.job.json"
        job_path.write_text(json.dumps(job, indent=2), encoding="utf-8")
        result.unlink(missing_ok=True)
        log = root / f"trial_{number:04d}.log"
        # TF_CPP_MIN_LOG_LEVEL=2 (what the CLI sets unless --verbose) makes the trial hide
        # TensorFlow's start-up lines as the CLI does
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log.open("w", encoding="utf-8") as log_file:  # the child keeps its own handle
            process = subprocess.Popen(
                [sys.executable, "-c", COMMAND, str(job_path.resolve())],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        return _Child(process, result, log)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (the trial ends its MLflow run as KILLED), then SIGKILL after 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_result(child: _Child) -> dict[str, Any]:
    """The trial process's result file, or a failure naming its exit code and log tail."""
    try:
        return json.loads(child.result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tail = child.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        return {
            "state": "fail",
            "error": f"the trial process exited with code {child.process.returncode} and no "
            f"result; the end of {child.log}:\n" + "\n".join(tail),
        }
