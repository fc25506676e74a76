"""Model references: every form a command takes for a trained model, parsed into one value.

:func:`parse_reference` turns the text a user writes into a :class:`ModelRef` whose ``kind`` is
one of :data:`KINDS`. Parsing imports neither TensorFlow nor MLflow: it reads the text and
looks at the file system (what exists, what a folder holds). Loading what a reference names
stays with its users (:mod:`harness.deploy.models`, :mod:`harness.training.warmstart`,
:mod:`harness.evaluation.runs`, :mod:`harness.evaluation.suite`), which all take the parsed
value.

An MLflow run id is 32 lowercase hex digits (:data:`RUN_ID`, what MLflow generates), both as a
bare reference and inside ``runs:/<run id>/<path>``; a ``runs:/`` URI with any other id is
refused with a message, not passed on to MLflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.rundir import RunDir

BICUBIC = "bicubic"  # the bicubic baseline (``harness evaluate`` only)
RUN = "run"  # a run directory: runs/x
KEPT = "kept"  # a generator a run kept: runs/x@best_lpips (@generator: the final one)
CHECKPOINT = "checkpoint"  # a checkpoints/ folder, or a prefix such as runs/x/checkpoints/ckpt-3
KERAS = "keras"  # a .keras file
SAVED_MODEL = "saved_model"  # a folder written by `harness export`
MLFLOW_FOLDER = "mlflow_folder"  # a local MLflow model folder (holding MLmodel)
MLFLOW_RUN = "mlflow_run"  # runs:/<run id>/<path>, or a bare run id (its logged generator)
REGISTERED = "registered"  # models:/<name>@<alias>, models:/<name>/<version>, models:/<id>
URI = "uri"  # another URI MLflow resolves (mlflow-artifacts:/..., s3://..., file://...)
FILE = "file"  # an existing file that is no model
FOLDER = "folder"  # an existing folder that is none of the above
MISSING = "missing"  # a path that does not exist (yet)
KINDS = (
    BICUBIC,
    RUN,
    KEPT,
    CHECKPOINT,
    KERAS,
    SAVED_MODEL,
    MLFLOW_FOLDER,
    MLFLOW_RUN,
    REGISTERED,
    URI,
    FILE,
    FOLDER,
    MISSING,
)
MLFLOW_KINDS = frozenset({MLFLOW_FOLDER, MLFLOW_RUN, REGISTERED, URI})
"""The kinds MLflow loads (:attr:`ModelRef.uri`)."""

RUN_ID = re.compile(r"[0-9a-f]{32}")
"""An MLflow run id (use ``fullmatch``)."""
MLFLOW_MODEL = "generator"
"""The artifact path of the generator a run logs as an MLflow model (``runs:/<id>/generator``)."""
KEPT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:/")
_DRIVE = re.compile(r"^[a-zA-Z]:[\\/]")

ACCEPTED = (
    "a run directory (holding generator.keras, or experiment.toml and checkpoints/); "
    "a checkpoints/ directory or a checkpoint prefix such as runs/x/checkpoints/ckpt-12; "
    "a run directory with @best_psnr_y (or another kept generator: @best_lpips, @generator); "
    "a .keras file; a SavedModel directory from `harness export`; "
    "an MLflow model URI (runs:/<run_id>/generator, models:/<name>/<version>, "
    "models:/<name>@<alias>, models:/<id>), "
    "a local MLflow model folder (holding MLmodel), or a bare MLflow run id"
)
"""Every form of model reference, for error messages and help texts."""


class ModelReferenceError(HarnessError):
    """A model reference cannot be parsed, resolved or loaded."""


def bad_reference(ref: object, why: str) -> ModelReferenceError:
    """The one error for a reference: what it was, why it fails and the forms accepted."""
    return ModelReferenceError(f'cannot load a model from "{ref}": {why}. Accepted: {ACCEPTED}.')


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference. ``text`` is what was written (``str()`` gives it back).

    ``path``: the local file or folder (for :data:`KEPT`, the run directory before ``@``);
    ``name``: the kept generator (:data:`KEPT`), the registered model (:data:`REGISTERED`) or
    the artifact path after the run id (``runs:/`` URIs);
    ``run_id``: the MLflow run (:data:`MLFLOW_RUN`); ``uri``: what MLflow loads
    (:data:`MLFLOW_KINDS`); ``version``/``alias``: of a registered model.
    """

    text: str
    kind: str
    path: Path | None = None
    name: str = ""
    run_id: str = ""
    uri: str = ""
    version: str = ""
    alias: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def base(self) -> str:
        """The text before ``@<kept generator>`` (the whole text for other kinds)."""
        return self.text.rpartition("@")[0] if self.kind == KEPT else self.text

    @property
    def is_mlflow(self) -> bool:
        return self.kind in MLFLOW_KINDS

    @property
    def run(self) -> RunDir | None:
        """The run directory the reference lies in (``runs/x``, ``runs/x@best_lpips``,
        ``runs/x/generator.keras``, ``runs/x/checkpoints/ckpt-3``), or ``None``."""
        if self.path is None or self.kind == MLFLOW_FOLDER:
            return None
        return RunDir.enclosing(self.path)

    @property
    def run_path(self) -> Path | None:
        """The run directory it names when there is one, else its local path as written
        (a run that does not exist yet); ``None`` for MLflow references."""
        run = self.run
        return run.path if run is not None else self.path


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI (``runs:/``, ``models:/``, ``s3://``...), not a local path."""
    return bool(_SCHEME.match(text)) and not _DRIVE.match(text)


def parse_reference(text: str | Path | ModelRef, *, bicubic: bool = False) -> ModelRef:
    """The :class:`ModelRef` ``text`` names; ``bicubic=True`` where a command accepts
    ``bicubic``. A path that does not exist parses (as :data:`MISSING`, or :data:`KEPT` with
    ``@``): whoever loads it says what is missing. Raises :class:`ModelReferenceError` for an
    empty text and for a malformed MLflow URI."""
    if isinstance(text, ModelRef):
        return text
    text = str(text)
    if not text.strip():
        raise bad_reference(text, "the reference is empty")
    if bicubic and text == BICUBIC:
        return ModelRef(text, BICUBIC)
    if is_uri(text):
        return _parse_uri(text)
    path = Path(text).expanduser()
    if path.exists():
        kind = _path_kind(path)
        return ModelRef(text, kind, path, uri=str(path) if kind == MLFLOW_FOLDER else "")
    if Path(f"{path}.index").is_file():
        return ModelRef(text, CHECKPOINT, path)
    base, at, name = text.rpartition("@")
    if at and base and KEPT_NAME.fullmatch(name):
        return ModelRef(text, KEPT, Path(base).expanduser(), name=name)
    if RUN_ID.fullmatch(text):
        return ModelRef(text, MLFLOW_RUN, run_id=text, uri=f"runs:/{text}/{MLFLOW_MODEL}")
    return ModelRef(text, MISSING, path)


def _path_kind(path: Path) -> str:
    if path.is_file():
        return KERAS if path.suffix == ".keras" else FILE
    if (path / "saved_model.pb").is_file():
        return SAVED_MODEL
    if (path / "MLmodel").is_file():
        return MLFLOW_FOLDER
    if RunDir(path).is_run():
        return RUN
    if (path / "checkpoint").is_file():  # the CheckpointManager's state file
        return CHECKPOINT
    return FOLDER


def _parse_uri(text: str) -> ModelRef:
    if text.startswith("runs:/"):
        run_id, _, artifact = text.removeprefix("runs:/").partition("/")
        if not RUN_ID.fullmatch(run_id):
            raise bad_reference(
                text,
                f'"{run_id}" is not an MLflow run id (32 lowercase hex digits, as the MLflow UI '
                f"shows it): write runs:/<run id>/{MLFLOW_MODEL}",
            )
        return ModelRef(text, MLFLOW_RUN, run_id=run_id, uri=text, name=artifact)
    if text.startswith("models:/"):
        rest = text.removeprefix("models:/")
        name, at, alias = rest.partition("@")
        if at:
            version = ""
        else:
            name, _, version = rest.partition("/")
        if not name or (at and not alias) or ("/" in rest and not at and not version):
            raise bad_reference(
                text,
                "a registered model is models:/<name>@<alias> or models:/<name>/<version> "
                "(or models:/<model id>)",
            )
        return ModelRef(text, REGISTERED, name=name, uri=text, version=version, alias=alias)
    return ModelRef(text, URI, uri=text)


__all__ = [
    "ACCEPTED",
    "BICUBIC",
    "CHECKPOINT",
    "FILE",
    "FOLDER",
    "KEPT",
    "KERAS",
    "KINDS",
    "MISSING",
    "MLFLOW_FOLDER",
    "MLFLOW_KINDS",
    "MLFLOW_MODEL",
    "MLFLOW_RUN",
    "REGISTERED",
    "RUN",
    "RUN_ID",
    "SAVED_MODEL",
    "URI",
    "ModelRef",
    "ModelReferenceError",
    "bad_reference",
    "is_uri",
    "parse_reference",
]
