"""A run directory's checkpoints: save, restore (falling back past unreadable files), the
mismatch message when a checkpoint was written by another experiment, ``--fresh`` moving old
files aside, the guard against writing diverged weights, and the final models.

The objects saved are the :class:`~harness.training.step.Trainer` 's ``objects`` (networks,
optimizers, step and data RNG); schedules and weights are not saved, they follow the step.
Checkpoints written before pre-training became a schedule also hold a ``phase`` number, which
restoring reads past (:data:`UNUSED`).
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from harness import diskwrite
from harness.config import Experiment, flatten
from harness.errors import HarnessError
from harness.rundir import RunDir, checkpoint_readable
from harness.training.step import Trainer

UNUSED = ("phase",)
"""Objects that earlier checkpoints hold and nothing restores: the pre-training phase, now the
adversarial weight's schedule (a function of the restored step)."""


class NonFiniteWeights(HarnessError):
    """A network's weights became NaN or infinite (training diverged); nothing is written from
    them and the last good checkpoint is kept."""


class Checkpoints:
    """The checkpoints of one run in ``directory`` (the two newest are kept)."""

    def __init__(self, trainer: Trainer, directory: Path, source: Path | None = None) -> None:
        """``source``: restore from this folder instead of ``directory`` (a non-chief worker of
        a multi-worker run saves into a temporary folder and resumes from the chief's
        checkpoints, which it only reads)."""
        self.trainer = trainer
        self.directory = Path(directory)
        self.manager = tf.train.CheckpointManager(trainer.checkpoint, str(directory), max_to_keep=2)
        self.source = self.manager
        if source is not None and Path(source) != self.directory:
            self.source = tf.train.CheckpointManager(trainer.checkpoint, str(source), max_to_keep=2)
        self.last_saved = -1  # the step of the newest good checkpoint; -1: none yet
        self.note = ""  # what restore() had to skip, for the progress output

    def kept_text(self, none: str = "none was written yet") -> str:
        return f"step {self.last_saved}" if self.last_saved >= 0 else none

    def check_weights(self, when: str) -> None:
        """Refuse to go on (or to write anything) from non-finite weights."""
        trainer = self.trainer
        bad = trainer.non_finite_weight()
        if bad is None:
            return
        raise NonFiniteWeights(
            f"the weights became NaN or infinite by step {trainer.step} (first: {bad}), found "
            f"{when}: training diverged. Nothing was written from "
            f"them; the last good checkpoint ({self.kept_text()}) is kept in {self.directory}. "
            "Lower train.learning_rate (or its schedule's peak) and resume, or start over with "
            "--fresh."
        )

    def save(self) -> None:
        """Write a checkpoint of the current step unless it is already saved (TF writes the data
        first and then swaps the index atomically)."""
        trainer = self.trainer
        if trainer.step == self.last_saved:
            return
        self.check_weights("before saving a checkpoint")
        intact = (
            f"the checkpoint of step {self.last_saved} is intact" if self.last_saved >= 0 else ""
        )
        with diskwrite.writing(
            f"the checkpoint of step {trainer.step}", self.directory, ["*_temp"], intact
        ):
            trainer.step_var.assign(trainer.step)
            self.manager.save(checkpoint_number=trainer.step)
        self.last_saved = trainer.step

    def restore(self, previous: str = "") -> bool:
        """Restore the latest checkpoint, if any; ``True`` when one was restored.

        ``previous`` is the run's earlier ``experiment.toml`` (its text), used to say which
        settings changed when the checkpoint does not fit this experiment.
        """
        self.note = ""
        candidates = list(reversed(self.source.checkpoints))  # newest first
        if not candidates:
            return False
        unreadable: list[str] = []
        for path in candidates:
            try:
                status = self.trainer.checkpoint.restore(path)
                # every object of the trainer must be in the checkpoint; what the checkpoint
                # holds beyond them (UNUSED) is left unread without a warning
                status.expect_partial().assert_existing_objects_matched()
            except Exception as exc:  # TF raises OpError, IndexError, ValueError, ...
                if checkpoint_readable(path) and isinstance(exc, AssertionError | ValueError):
                    raise HarnessError(self._mismatch(path, previous)) from None
                # a truncated or corrupt file: fall back to the next older checkpoint
                unreadable.append(f"{Path(path).name} ({type(exc).__name__})")
                continue
            self.trainer.step = self.last_saved = int(self.trainer.step_var.numpy())
            if unreadable:
                self.note = (
                    f"could not read {', '.join(unreadable)}; resumed from the older "
                    f"{Path(path).name} (the unreadable files are left in place)"
                )
            return True
        raise HarnessError(
            f"no checkpoint in {Path(candidates[0]).parent} can be read ({', '.join(unreadable)}). "
            "The files are left as they are; `harness run --fresh` starts over and moves them "
            "aside."
        )

    def _mismatch(self, path: str, previous: str) -> str:
        """Why checkpoint ``path`` does not fit: the objects that differ, not their values."""
        objects = self.trainer.objects
        saved = checkpoint_objects(path)
        missing = [n for n in objects if saved and n not in saved]
        extra = [n for n in saved if n not in objects and n not in UNUSED]
        differ = []
        for name, obj in objects.items():
            if name in missing:
                continue
            try:
                status = tf.train.Checkpoint(**{name: obj}).read(path).expect_partial()
                status.assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError):
                differ.append(name)
        parts = []
        if extra:
            parts.append(f"in the checkpoint, not in this experiment: {', '.join(extra)}")
        if missing:
            parts.append(f"in this experiment, not in the checkpoint: {', '.join(missing)}")
        if differ:
            parts.append(f"of another shape or structure: {', '.join(differ)}")
        exp = self.trainer.exp
        changed = changed_settings(previous, exp) if previous else []
        if changed:
            shown = ", ".join(changed[:8]) + (
                f" and {len(changed) - 8} more" if len(changed) > 8 else ""
            )
            parts.append(f"settings changed since the run was started: {shown}")
        return (
            f"checkpoint {path} was written by a different experiment "
            f"({'; '.join(parts) or 'its objects do not match'}). To start a new run from this "
            f"one's weights, give the experiment another [experiment] name and set [generator] "
            f'init = "{exp.run_dir}"; to start this run over, run with --fresh (it moves the old '
            "checkpoints aside)."
        )

    def write_final_models(self, run_dir: Path) -> Path:
        """Write ``generator.keras`` (the final generator) and ``discriminator.keras`` into
        ``run_dir`` atomically; the path of the generator."""
        trainer = self.trainer
        self.check_weights("before writing the final model")
        intact = f"the checkpoint of step {trainer.step} is intact"
        path = RunDir(run_dir).generator
        _save_model(trainer.final_generator, path, "the final generator", intact)
        if trainer.discriminator is not None:
            _save_model(
                trainer.discriminator, RunDir(run_dir).discriminator, "the discriminator", intact
            )
        return path


