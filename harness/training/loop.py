"""The run: :func:`train` drives a :class:`~harness.training.step.Trainer` from its checkpoint
(or a warm start) to ``train.steps``, with the callbacks of :mod:`harness.training.callbacks`
around each step, and ends the MLflow run with the status the run earned.

The walk from ``harness run`` to the compiled step: :mod:`harness.commands.run` ->
:func:`train` -> :meth:`Trainer.train_step <harness.training.step.Trainer.train_step>`. Each
step is one compiled call; what happens every N steps (logging, progress, checkpoints, signals)
and at validations (metrics, sample grids, kept generators) are callbacks.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from harness import diskwrite
from harness.config import Experiment
from harness.config.schema import PairedFolder
from harness.data.folders import SKIMAGE, folder_label, resolve, skimage_folder
from harness.data.pipeline import check_patch
from harness.errors import HarnessError, HarnessWarning
from harness.plugin_api.registry import Registry
from harness.run_context import image_folder_dataset
from harness.rundir import CONSOLE_LOG, RunDir, release_owned
from harness.signals import signals_to_flag
from harness.tracking import Tracker
from harness.training import callbacks as cb
from harness.training.callbacks import (
    Callback,
    NonFiniteLoss,
    StopTraining,
    TrainingInterrupted,
    TrainResult,
)
from harness.training.checkpoints import Checkpoints, NonFiniteWeights, move_aside
from harness.training.kept import KeptGenerators
from harness.training.precision import onednn_advice, onednn_enabled
from harness.training.step import Trainer, is_chief, make_strategy
from harness.training.validation import Validator
from harness.training.warmstart import warm_start


class _NullTracker:
    """What a non-chief worker of a multi-worker run logs with: nothing."""

    run_id = ""
    experiment_id = ""
    uri = ""
    resumed = False

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def train(
    exp: Experiment,
    *,
    registry: Registry,
    callbacks: Sequence[Callback] = (),
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    fresh: bool = False,
    params: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``exp`` to ``train.steps``, resuming its run directory's checkpoint if there is one.

    Args:
        exp: the experiment (:func:`harness.config.load`).
        registry: the plugins the experiment names (``harness run`` builds it once per
            invocation: :func:`harness.commands._options.registry`).
        callbacks: objects with any of ``on_train_begin(run)``, ``on_step_end(step, logs)``,
            ``on_validation(step, metrics)``, ``on_train_end(result)``; raising
            :class:`StopTraining` stops the run cleanly (checkpoint saved, MLflow run KILLED)
            and re-raises.
        parent_run_id: make the MLflow run a child of this run (sweeps).
        run_name, tags: the MLflow run's name (default: the experiment's name) and extra tags.
        fresh: move an existing checkpoint (and kept models) aside into
            ``<run_dir>/previous-<time>/`` and start a new MLflow run.
        params: the MLflow run's parameters (default: every value, ``exp.flat_params()``; a
            sweep's trial logs only what differs between its trials).

    Raises:
        NonFiniteLoss: a loss became NaN/inf (the MLflow run is FAILED).
        NonFiniteWeights: the weights became NaN/inf (the MLflow run is FAILED).
        TrainingInterrupted: SIGINT/SIGTERM (checkpoint saved, MLflow run KILLED); a second
            one ends the process at once (:func:`harness.signals.signals_to_flag`).
        StopTraining: re-raised from a callback.
        DataError: no training image can give ``data.patch`` (from the image headers, before
            anything is built or logged).
    """
    # from the image headers, before anything is built for a patch no image can give
    check_patch(exp.data)
    strategy = make_strategy(exp.train.strategy)
    chief = is_chief(strategy)
    # one process owns a run directory (the chief of a multi-worker run)
    owned = RunDir(exp.run_dir).owned() if chief else contextlib.nullcontext()
    with owned:
        return _train(
            exp, strategy, chief, registry, callbacks, parent_run_id, run_name, tags, fresh, params
        )


