"""A run directory's layout: the one place that names the files ``harness run`` writes.

``<experiment.runs_dir>/<experiment.name>/`` holds::

    experiment.toml      the resolved experiment (``harness show`` output)
    mlflow_run_id        the MLflow run id, so a resumed run continues the same MLflow run
    checkpoints/         tf.train.CheckpointManager files
    generator.keras      the final generator
    discriminator.keras  the final discriminator (runs with an [adversarial] table)
    best_<metric>.keras  a kept generator: the best by a validation metric
    kept.json            step and value of each kept generator

:class:`RunDir` is a frozen value over the folder's path; it reads small files (the run id,
the checkpoint state) but imports neither TensorFlow nor MLflow, so every wing may use it.
:func:`checkpoint_readable` and :func:`intact_checkpoint` are the one rule for a checkpoint
that cannot be read (truncated, zero-length, corrupt): it is skipped for the next older one, by
a resumed run and by every command that loads a model alike; they import TensorFlow when
called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

EXPERIMENT_FILE = "experiment.toml"
RUN_ID_FILE = "mlflow_run_id"
CHECKPOINTS = "checkpoints"
GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
KEPT_FILE = "kept.json"
KEPT_PREFIX = "best_"
MODEL_SUFFIX = ".keras"
FINAL = "generator"
"""The kept-generator name of the final generator (``runs/x@generator`` is ``runs/x``)."""

_CHECKPOINT_STATE = "checkpoint"  # the CheckpointManager's state file in checkpoints/
_LATEST = re.compile(r'^model_checkpoint_path:\s*"[^"]*?(\d+)"', re.M)


def kept_name(metric: str) -> str:
    """The kept generator of a validation metric: ``val/lpips`` or ``lpips`` -> ``best_lpips``."""
    return KEPT_PREFIX + metric.removeprefix("val/")


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (they need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def experiment_toml(self) -> Path:
        return self.path / EXPERIMENT_FILE

    @property
    def run_id_file(self) -> Path:
        return self.path / RUN_ID_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def generator(self) -> Path:
        return self.path / GENERATOR_FILE

    @property
    def discriminator(self) -> Path:
        return self.path / DISCRIMINATOR_FILE

    @property
    def kept_json(self) -> Path:
        return self.path / KEPT_FILE

    def kept(self, name: str) -> Path:
        """The file of the kept generator ``name`` (``best_lpips``; ``generator``: the final)."""
        return self.path / f"{name}{MODEL_SUFFIX}"

    def best(self, metric: str) -> Path:
        """``best_<metric>.keras``: the generator kept as the best by ``metric``."""
        return self.kept(kept_name(metric))

    def kept_names(self) -> list[str]:
        """The kept generators present (``best_lpips``, ...), sorted."""
        return sorted(p.stem for p in self.path.glob(f"{KEPT_PREFIX}*{MODEL_SUFFIX}"))

    def model_files(self) -> list[Path]:
        """What a run trained (``--fresh`` moves these aside): checkpoints, the final models,
        the kept generators and their record; those present."""
        fixed = [self.checkpoints, self.generator, self.discriminator, self.kept_json]
        return [p for p in fixed if p.exists()] + [self.kept(n) for n in self.kept_names()]

    def read_run_id(self) -> str:
        """The MLflow run id the run logged to ("" when it has none)."""
        try:
            return self.run_id_file.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, read from the checkpoint state file (``None``
        when there is none)."""
        try:
            text = (self.checkpoints / _CHECKPOINT_STATE).read_text(encoding="utf-8")
        except OSError:
            return None
        match = _LATEST.search(text)
        return int(match.group(1)) if match else None

    def is_run(self) -> bool:
        """Whether the folder is a run directory: it holds an experiment, a run id, a final
        generator or checkpoints."""
        return (
            self.experiment_toml.is_file()
            or self.run_id_file.is_file()
            or self.generator.is_file()
            or self.checkpoints.is_dir()
        )

    @classmethod
    def enclosing(cls, path: str | Path) -> RunDir | None:
        """The run directory ``path`` is or lies in (``runs/x``, ``runs/x/generator.keras``,
        ``runs/x/checkpoints/ckpt-3``), or ``None``."""
        path = Path(path).expanduser()
        for candidate in (path, *path.parents):
            run = cls(candidate)
            if candidate.is_dir() and run.is_run():
                return run
            if candidate == Path(candidate.anchor) or str(candidate) in ("", "."):
                break
        return None


def checkpoint_readable(prefix: str | Path) -> bool:
    """Whether every variable of checkpoint ``prefix`` can be read (not truncated or corrupt)."""
    import tensorflow as tf  # heavy: only reading a checkpoint's variables needs it

    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # DataLossError, NotFoundError, OutOfRangeError, IndexError, ...
        return False
    return True


def intact_checkpoint(directory: str | Path) -> tuple[str | None, list[str]]:
    """The newest readable checkpoint of the CheckpointManager folder ``directory`` and the
    names of the newer ones skipped as unreadable (``None`` when none can be read)."""
    import tensorflow as tf  # heavy: the checkpoint state and variables are TensorFlow's

    state = tf.train.get_checkpoint_state(str(directory))
    prefixes = list(state.all_model_checkpoint_paths) if state else []
    if state and state.model_checkpoint_path and state.model_checkpoint_path not in prefixes:
        prefixes.append(state.model_checkpoint_path)
    skipped = []
    for prefix in reversed(prefixes):  # newest first
        path = Path(directory) / prefix if not Path(prefix).is_absolute() else Path(prefix)
        if checkpoint_readable(path):
            return str(path), skipped
        skipped.append(path.name)
    return None, skipped


__all__ = [
    "CHECKPOINTS",
    "DISCRIMINATOR_FILE",
    "EXPERIMENT_FILE",
    "FINAL",
    "GENERATOR_FILE",
    "KEPT_FILE",
    "KEPT_PREFIX",
    "MODEL_SUFFIX",
    "RUN_ID_FILE",
    "RunDir",
    "checkpoint_readable",
    "intact_checkpoint",
    "kept_name",
]
