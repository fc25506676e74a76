"""Each trial's last validation sample grid as an Optuna artifact, so people compare trials by eye
in optuna-dashboard (``optuna-dashboard STORAGE --artifact-dir <study folder>/artifacts``).

The grid is a PNG the trial's training wrote: under ``<run dir>/samples/`` when the run directory
keeps them, else the run's MLflow artifacts whose path names a sample (``samples/step_<N>.png``,
or what ``mlflow.log_image`` writes). The one of the latest step is uploaded to a
``FileSystemArtifactStore`` under the study's folder; the trial's user attribute
``sample_grid`` holds its artifact id (what the preferential feedback page shows).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import optuna
from optuna.artifacts import FileSystemArtifactStore

from harness import tracking

if TYPE_CHECKING:
    from harness.config import Experiment
    from harness.sweep.plan import Plan

GRID_ATTR = "sample_grid"  # trial user attribute: the artifact id of its last sample grid
ARTIFACTS = "artifacts"  # the artifact store's folder under the study's folder
_STEP = re.compile(r"step\D{0,3}0*(\d+)", re.IGNORECASE)


def artifact_dir(p: Plan) -> Path:
    """The study's artifact store folder: ``<runs_dir>/<experiment>/<study>/artifacts``."""
    return (p.trial_root / ARTIFACTS).resolve()


def artifact_store(p: Plan) -> Any:
    """Optuna's file-system artifact store for the study (the folder is created)."""
    folder = artifact_dir(p)
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def _order(path: Path) -> tuple[int, str]:
    """Sort key of a grid: its step (``step_40``, ``step%000040``, else its last number)."""
    found = _STEP.search(path.name) or re.search(r"(\d+)(?!.*\d)", path.stem)
    return (int(found.group(1)) if found else -1, path.name)


def local_grids(run_dir: Path) -> list[Path]:
    """The sample grid PNGs a run directory keeps (any depth under ``samples/``), by step."""
    folder = run_dir / "samples"
    found = list(folder.rglob("*.png")) if folder.is_dir() else []
    return sorted(found, key=_order)


def _mlflow_grid(exp: Experiment, run_id: str, dst: Path) -> Path | None:
    """The latest sample grid among the run's MLflow artifacts, downloaded into ``dst``."""
    uri = tracking.tracking_uri(exp)
    client = tracking.client(uri)
    pngs: list[str] = []
    folders = [None]
    while folders:
        for item in client.list_artifacts(run_id, folders.pop()):
            if item.is_dir:
                folders.append(item.path)
            elif item.path.lower().endswith(".png") and "sample" in item.path.lower():
                pngs.append(item.path)
    if not pngs:
        return None
    latest = max(pngs, key=lambda path: _order(Path(path)))
    bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # one small file: no bar
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=latest, dst_path=str(dst), tracking_uri=uri
        )
    finally:
        if bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar
    return Path(local)


def upload_grid(p: Plan, trial: optuna.Trial, run_dir: Path, run_id: str = "") -> str | None:
    """Upload the trial's latest sample grid as an artifact of ``trial`` (still running) and
    record its id as the ``sample_grid`` user attribute; ``None`` when the run made none."""
    with tempfile.TemporaryDirectory() as tmp:
        grids = local_grids(run_dir)
        grid = grids[-1] if grids else (_mlflow_grid(p.exp, run_id, Path(tmp)) if run_id else None)
        if grid is None:
            return None
        named = Path(tmp) / f"trial_{trial.number:04d}_{grid.name}"
        shutil.copyfile(grid, named)
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=artifact_store(p), file_path=str(named), study_or_trial=trial
        )
    trial.set_user_attr(GRID_ATTR, artifact_id)
    return artifact_id
