"""The seam around the step: what the loop calls back, and the built-in callbacks.

A callback is any object with some of these methods (Keras' ``Callback`` shape, without its
``Model``); the loop calls only those it has:

- ``on_train_begin(run)``: once, with the :class:`Run` (trainer, tracker, checkpoints, ...);
- ``on_step_end(step, logs)``: after every step; ``logs`` are its unweighted losses (terms
  weighted 0 at that step left out);
- ``on_validation(step, metrics)``: after each validation (``val/psnr_y``, ...); a sweep prunes
  a trial by raising :class:`StopTraining` here;
- ``on_train_end(result)``: once the last step is done and validated.

The built-in ones, in the order the loop runs them (:func:`builtin_callbacks`):
:class:`MLflowLogging` (losses, weights, learning rates and throughput every ``log_every``
steps; validation metrics with the bicubic references at the same step), :class:`SampleGrids`,
:class:`History`, :class:`Progress` (the bar, or plain lines when quiet; the validation line),
:class:`KeepBest` (``best_<metric>.keras``, said after the validation line),
:class:`PeriodicCheckpoint`, :class:`StopOnSignal`, :class:`ExportModels`; then the caller's.
A new "thing every N steps" is one more callback; the compiled step is never edited for it.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from harness.config import Experiment
from harness.deploy import mlflow_model
from harness.errors import HarnessError
from harness.rundir import kept_name
from harness.training.checkpoints import Checkpoints
from harness.training.kept import KeptGenerators
from harness.training.step import Trainer
from harness.training.validation import Validator, sample_grid

SAMPLES_KEY = "samples"
"""The MLflow image key of the sample grids."""
HOOKS = ("on_train_begin", "on_step_end", "on_validation", "on_train_end")


class StopTraining(Exception):  # noqa: N818 - a control-flow signal, named as in Keras
    """Raised by a callback to stop the run cleanly (checkpoint saved, MLflow run KILLED)."""


class NonFiniteLoss(HarnessError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(HarnessError):
    """SIGINT or SIGTERM: the checkpoint was saved and ``harness run`` resumes the run.
    ``signum`` is the signal's number (the command exits with 128 + it, as a shell does)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


