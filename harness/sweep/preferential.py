"""The preferential sweep (``[sweep] mode = "preferential"``, ``harness sweep --preferential``):
people rank the trials' sample grids in optuna-dashboard, and the sampler learns from the ranks.

optuna-dashboard's human-in-the-loop optimisation (``optuna_dashboard.preferential``): the study
is a preferential study whose feedback page shows each trial's ``sample_grid`` artifact. A trial
trains in its own process as in an optimising sweep, uploads its grid and then stays RUNNING
until someone ranks it; the dashboard completes the trials it ranks. While ``n_generate`` trials
are neither marked worst nor skipped, the sweep waits for rankings. The default sampler is the
preferential GP (``PreferentialGPSampler``, which needs BoTorch); ``sampler = "random"`` samples
at random and records the rankings all the same.

A trial awaiting its ranking stays RUNNING with no process behind it, so it cannot have a
heartbeat of its own: Optuna's stale-trial check would fail it (heartbeats are for
``study.optimize`` only, optuna/optuna#3293, and no trial can be exempted). While it trains, a
trial is covered by :class:`Liveness`: a one-trial ``study.optimize`` of a companion study
(``<study>:workers``) whose heartbeat lasts as long as the training. When that heartbeat goes
stale (the worker died), ``fail_stale_trials`` fails the companion trial and its callback fails
the preferential trial it names, unless the trial already made its grid (then it still awaits
its ranking). A failed trial does not count; the sweep generates another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from harness.errors import ConfigError
from harness.evaluation.tables import text_table
from harness.sweep.artifacts import GRID_ATTR, artifact_dir
from harness.sweep.objective import TrialRunner, interrupts_stop
from harness.sweep.parent import ParentRun
from harness.sweep.plan import Plan, SweepError, SweepResult, distributions, redact, suggest
from harness.sweep.storage import (
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    RUN_ATTR,
    WORKER_ATTR,
    open_storage,
    trial_of,
    worker_id,
)

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler
    from optuna_dashboard.preferential import PreferentialStudy

NEEDS_DASHBOARD = (
    '[sweep] mode = "preferential" needs optuna-dashboard: pip install "srgan-harness[dashboard]".'
)
WAIT_S = 2.0  # between looks at the study while every generated trial awaits a ranking
WORKERS_SUFFIX = ":workers"  # the companion study whose trials carry the heartbeats
TRIAL_ATTR = "preferential_trial"  # a companion trial: the number of the trial it trains
LOST = "its worker is gone"  # the interrupted note of a trial failed by its stale heartbeat


def make_sampler(p: Plan) -> BaseSampler:
    """``sampler = "random"``: Optuna's random sampler; else the preferential GP (the default
    ``"tpe"`` cannot learn from rankings; its ``sampler_options`` are left out)."""
    options = dict(p.sweep.sampler_options) if p.sweep.sampler in ("gp", "random") else {}
    try:
        if p.sweep.sampler == "random":
            return optuna.samplers.RandomSampler(**options)
        try:  # optional: BoTorch (and PyTorch) come with the dashboard extra only
            # optional: the dashboard extra (botorch)
            from optuna_dashboard.preferential.samplers.gp import PreferentialGPSampler
        except ImportError as exc:
            raise ConfigError(
                f'[sweep] mode = "preferential" ({p.path}) learns from rankings with '
                f"optuna-dashboard's PreferentialGPSampler, which needs BoTorch ({exc}): "
                'pip install "srgan-harness[dashboard]" (or botorch), or sample at random with '
                'sampler = "random".'
            ) from None
        return PreferentialGPSampler(**options)
    except TypeError as exc:
        raise ConfigError(f"[sweep] sampler_options for {p.sweep.sampler!r}: {exc}.") from None


def open_preferential_study(p: Plan, storage: Any) -> PreferentialStudy:
    """The plan's preferential study (created, or loaded), its feedback page showing each
    trial's sample grid."""
    try:  # optional: the dashboard extra
        # optional: the dashboard extra
        from optuna_dashboard import register_preference_feedback_component
        from optuna_dashboard.preferential import create_study  # optional: the dashboard extra
    except ImportError:
        raise ConfigError(NEEDS_DASHBOARD) from None
    try:
        study = create_study(
            n_generate=p.sweep.n_generate,
            storage=storage,
            sampler=make_sampler(p),
            study_name=p.study_name,
            load_if_exists=True,
        )
    except ValueError as exc:  # the study exists and is not a preferential one
        raise SweepError(
            f'study "{p.study_name}" in {redact(p.storage_url)} cannot be a preferential '
            f"study ({exc}). Name another study ([sweep] study = ... or --study)."
        ) from None
    register_preference_feedback_component(study, "artifact", GRID_ATTR)
    return study


