"""Hyperparameter sweeps: an Optuna study whose trials are training runs (``harness sweep``).

- :mod:`~harness.sweep.plan`: objectives, the checked :class:`Plan`, the search space.
- :mod:`~harness.sweep.storage`: the study in its RDB storage; which trials count, which are
  lost and run again.
- :mod:`~harness.sweep.worker`: one worker's ``study.optimize`` loop, a child process a trial.
- :mod:`~harness.sweep.trial`: the child process that trains one trial.
- :mod:`~harness.sweep.parent`: the MLflow parent run, best trials, plots, links to MLflow.
- :mod:`~harness.sweep.artifacts`: each trial's sample grid as an Optuna artifact.
- :mod:`~harness.sweep.preferential`: people rank the grids in optuna-dashboard.
- :mod:`~harness.sweep.show`: the ``--show`` table.

See docs/sweeps.md.
"""

from __future__ import annotations

from harness.sweep.artifacts import GRID_ATTR, artifact_dir
from harness.sweep.parent import ParentRun, best_trials, save_plots
from harness.sweep.plan import (
    DEFAULT_OBJECTIVE,
    DEFAULT_STORAGE,
    Objective,
    Plan,
    SweepError,
    distributions,
    grace_period,
    grid,
    make_pruner,
    make_sampler,
    plan,
    redact,
)
from harness.sweep.show import show
from harness.sweep.storage import (
    ERROR_ATTR,
    INTERRUPTED_ATTR,
    PARENT_ATTR,
    RETRY_ATTR,
    RUN_ATTR,
    RUN_URL_ATTR,
    WORKER_ATTR,
    counts,
    fail_lost_trials,
    open_storage,
    open_study,
    surplus,
    worker_id,
)
from harness.sweep.worker import SweepResult, run

__all__ = [
    "DEFAULT_OBJECTIVE",
    "DEFAULT_STORAGE",
    "ERROR_ATTR",
    "GRID_ATTR",
    "INTERRUPTED_ATTR",
    "PARENT_ATTR",
    "RETRY_ATTR",
    "RUN_ATTR",
    "RUN_URL_ATTR",
    "WORKER_ATTR",
    "Objective",
    "ParentRun",
    "Plan",
    "artifact_dir",
    "SweepError",
    "SweepResult",
    "best_trials",
    "counts",
    "distributions",
    "fail_lost_trials",
    "grace_period",
    "grid",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "open_study",
    "plan",
    "redact",
    "run",
    "save_plots",
    "show",
    "surplus",
    "worker_id",
]
