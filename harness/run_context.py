"""What a run records about where it came from, and where to look at it.

The run's context as MLflow's own tags (description, user, source file, git commit), an image
folder as an MLflow dataset (metadata only), and the command and URL that open MLflow's UI on
a run in its model-training view. :mod:`harness.tracking` logs them.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import shlex
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset

from harness.config import Experiment

UI_QUERY = "workflowType=machine_learning"
"""The query that opens MLflow 3's UI in its model-training view."""


def ui_command(uri: str) -> str:
    """The shell command that opens MLflow's UI on the store ``uri`` (``mlflow ui
    --backend-store-uri ...``); ``""`` for a tracking server, which serves its own UI."""
    if uri.startswith(("http://", "https://")):
        return ""
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)}"


DEFAULT_UI = "http://127.0.0.1:5000"
"""Where ``mlflow ui`` serves by default."""
UI_ENV = "HARNESS_MLFLOW_UI"
"""The MLflow UI's address where it is neither the tracking server nor :data:`DEFAULT_UI`."""


def ui_address(uri: str) -> str:
    """The MLflow UI's address for the store ``uri``: ``$HARNESS_MLFLOW_UI``, else the tracking
    server when ``uri`` is one, else ``mlflow ui``'s default (:data:`DEFAULT_UI`)."""
    address = os.environ.get(UI_ENV, "")
    if not address and uri.startswith(("http://", "https://")):
        address = uri
    return (address or DEFAULT_UI).rstrip("/")


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in MLflow's UI (:func:`ui_address`), in its model-training view."""
    return f"{ui_address(uri)}/#/experiments/{experiment_id}/runs/{run_id}?{UI_QUERY}"


def experiment_url(uri: str, experiment_id: str) -> str:
    """The experiment's runs table in MLflow's UI (:func:`ui_address`), model-training view."""
    return f"{ui_address(uri)}/#/experiments/{experiment_id}/runs?{UI_QUERY}"


def git_commit(path: str | Path) -> str:
    """The commit checked out where ``path`` (a file or folder) lies, or ``""`` outside a git
    checkout (or without git)."""
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) in (40, 64) else ""


def run_context_tags(exp: Experiment) -> dict[str, str]:
    """MLflow's run-context tags for ``exp``: its description, the user, the experiment file as
    the run's source and, when that file is in a git checkout, the commit."""
    tags = {"mlflow.source.type": "LOCAL"}
    if exp.experiment.description:
        tags["mlflow.note.content"] = exp.experiment.description
    with contextlib.suppress(KeyError, OSError):  # no user name for this uid (some containers)
        tags["mlflow.user"] = getpass.getuser()
    if exp.source:
        source = Path(exp.source)
        tags["mlflow.source.name"] = str(source.resolve()) if source.exists() else exp.source
        if source.exists() and (commit := git_commit(source)):
            tags["mlflow.source.git.commit"] = commit
    return tags


def experiment_description(exp: Experiment) -> str:
    """The MLflow experiment's description (MLflow's UI lists it beside the experiment): what
    its runs are and what each one logs."""
    said = exp.experiment.description.strip()
    return (
        f"Training runs of the srgan-harness experiment {exp.experiment.name} "
        f"(x{exp.data.scale} super-resolution){': ' + said if said else ''}. Each run logs "
        "its losses, validation PSNR-Y and SSIM-Y beside bicubic's (val/...), sample grids, "
        "console.log and the generator as an MLflow model: float32 NHWC RGB in [0, 1] in, "
        f"{exp.data.scale} times larger out. `harness evaluate` and `harness report` add "
        "eval/<data set>/<measure> metrics to the runs they score."
    )


def image_folder_dataset(
    name: str, folder: str | Path, files: Sequence[Path], context: str = ""
) -> Any:
    """An MLflow dataset (metadata only) for an image folder: ``name``, the folder as its
    source, a digest of its file list (names and sizes) and ``context`` and the number of images
    as its profile. The context is in the digest because MLflow records a dataset once per run:
    a folder that both trains and validates is two datasets of the run."""
    digest = hashlib.sha256(f"{context}\n".encode())
    for path in sorted(files):
        digest.update(f"{Path(path).name}\0{Path(path).stat().st_size}\n".encode())

    class ImageFolder(MetaDataset):
        @property
        def profile(self) -> dict[str, int]:
            return {"num_images": len(files)}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    with warnings.catch_warnings():  # MLflow registers the local file source twice
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(Path(folder).resolve()))
    return ImageFolder(source, name=name, digest=digest.hexdigest()[:16])


__all__ = [
    "DEFAULT_UI",
    "UI_ENV",
    "UI_QUERY",
    "experiment_url",
    "experiment_description",
    "git_commit",
    "image_folder_dataset",
    "run_context_tags",
    "run_url",
    "ui_address",
    "ui_command",
]
