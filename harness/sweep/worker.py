"""The optimising worker: one ``harness sweep`` process running a plan's trials in Optuna's own
loop, each trial trained in a child process.

``study.optimize`` (``--jobs`` threads) asks the sampler, records each running trial's
heartbeat while the worker lives, fails the stale trials of dead workers before asking (the
storage's :class:`~harness.sweep.storage.RetryLost` queues them again) and tells the study.
The objective trains the trial through :class:`~harness.sweep.objective.TrialRunner` and
returns its values, raises ``TrialPruned``, or fails the trial with its error (a crash counts
toward the study's size). :class:`~harness.sweep.storage.StudySize` stops the loop when no slot
of the study is free; a trial asked for a slot another worker took meanwhile is failed unrun as
surplus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from harness.sweep.objective import TrialInterrupted, TrialOutcome, TrialRunner, interrupts_stop
from harness.sweep.parent import ParentRun, best_trials
from harness.sweep.plan import Plan, SweepResult, distributions, grid_size, redact, suggest
from harness.sweep.storage import (
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    WORKER_ATTR,
    StudySize,
    counts,
    open_storage,
    open_study,
    surplus,
    worker_id,
)


class _Crashed(Exception):
    """The trial process failed; the trial is FAIL with ``error`` and counts."""


class _Surplus(Exception):
    """The trial was asked for a slot another worker took; it is failed unrun."""


def run(p: Plan, echo: Callable[[str], Any] = print) -> SweepResult:
    """Run trials of ``p``'s study until it holds ``p.trials`` done trials, no slot is free
    (other workers run the rest) or the timeout.

    ``echo`` prints progress lines. Interrupting (Ctrl-C, SIGTERM) stops the children, marks
    their trials interrupted (they run again) and re-raises.
    """
    storage = open_storage(
        p.storage_url,
        p.sweep,
        on_lost=lambda n: echo(f"trial {n}: its worker is gone; it will be run again"),
    )
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
    worker = _Worker(p, TrialRunner(p, parent, echo), target)
    size = StudySize(target)
    status = "FINISHED"
    try:
        free = size.free(study)
        if free > 0:
            verbosity = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(optuna.logging.ERROR)  # the sweep prints its own lines
            try:
                with interrupts_stop(worker.runner):
                    study.optimize(
                        worker.objective,
                        n_jobs=min(p.jobs, free),
                        timeout=p.sweep.timeout or None,
                        catch=(_Crashed, _Surplus),
                        callbacks=[worker.after_trial, size],
                    )
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
                if "finished" not in str(exc) and "Cannot tell" not in str(exc):
                    raise
                # its heartbeat was late and another worker failed it; it runs again there
                echo("a trial was already failed as lost by another worker; this worker ends")
            finally:
                optuna.logging.set_verbosity(verbosity)
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
        ran=worker.runner.ran,
        counts=counts(study),
        best=best_trials(study, p.objectives),
    )


class _Worker:
    """The objective and the after-trial callback of one worker's ``study.optimize``."""

    def __init__(self, p: Plan, runner: TrialRunner, target: int) -> None:
        self.p, self.runner, self.target, self.echo = p, runner, target, runner.echo
        self.me = worker_id()
        self.space = distributions(p.sweep)
        self.finished: dict[int, TrialOutcome] = {}

    def objective(self, trial: optuna.Trial) -> float | list[float]:
        """Run ``trial`` in a trial process and return its values (or prune / fail it)."""
        study = trial.study
        trial.set_user_attr(WORKER_ATTR, self.me)
        params = suggest(trial, self.space)
        if surplus(study, trial, self.target):
            trial.set_user_attr(INTERRUPTED_ATTR, "surplus: the study was full")
            study.stop()
            raise _Surplus("the study was full")
        try:
            outcome = self.runner.train(trial, params)
        except TrialInterrupted:
            study.stop()
            raise
        self.finished[trial.number] = outcome
        if outcome.state == "complete":
            return outcome.values[0] if len(outcome.values) == 1 else outcome.values
        if outcome.state == "pruned":
            raise optuna.TrialPruned(f"pruned at step {outcome.step}")
        trial.set_user_attr(ERROR_ATTR, outcome.error[:4000])
        raise _Crashed(outcome.error)

    def after_trial(self, study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        """Print the trial's line; tag and annotate its MLflow run (after Optuna told it)."""
        outcome = self.finished.pop(frozen.number, None)
        if outcome is None:
            return  # surplus or interrupted: never ran to its end
        state = frozen.state.name
        if state == "COMPLETE":
            shown = ", ".join(
                f"{o.metric}={v:.4f}" for o, v in zip(self.p.objectives, frozen.values, strict=True)
            )
            self.echo(f"trial {frozen.number} COMPLETE in {outcome.seconds:.0f} s: {shown}")
        elif state == "PRUNED":
            self.echo(
                f"trial {frozen.number} PRUNED at step {outcome.step} ({outcome.seconds:.0f} s)"
            )
        else:
            error = str(frozen.user_attrs.get(ERROR_ATTR) or "unknown error")
            self.echo(f"trial {frozen.number} FAIL: {error.splitlines()[0]}")
        self.runner.annotate(frozen.number, outcome, state)