class Callback(Protocol):
    """What :func:`harness.training.loop.train` calls back: any subset of :data:`HOOKS`."""

    def on_validation(self, step: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    """What a finished run returns.

    ``final_metrics`` and ``best_metrics`` hold validation metrics under their MLflow names
    (``val/psnr_y``, ``val/ssim_y``, ``val/psnr_rgb``); ``best`` is by ``val/psnr_y``.
    ``history`` holds one dict per validation with its ``step``.
    """

    run_id: str
    run_dir: Path
    steps: int
    final_metrics: dict[str, float] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    bicubic_metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    model_path: Path | None = None
    model_uri: str | None = None
    kept: dict[str, dict[str, float]] = field(default_factory=dict)
    experiment_id: str = ""  # the MLflow experiment of the run
    tracking_uri: str = ""  # the MLflow store it was logged to


@dataclass
class Run:
    """One run in progress, as the callbacks see it."""

    exp: Experiment
    trainer: Trainer
    tracker: Any
    checkpoints: Checkpoints
    kept: KeptGenerators
    validator: Validator
    result: TrainResult
    say: Callable[[str], None]
    chief: bool = True
    img_per_s: float = 0.0  # the throughput of the last log interval


class CallbackList:
    """Callbacks, each hook resolved once to the bound methods that exist (a step then costs
    one call per callback that acts on steps, nothing for the others)."""

    def __init__(self, callbacks: Sequence[Any]) -> None:
        self.callbacks = list(callbacks)
        self.hooks: dict[str, list[Callable[..., None]]] = {
            hook: [getattr(cb, hook) for cb in self.callbacks if callable(getattr(cb, hook, None))]
            for hook in HOOKS
        }
        self.step_end = self.hooks["on_step_end"]

    def on_train_begin(self, run: Run) -> None:
        for fn in self.hooks["on_train_begin"]:
            fn(run)

    def on_step_end(self, step: int, logs: dict[str, float]) -> None:
        for fn in self.step_end:
            fn(step, logs)

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        for fn in self.hooks["on_validation"]:
            fn(step, dict(metrics))

    def on_train_end(self, result: TrainResult) -> None:
        for fn in self.hooks["on_train_end"]:
            fn(result)


# --------------------------------------------------------------------------- built-in callbacks


class MLflowLogging:
    """Every ``train.log_every`` steps: the mean losses, the weights (``weight/adversarial`` is 0
    while pre-training), learning rates and images per second (checking the weights first);
    every validation: its metrics."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.every = run.exp.train.log_every
        self.steps = run.exp.train.steps
        self.images_per_step = run.exp.train.batch_size
        self.sums: dict[str, float] = {}
        self.count = 0
        self.tick = time.perf_counter()

    def on_step_end(self, step: int, logs: dict[str, float]) -> None:
        sums = self.sums
        for name, value in logs.items():
            if not math.isfinite(value):
                self._non_finite(name, value, step)
            sums[name] = sums.get(name, 0.0) + value
        self.count += 1
        if step % self.every == 0 or step == self.steps:
            self._log(step)

    def _non_finite(self, name: str, value: float, step: int) -> None:
        run = self.run
        kept = run.checkpoints.kept_text("none written yet")
        raise NonFiniteLoss(
            f'loss term "{name}" is {value} at step {step}. The run stopped; the last good '
            f"checkpoint ({kept}) is kept in "
            f"{run.checkpoints.directory}. Lower train.learning_rate or this term's weight, or "
            'set train.precision = "float32".'
        )

    def _log(self, step: int) -> None:
        run, trainer = self.run, self.run.trainer
        run.checkpoints.check_weights("at a log interval")
        now = time.perf_counter()
        run.img_per_s = self.count * self.images_per_step / max(now - self.tick, 1e-9)
        logged = {f"loss/{k}": s / self.count for k, s in self.sums.items()}
        logged.update({f"weight/{k}": w for k, w in trainer.weights.items()})
        logged["train/img_per_s"] = run.img_per_s
        g_lr, d_lr = trainer.learning_rates
        logged["train/learning_rate"] = g_lr
        if trainer.adversarial_now():  # the discriminator was updated at this step
            logged["train/d_learning_rate"] = d_lr
        run.tracker.log_metrics(logged, step=step)
        self.sums, self.count, self.tick = {}, 0, time.perf_counter()

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        # the bicubic references at the same step, so each draws as a flat line in its chart
        self.run.tracker.log_metrics({**metrics, **self.run.result.bicubic_metrics}, step=step)


class SampleGrids:
    """The stepped MLflow image ``samples``: LR | bicubic | SR | HR rows, captioned with the
    PSNR-Y of bicubic and SR (MLflow's image chart has a step slider and compares runs), at
    each validation and at step 0 of a new run (the untrained or warm-started generator), so
    the chart opens on a picture."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def on_train_begin(self, run: Run) -> None:
        if run.trainer.step == 0:
            self.on_validation(0, {})

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        run = self.run
        samples = run.validator.samples
        if samples and run.chief:
            upscale = run.validator.upscaler(run.trainer.final_generator)
            grid = sample_grid(upscale, samples, run.exp.data.scale)
            run.tracker.log_image(grid, key=SAMPLES_KEY, step=step)


class History:
    """The result's history, final metrics and best (by ``val/psnr_y``) metrics."""

    def __init__(self, result: TrainResult) -> None:
        self.result = result

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        result = self.result
        result.history.append({"step": float(step), **metrics})
        result.final_metrics = dict(metrics)
        best = result.best_metrics.get("val/psnr_y", -math.inf)
        if metrics.get("val/psnr_y", -math.inf) > best:
            result.best_metrics, result.best_step = dict(metrics), step


class KeepBest:
    """``best_<metric>.keras`` for every tracked metric the final generator is the best by."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        run = self.run
        bicubic = run.result.bicubic_metrics
        for name in run.kept.update(run.trainer.final_generator, step, metrics):
            metric, higher = run.kept.tracked[name]
            value, short = metrics[metric], metric.removeprefix("val/")
            text = f"{short} {value:.4g}, the run's {'highest' if higher else 'lowest'} so far"
            base = bicubic.get(f"val/bicubic_{short}")
            if base is not None and (value < base if higher else value > base):
                text += f" but behind bicubic's {base:.4g}"
            run.say(f"step {step}: kept as {name}.keras ({text})")


class Progress:
    """A tqdm bar with step, the adversarial weight (0 while pre-training; shown when there is
    an adversarial term), losses, img/s and ETA; when quiet (for logs), no bar but one plain
    line every ``log_every`` steps with the same fields. Also the run's messages."""

    def __init__(self, total: int, initial: int, quiet: bool, log_every: int = 100) -> None:
        self.quiet = quiet
        self.total, self.step, self.first = total, initial, initial
        self.log_every = max(1, log_every)
        self.started = time.monotonic()
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=quiet,
            unit="step",
            dynamic_ncols=True,
            desc="train",
        )
        self.run: Run | None = None
        self.lines: list[str] = []  # every message written, for the run's console.log

    def on_train_begin(self, run: Run) -> None:
        self.run = run

    def on_step_end(self, step: int, logs: dict[str, float]) -> None:
        assert self.run is not None
        self.update(self.run.trainer.weights, logs, self.run.img_per_s)

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        assert self.run is not None
        base = self.run.result.bicubic_metrics.get("val/bicubic_psnr_y")
        vs = f" (bicubic {base:.2f})" if base is not None else ""
        psnr = metrics.get("val/psnr_y", float("nan"))
        ssim = metrics.get("val/ssim_y", float("nan"))
        self.write(f"step {step}: validation PSNR-Y {psnr:.2f} dB{vs}, SSIM-Y {ssim:.4f}")

    def update(
        self, weights: Mapping[str, float], losses: Mapping[str, float], img_per_s: float
    ) -> None:
        shown = {}
        if "adversarial" in weights:
            shown["adversarial"] = f"{weights['adversarial']:.4g}"
        for key in ("g_total", "d"):
            if key in losses:
                shown[key] = f"{losses[key]:.4g}"
        if img_per_s:
            shown["img/s"] = f"{img_per_s:.1f}"
        self.step += 1
        if not self.quiet:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif self.step % self.log_every == 0 or self.step == self.total:
            per_step = (time.monotonic() - self.started) / max(1, self.step - self.first)
            eta = int(per_step * (self.total - self.step))
            fields = " ".join(f"{k}={v}" for k, v in shown.items())
            self.write(
                f"step {self.step}/{self.total} {fields} "
                f"eta {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
            )

    def write(self, text: str) -> None:
        self.lines.append(text)
        if self.quiet:
            print(text, flush=True)
        else:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


class PeriodicCheckpoint:
    """A checkpoint every ``train.checkpoint_every`` steps."""

    def __init__(self, checkpoints: Checkpoints, every: int) -> None:
        self.checkpoints, self.every = checkpoints, every

    def on_step_end(self, step: int, logs: dict[str, float]) -> None:
        if step % self.every == 0:
            self.checkpoints.save()


class StopOnSignal:
    """After the step in which SIGINT or SIGTERM arrived (``flag`` is set by
    :func:`harness.signals.signals_to_flag`): save a checkpoint and raise
    :class:`TrainingInterrupted`."""

    def __init__(self, flag: dict[str, int], checkpoints: Checkpoints, source: Any) -> None:
        self.flag, self.checkpoints, self.source = flag, checkpoints, source

    def on_step_end(self, step: int, logs: dict[str, float]) -> None:
        if self.flag.get("signal"):
            self.checkpoints.save()
            name = signal.Signals(self.flag["signal"]).name
            raise TrainingInterrupted(
                f"{name} at step {step}: checkpoint saved in {self.checkpoints.directory}. "
                f"`harness run {self.source}` resumes this run.",
                signum=self.flag["signal"],
            )


class ExportModels:
    """At the end: ``generator.keras`` and ``discriminator.keras`` in the run directory, the
    kept generators' summary, and (``tracking.log_model``) every one of them as an MLflow model."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def on_train_end(self, result: TrainResult) -> None:
        run = self.run
        run.checkpoints.check_weights("before writing the final model")
        if not run.chief:
            return
        result.model_path = run.checkpoints.write_final_models(run.exp.run_dir)
        result.kept = run.kept.summary()
        if run.exp.tracking.log_model:
            tracker, step = run.tracker, run.trainer.step
            result.model_uri = mlflow_model.log_generator(
                tracker.client, tracker.run_id, run.trainer.final_generator, step
            )
            tracker.set_tag("generator_model_uri", result.model_uri)
            uris: dict[str, str] = {}
            for name, info in run.kept.load_all():
                if info.step == step:  # the final generator itself: not logged twice
                    uri = result.model_uri
                else:
                    uri = mlflow_model.log_generator(
                        tracker.client, tracker.run_id, info.model, info.step, name
                    )
                tracker.set_tag(f"{name}_model_uri", uri)
                uris[name] = uri
            register_models(run.exp, tracker, result.model_uri, uris)


def builtin_callbacks(run: Run, progress: Progress, flag: dict[str, int]) -> list[Any]:
    """The built-in callbacks in the order the loop runs them; ``flag`` is the one
    :func:`harness.signals.signals_to_flag` sets."""
    train, checkpoints = run.exp.train, run.checkpoints
    return [
        MLflowLogging(run),
        SampleGrids(run),
        History(run.result),
        progress,
        KeepBest(run),
        PeriodicCheckpoint(checkpoints, train.checkpoint_every),
        StopOnSignal(flag, checkpoints, run.exp.source),
        ExportModels(run),
    ]


BEST_KEPT = kept_name("psnr_y")
"""The kept generator ``[tracking] alias`` names: the best by validation PSNR-Y."""


def register_models(exp: Any, tracker: Any, final_uri: str, kept: dict[str, str]) -> None:
    """``[tracking] register``: the final generator becomes a version of the registered model;
    the best validation generator (:data:`BEST_KEPT`, the final one when it is the best) gets
    ``[tracking] alias`` on its version."""
    name, alias = exp.tracking.register, exp.tracking.alias
    if not name:
        return
    best = kept.get(BEST_KEPT)
    version = mlflow_model.register(
        tracker.client, final_uri, name, tracker.run_id, alias if best == final_uri else ""
    )
    tracker.set_tag("registered_model_version", f"{name}/{version}")
    if best and best != final_uri:
        version = mlflow_model.register(tracker.client, best, name, tracker.run_id, alias)
    if alias and best:
        tracker.set_tag("registered_model_alias", f"{name}@{alias} = version {version}")


__all__ = [
    "HOOKS",
    "Callback",
    "CallbackList",
    "ExportModels",
    "History",
    "KeepBest",
    "MLflowLogging",
    "NonFiniteLoss",
    "PeriodicCheckpoint",
    "Progress",
    "Run",
    "SAMPLES_KEY",
    "SampleGrids",
    "StopOnSignal",
    "StopTraining",
    "TrainResult",
    "TrainingInterrupted",
    "builtin_callbacks",
]