class Liveness:
    """Optuna's heartbeat for the preferential trials while they train.

    :meth:`run` trains inside a one-trial ``study.optimize`` of the companion study
    ``<study>:workers`` (heartbeats on), its trial naming the preferential one;
    :meth:`fail_lost` runs ``fail_stale_trials`` there, and the storage's stale-trial callback
    fails each named preferential trial that is still RUNNING without a grid.
    """

    def __init__(
        self, p: Plan, plain: optuna.Study, storage: Any, echo: Callable[[str], Any] = print
    ) -> None:
        self.plain, self.storage, self.echo = plain, storage, echo
        self.beats = open_storage(p.storage_url, p.sweep, stale=self._stale)  # heartbeats on
        self.study = optuna.create_study(
            storage=self.beats,
            study_name=p.study_name + WORKERS_SUFFIX,
            sampler=optuna.samplers.RandomSampler(),
            load_if_exists=True,
        )

    def run(self, number: int, work: Callable[[], Any]) -> Any:
        """``work()`` (training preferential trial ``number``) under a heartbeat; its result."""
        done: list[Any] = []

        def objective(trial: optuna.Trial) -> float:
            trial.set_user_attr(TRIAL_ATTR, number)
            done.append(work())
            return 0.0

        self.study.optimize(objective, n_trials=1)  # re-raises what work() raised
        return done[0]

    def fail_lost(self) -> None:
        """Fail the preferential trials whose worker died before they made their grid."""
        optuna.storages.fail_stale_trials(self.study)

    def _stale(self, study: optuna.Study, companion: optuna.trial.FrozenTrial) -> None:
        number = companion.user_attrs.get(TRIAL_ATTR)
        found = [t for t in self.plain.get_trials(deepcopy=False) if t.number == number]
        if not found or found[0].state != TrialState.RUNNING or GRID_ATTR in found[0].user_attrs:
            return  # ranked, failed already, or awaiting its ranking with its grid
        trial_of(self.plain, self.storage, number).set_user_attr(INTERRUPTED_ATTR, LOST)
        try:
            self.plain.tell(number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            return  # another worker failed it first
        self.echo(f"trial {number}: {LOST} (it made no sample grid); it is failed")


def dashboard_command(p: Plan) -> str:
    """The optuna-dashboard command that shows the study with its sample grids."""
    return f"optuna-dashboard {redact(p.storage_url)} --artifact-dir {artifact_dir(p)}"


def run(p: Plan, echo: Callable[[str], Any] = print) -> SweepResult:
    """Generate trials until the study holds ``p.trials`` (failed ones aside) or the timeout;
    wait for rankings while ``n_generate`` trials are neither marked worst nor skipped."""
    # no heartbeats here: a generated trial stays RUNNING until someone ranks it (Liveness
    # covers its training)
    storage = open_storage(p.storage_url)
    study = open_preferential_study(p, storage)
    plain = optuna.load_study(
        study_name=p.study_name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    liveness = Liveness(p, plain, storage, echo)
    parent = ParentRun(p, study)
    parent.link(p, study)
    p.trial_root.mkdir(parents=True, exist_ok=True)
    echo(
        f'preferential sweep "{p.study_name}" in {redact(p.storage_url)}: {p.trials} trials, '
        f"n_generate {p.sweep.n_generate}; MLflow {parent.uri} (experiment "
        f"{parent.experiment}, parent run {parent.run_id})\n"
        f"rank the sample grids with: {dashboard_command(p)}"
    )
    runner = TrialRunner(p, parent, echo, retry=False)
    space = distributions(p.sweep)
    start, waiting, status = time.monotonic(), False, "FINISHED"
    try:
        with interrupts_stop(runner):
            while True:
                liveness.fail_lost()
                made = study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE)
                )
                timed_out = bool(p.sweep.timeout) and time.monotonic() - start >= p.sweep.timeout
                if len(made) >= p.trials or timed_out:
                    break
                if not study.should_generate():
                    if not waiting:
                        echo(
                            f"waiting for rankings in optuna-dashboard: {p.sweep.n_generate} "
                            "trials (n_generate) are neither marked worst nor skipped"
                        )
                    waiting = True
                    time.sleep(WAIT_S)
                    continue
                waiting = False
                _generate(study, plain, runner, space, liveness)
    except BaseException:
        status = "KILLED"
        raise
    finally:
        ranked = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        try:
            parent.tracker.log_metrics(
                {"sweep/trials_generated": len(runner.ran), "sweep/trials_ranked": ranked},
                step=len(study.get_trials(deepcopy=False)),
            )
        except Exception as exc:  # noqa: BLE001 - the trials are done; say what is missing
            echo(f"could not log the study's counts on the MLflow parent run: {exc}")
        parent.end(status)
    return SweepResult(
        study_name=p.study_name,
        storage=p.storage_url,
        parent_run_id=parent.run_id,
        ran=runner.ran,
        counts={"generated": len(runner.ran), "ranked": ranked},
        best=study.best_trials,
    )