def _train(
    exp: Experiment,
    strategy: tf.distribute.Strategy,
    chief: bool,
    registry: Registry,
    callbacks: Sequence[Callback],
    parent_run_id: str | None,
    run_name: str | None,
    tags: Mapping[str, str] | None,
    fresh: bool,
    params: Mapping[str, Any] | None,
) -> TrainResult:
    run_dir = exp.run_dir
    ckpt_dir = RunDir(run_dir).checkpoints
    run_id_file = RunDir(run_dir).run_id_file
    if fresh:
        moved = move_aside(run_dir)
        if moved is not None:
            print(f"--fresh: the previous run's checkpoints and kept models are in {moved}")
        run_id_file.unlink(missing_ok=True)
    resuming = tf.train.latest_checkpoint(str(ckpt_dir)) is not None
    previous_run = run_id_file.read_text().strip() if resuming and run_id_file.exists() else None

    if chief:
        tracker: Any = Tracker(
            exp,
            run_id=previous_run,
            parent_run_id=parent_run_id,
            run_name=run_name,
            tags=tags,
            running=False,  # a resumed run: RUNNING once its checkpoint is restored
        )
    else:
        tracker = _NullTracker()
    try:
        if chief:  # inside: a failure here ends the MLflow run too
            diskwrite.write_text(run_id_file, tracker.run_id + "\n")
        trainer = Trainer(exp, registry=registry, strategy=strategy)
        try:
            result = _run(exp, trainer, tracker, callbacks, chief, ckpt_dir, params)
        except (tf.errors.UnavailableError, tf.errors.CancelledError) as exc:
            if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
                raise
            raise WorkerLost(_lost_text(exc, ckpt_dir)) from None
    except StopTraining:
        tracker.end("KILLED")
        raise
    except TrainingInterrupted as exc:
        tracker.end("KILLED", error=str(exc))
        raise
    except KeyboardInterrupt:
        tracker.end("KILLED", error="KeyboardInterrupt")
        raise
    except BaseException as exc:
        tracker.end("FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    tracker.end("FINISHED")
    return result


class WorkerLost(HarnessError):
    """A multi-worker run lost a worker (a collective operation failed); restart them all."""


def _lost_text(exc: BaseException, ckpt_dir: Path) -> str:
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    kept = f"{Path(latest).name} in {ckpt_dir}" if latest else f"none yet in {ckpt_dir}"
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # TF's message starts "Graph execution error:"; the gRPC line says what happened
    said = [ln for ln in lines if "grpc_message" in ln or "aborted" in ln.lower()]
    detail = (said or lines or [""])[0][:200]
    return (
        f"lost contact with another worker ({type(exc).__name__}: {detail}). "
        "MultiWorkerMirroredStrategy cannot continue without it: stop every worker and start "
        f"them all again with the same command; they resume from the chief's last checkpoint "
        f"({kept})."
    )


def _log_data_inputs(exp: Experiment, tracker: Any) -> None:
    """The training and validation folders as MLflow dataset inputs of the run (one dataset
    per folder: its name, a digest of its file list and its number of images; a paired entry
    is two, its HR and its LR folder, the LR one named ``<name> (LR)``)."""
    for context, entries in (("training", exp.data.train), ("validation", exp.data.val)):
        datasets = []
        for entry in dict.fromkeys(entries):
            if isinstance(entry, PairedFolder):
                folders = [(entry.hr, ""), (entry.lr, " (LR)")]
            else:
                folders = [(entry, "")]
            for spec, suffix in folders:
                folder = skimage_folder() if spec == SKIMAGE else Path(spec).expanduser()
                name = folder_label(spec) + suffix
                datasets.append(image_folder_dataset(name, folder, resolve(spec), context))
        tracker.log_datasets(datasets, context)


def _log_console(run_dir: Path, lines: Sequence[str], tracker: Any) -> None:
    path = run_dir / CONSOLE_LOG
    try:
        with path.open("a", encoding="utf-8") as log:
            log.writelines(f"{line}\n" for line in lines)
        tracker.log_artifact(path)
    except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more than its log
        warnings.warn(f"{CONSOLE_LOG} was not logged: {exc}", HarnessWarning, stacklevel=2)


def _check_same_step(trainer: Trainer, source: Path) -> None:
    """Every worker of a multi-worker run must start at the same step (a worker that did not
    find the chief's checkpoints would start at 0 and the run would deadlock): compare the
    mean step over the workers with this worker's step before the first training step."""
    strategy = trainer.strategy
    mine = float(trainer.step)

    @tf.function
    def mean_step() -> tf.Tensor:
        per_replica = strategy.run(lambda: tf.constant(mine, tf.float64))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    mean = float(mean_step())
    if mean != mine:
        raise HarnessError(
            f"this worker starts at step {trainer.step} but the workers' mean is {mean:g}: not "
            f"every worker found the chief's checkpoints in {source}. Put the run directory on "
            "a file system every worker sees at the same path (or copy the chief's "
            "checkpoints/ folder to each machine) and start all workers again."
        )


def _run(
    exp: Experiment,
    trainer: Trainer,
    tracker: Any,
    callbacks: Sequence[Callback],
    chief: bool,
    ckpt_dir: Path,
    params: Mapping[str, Any] | None = None,
) -> TrainResult:
    t, v = exp.train, exp.validation
    run_dir = exp.run_dir
    toml_path = RunDir(run_dir).experiment_toml
    previous = toml_path.read_text(encoding="utf-8") if toml_path.is_file() else ""

    source = ckpt_dir
    if not chief:  # every worker must save (collectively); only the chief's copy is kept
        ckpt_dir = Path(tempfile.mkdtemp(prefix="harness-worker-ckpt-"))
    # every worker resumes from the chief's checkpoints (the run dir at the same path on every
    # machine: a shared file system, or a copy of the chief's checkpoints/ folder)
    checkpoints = Checkpoints(trainer, ckpt_dir, source=source)
    resumed = checkpoints.restore(previous)
    if isinstance(trainer.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        _check_same_step(trainer, source)
    sources = [] if resumed else warm_start(trainer)
    if chief:
        diskwrite.write_text(toml_path, exp.to_toml())
        tracker.log_params(exp.flat_params() if params is None else params)
        tracker.log_artifact(toml_path)
        tracker.set_tags(
            {
                "precision": trainer.policy,
                "replicas": trainer.replicas,
                "onednn": onednn_enabled(),
            }
        )
        if not tracker.resumed:
            tracker.log_context(exp)
            _log_data_inputs(exp, tracker)
        if exp.tracking.system_metrics:
            tracker.start_system_metrics()
        for source in sources:
            tracker.log_lineage(source)
    kept = KeptGenerators(run_dir, exp, trainer.registry, enabled=chief, resumed=resumed)
    result = TrainResult(
        run_id=tracker.run_id,
        run_dir=run_dir,
        steps=trainer.step,
        experiment_id=tracker.experiment_id,
        tracking_uri=tracker.uri,
    )
    progress = cb.Progress(t.steps, trainer.step, t.quiet, t.log_every)
    say = progress.write
    if resumed:
        adversarial = ""
        if trainer.adv_term is not None:  # 0 while pre-training
            adversarial = f" (adversarial weight {trainer.adv_term.weight(trainer.step):.4g})"
        say(f"resuming {exp.experiment.name} at step {trainer.step}{adversarial}")
        if checkpoints.note:
            say(checkpoints.note)
    say(f"precision {trainer.policy}, {trainer.replicas} replica(s); run dir {run_dir}")
    advice = onednn_advice()
    if advice and chief:
        warnings.warn(advice, HarnessWarning, stacklevel=2)

    validator = Validator(exp, trainer.registry)
    if validator.images:
        # the reference: logged at step 0 and again beside every validation (MLflowLogging)
        result.bicubic_metrics = validator.bicubic()
    if validator.images and not resumed:
        tracker.log_metrics(result.bicubic_metrics, step=0)
        say(
            "bicubic on the validation set: "
            + ", ".join(f"{k.split('_', 1)[1]} {x:.4g}" for k, x in result.bicubic_metrics.items())
        )
        if any(s.network == "generator" for s in sources):
            # where a fine-tune starts, so that its validation curves begin at step 0 (logged
            # only: the kept generators, early stopping and sweep pruning judge trained steps)
            start = validator(trainer.final_generator)
            tracker.log_metrics(start, step=0)
            say(
                "the warm-started generator on the validation set: "
                + ", ".join(f"{k.split('/', 1)[1]} {x:.4g}" for k, x in start.items())
            )
    run = cb.Run(exp, trainer, tracker, checkpoints, kept, validator, result, say, chief)
    flag: dict[str, int] = {}
    hooks = cb.CallbackList([*cb.builtin_callbacks(run, progress, flag), *callbacks])
    every = v.every if validator.images else 0

    def validate(step: int) -> None:
        checkpoints.check_weights("at a validation")
        hooks.on_validation(step, validator(trainer.final_generator))

    tracker.mark_running()
    hooks.on_train_begin(run)
    validated = -1
    try:
        # before the signal flag: Ctrl-C while the data is read stops at once (there is no
        # step to finish and nothing new to save)
        trainer.start_data()
    except BaseException:
        progress.close()
        raise

    def abort(signum: int) -> None:  # a second signal, maybe inside a step: nothing is saved
        tracker.end("KILLED", error=f"{signal.Signals(signum).name} twice: stopped inside a step")
        release_owned()

    try:
        with signals_to_flag(flag, say, abort):
            while trainer.step < t.steps:
                losses = trainer.train_step()
                step, weights = trainer.step, trainer.weights
                # a term weighted 0 was not computed: nothing to log for it
                logs = {k: x for k, x in losses.items() if weights.get(k, 1.0) != 0.0}
                hooks.on_step_end(step, logs)
                if every and step % every == 0:
                    validate(step)
                    validated = step
            if validator.images and validated != trainer.step:
                validate(trainer.step)
            checkpoints.save()
    except (StopTraining, KeyboardInterrupt):
        checkpoints.save()
        raise
    finally:
        progress.close()
        if chief:
            _log_console(run_dir, progress.lines, tracker)

    result.steps = trainer.step
    hooks.on_train_end(result)
    return result


__all__ = [
    "Callback",
    "NonFiniteLoss",
    "NonFiniteWeights",
    "StopTraining",
    "TrainResult",
    "TrainingInterrupted",
    "WorkerLost",
    "train",
]
