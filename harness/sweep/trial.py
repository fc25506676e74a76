"""The trial process: one trial trained in its own Python process (TensorFlow does not give
memory back between runs in one process).

The worker starts it as ``python -c "from harness.sweep.trial import main; ..." JOB.json``.
It builds its own plugin registry (a separate process), loads its trial from the storage,
applies the trial's parameters as ``--set`` overrides (same keys, same type checks), trains,
reports each validation to the study (``trial.report``) and stops when the pruner says so. It
hands its objective values back in a small JSON file; the worker tells the study.

The worker holds the Optuna trial (and its heartbeat); this process reads its standard input,
which the worker never writes, and stops itself (SIGTERM, so MLflow ends its run) at the end
of file: when the worker is gone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import optuna

from harness import config, diskwrite, tracking
from harness.console import QUIET_ENV, quiet_tensorflow
from harness.errors import HarnessError
from harness.plugin_api.registry import Registry, build_registry
from harness.rundir import RunDir, RunDirBusy
from harness.signals import raise_interrupt
from harness.sweep.plan import Objective, SweepError, make_pruner, params_text, redact
from harness.sweep.storage import open_storage, quiet_optuna, trial_of

COMMAND = "import sys; from harness.sweep.trial import main; sys.exit(main())"
"""What ``python -c`` runs in a trial process (the job file is its argument)."""


class _Reporter:
    """The ``on_validation`` callback of a trial: history, ``trial.report``, pruning.

    With ``per_image`` (``[sweep] pruner = "wilcoxon"``) each validation reports every image's
    score, keyed by (validation, image) so that Optuna's WilcoxonPruner pairs it with the best
    trial's score on the same image at the same validation; otherwise the mean, keyed by step.
    """

    def __init__(self, trial: Any, objectives: Sequence[Objective], per_image: bool = False):
        self.trial = trial
        self.objectives = objectives
        self.history: list[tuple[int, dict[str, float]]] = []
        self.run_id = ""
        self.pruned_at: int | None = None
        self.per_image = per_image
        self.validator: Any = None
        self.validations = 0

    def on_train_begin(self, run: Any) -> None:
        self.validator = run.validator

    def _report_images(self) -> bool:
        """Report the last validation's per-image scores of the objective; False when there
        are none (the objective is not a per-image validation metric)."""
        last = getattr(self.validator, "last", None)
        measure = self.objectives[0].metric.removeprefix("val/")
        if last is None or not last.images or measure not in last.images[0].as_dict():
            return False
        count = len(last.images)
        for i, image in enumerate(last.images):
            value = float(image.as_dict()[measure])
            if math.isfinite(value):
                self.trial.report(value, self.validations * count + i)
        self.validations += 1
        return True

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        from harness.training.loop import StopTraining  # TensorFlow: imported when training

        self.history.append((int(step), {k: float(v) for k, v in metrics.items()}))
        with contextlib.suppress(Exception):
            active = mlflow.active_run()
            self.run_id = self.run_id or (active.info.run_id if active else "")
        if len(self.objectives) > 1:
            return
        if self.per_image:
            if not self._report_images():
                return
        else:
            value = metrics.get(self.objectives[0].metric)
            if value is None or not math.isfinite(float(value)):
                return
            self.trial.report(float(value), int(step))
        if self.trial.should_prune():
            self.pruned_at = int(step)
            raise StopTraining(f"pruned by the sweep's pruner at step {step}")


def _watch_worker() -> None:
    """Stop this trial process when its worker is gone (its standard input ends): SIGTERM
    first, so MLflow ends the run, then exit after 30 s."""
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    signal.raise_signal(signal.SIGTERM)
    time.sleep(30.0)
    os._exit(1)


def run_trial(job: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """Train one trial (in the trial process); returns the result the worker tells the study."""
    quiet_optuna()
    base = config.load(job["path"], job["overrides"], registry=registry)
    objectives = [Objective(**o) for o in job["objectives"]]
    pruner = make_pruner(base.sweep, len(objectives)) if base.sweep else None
    storage = open_storage(job["storage"])  # no heartbeat here: the worker sends it
    study = optuna.load_study(
        study_name=job["study"],
        storage=storage,
        sampler=optuna.samplers.RandomSampler(),  # never asked here
        pruner=pruner,
    )
    number = int(job["trial_number"])
    trial = trial_of(study, storage, number)
    name = dir_name(number)
    overrides = {
        **job["overrides"],
        **trial.params,
        "experiment.runs_dir": job["runs_dir"],
        "experiment.name": name,
        "tracking.uri": tracking.tracking_uri(base),
        "tracking.experiment": tracking.experiment_name(base),
    }
    print(f"trial {number}: {params_text(trial.params)}", flush=True)
    try:
        exp = config.load(job["path"], overrides, registry=registry)
    except HarnessError as exc:
        return {"state": "fail", "error": f"the trial's parameters make a bad experiment: {exc}"}
    run_dir = exp.run_dir
    try:
        with RunDir(run_dir).owned(f"harness sweep trial {number}"):
            return _clear_and_train(job, trial, exp, registry, objectives, number)
    except RunDirBusy as exc:  # another process trains in the trial's folder
        return {"state": "fail", "error": str(exc)}


def _clear_and_train(
    job: Mapping[str, Any],
    trial: optuna.Trial,
    exp: config.Experiment,
    registry: Registry,
    objectives: Sequence[Objective],
    number: int,
) -> dict[str, Any]:
    """Train the trial in its (owned) run directory, cleared first."""
    run_dir = exp.run_dir
    for path in run_dir.iterdir():  # left by an earlier study of the same name: never resume it
        if path != RunDir(run_dir).lock_file:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    from harness.training.loop import StopTraining, train  # TensorFlow: imported when training

    reporter = _Reporter(
        trial, objectives, per_image=bool(exp.sweep) and exp.sweep.pruner == "wilcoxon"
    )
    tags = {
        "optuna.study": job["study"],
        "optuna.storage": storage_text(job["storage"]),
        "optuna.trial_number": str(number),
        # the run keeps only its sampled values as parameters; the rest is in its run
        # directory's experiment.toml (and in the artifact of that name)
        "harness.run_dir": str(run_dir.resolve()),
    }
    result = None
    try:
        result = train(
            exp,
            callbacks=[reporter],
            parent_run_id=job["parent_run_id"],
            run_name=run_name(number, job["study"]),
            tags=tags,
            registry=registry,
            params=trial.params,  # what differs between trials; the rest is the parent's
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


def dir_name(number: int) -> str:
    """A trial's run directory name (under the study's folder)."""
    return f"trial_{number:04d}"


def storage_text(url: str) -> str:
    """The study's storage as a tag: password hidden, a relative SQLite path made absolute
    (the trial process runs where its worker does)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + Path(url.removeprefix("sqlite:///")).resolve().as_posix()
    return redact(url)