def _generate(
    study: Any, plain: optuna.Study, runner: TrialRunner, space: Any, liveness: Liveness
) -> None:
    """One trial: sampled, trained (under ``liveness``'s heartbeat), its grid uploaded; left
    RUNNING for its ranking (or FAIL).

    ``plain`` is the same study as an ``optuna.Study`` (a preferential study has no ``tell``).
    """
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, worker_id())
    try:
        params = suggest(trial, space)
        outcome = liveness.run(trial.number, lambda: runner.train(trial, params))
    except BaseException:
        trial.set_user_attr(INTERRUPTED_ATTR, "the sweep was interrupted")
        plain.tell(trial.number, state=TrialState.FAIL)
        raise
    if outcome.state == "complete":
        for objective, value in zip(runner.p.objectives, outcome.values, strict=True):
            trial.set_user_attr(objective.metric, float(value))
        shown = "" if GRID_ATTR in trial.user_attrs else " (it made no sample grid)"
        runner.echo(f"trial {trial.number} awaits a ranking{shown}")
        label = "awaiting ranking"
    else:
        error = outcome.error or "unknown error"
        trial.set_user_attr(ERROR_ATTR, error[:4000])
        plain.tell(trial.number, state=TrialState.FAIL)
        runner.echo(f"trial {trial.number} FAIL: {error.splitlines()[0]}")
        label = "FAIL"
    runner.annotate(trial.number, outcome, label)


def show(p: Plan, top: int = 10) -> str:
    """Counts, the trials no ranking put below another (the best so far), and the command that
    opens the ranking pages."""
    try:  # optional: the dashboard extra
        from optuna_dashboard.preferential import load_study  # optional: the dashboard extra
    except ImportError:
        raise ConfigError(NEEDS_DASHBOARD) from None
    try:  # the sampler is never asked here: no need for BoTorch
        study = load_study(
            study_name=p.study_name,
            storage=open_storage(p.storage_url),
            sampler=optuna.samplers.RandomSampler(),
        )
    except (KeyError, ValueError) as exc:
        raise SweepError(
            f'there is no preferential study "{p.study_name}" in {redact(p.storage_url)} '
            f"({exc}). Run `harness sweep {p.path} --preferential` first, or name the study "
            "with --study and the storage with --storage."
        ) from None
    by_state = {s: 0 for s in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL)}
    for t in study.get_trials(deepcopy=False):
        if t.state in by_state:
            by_state[t.state] += 1
    head = (
        f'preferential study "{p.study_name}" in {redact(p.storage_url)}: '
        f"{by_state[TrialState.COMPLETE]} ranked, {by_state[TrialState.RUNNING]} awaiting a "
        f"ranking, {by_state[TrialState.FAIL]} failed\nrank them: {dashboard_command(p)}"
    )
    best = sorted(study.best_trials, key=lambda t: t.number)[:top]
    if not best:
        return head + "\nno ranking yet"
    keys = sorted({k for t in best for k in t.params})
    rows = [
        [t.number, *(_cell(t.params.get(k)) for k in keys), t.user_attrs.get(RUN_ATTR, "")]
        for t in best
    ]
    return "\n".join(
        [head, "never ranked below another:", text_table(["trial", *keys, "mlflow run"], rows)]
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