def _save_model(model: Any, path: Path, what: str, intact: str) -> None:
    with diskwrite.atomic(path, what, intact) as tmp:
        model.save(tmp)


def checkpoint_objects(path: str) -> list[str]:
    """The top-level object names saved in checkpoint ``path`` (``generator``, ...)."""
    try:
        reader = tf.train.load_checkpoint(path)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except Exception:  # an unreadable checkpoint: the caller says what does not match
        return []
    return [
        child.local_name for child in graph.nodes[0].children if child.local_name != "save_counter"
    ]


def changed_settings(previous_toml: str, exp: Experiment) -> list[str]:
    """Dotted keys whose values differ between a run's saved experiment and ``exp``."""
    try:
        before = flatten(tomllib.loads(previous_toml))
    except tomllib.TOMLDecodeError:
        return []
    now = exp.flat_params()
    keys = sorted(set(before) | set(now))
    out = []
    for key in keys:
        if key.startswith(("experiment.description", "train.quiet")):
            continue
        a, b = before.get(key), now.get(key)
        if a != b:
            out.append(
                f"{key} ({a if a is not None else 'unset'} -> {b if b is not None else 'unset'})"
            )
    return out


def move_aside(run_dir: Path) -> Path | None:
    """``--fresh``: move checkpoints, kept generators and the final model into
    ``<run_dir>/previous-<time>/`` (never deleted); ``None`` when there was nothing."""
    found = RunDir(run_dir).model_files()
    if not found:
        return None
    target = run_dir / time.strftime("previous-%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for path in found:
        os.replace(path, target / path.name)
    return target


__all__ = [
    "Checkpoints",
    "NonFiniteWeights",
    "changed_settings",
    "checkpoint_objects",
    "move_aside",
]