def run_name(number: int, study: str) -> str:
    """A trial's MLflow run name: its number first, zero-padded, so runs sort by trial."""
    return f"{number:04d} {study}"


def _run_id(result: Any, reporter: _Reporter, run_dir: Path) -> str:
    if result is not None and getattr(result, "run_id", None):
        return str(result.run_id)
    return RunDir(run_dir).read_run_id() or reporter.run_id


def _history_of(result: Any) -> list[tuple[int, dict[str, float]]]:
    history = getattr(result, "history", None) or []
    out = []
    for item in history:
        if isinstance(item, Mapping):
            step = int(item.get("step", 0))
            out.append((step, {k: float(v) for k, v in item.items() if k.startswith("val/")}))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """The trial process: ``python -c "<COMMAND>" JOB.json``; the result goes to the job's
    ``result`` file (written whole, so the worker never reads half of one)."""
    if os.environ.get(QUIET_ENV) == "1":  # set by a CLI without --verbose
        quiet_tensorflow()
    args = list(sys.argv[1:] if argv is None else argv)
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    signal.signal(signal.SIGTERM, raise_interrupt)
    threading.Thread(target=_watch_worker, name="watch-worker", daemon=True).start()
    try:
        result = run_trial(job, build_registry())
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # anything: the worker records it as the trial's error
        traceback.print_exc()
        result = {"state": "fail", "error": f"{type(exc).__name__}: {exc}"}
    diskwrite.write_json(job["result"], result, null=True)
    return 0
