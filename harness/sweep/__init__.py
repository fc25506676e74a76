"""Hyperparameter sweeps: an Optuna study whose trials are training runs (``harness sweep``).

- :mod:`~harness.sweep.plan`: objectives, the checked :class:`Plan`, the search space.
- :mod:`~harness.sweep.storage`: the study in its RDB storage; which trials count, which are
  lost (Optuna's heartbeat) and run again, when a worker stops (the study's size).
- :mod:`~harness.sweep.objective`: one trial of either mode, trained in its own process.
- :mod:`~harness.sweep.worker`: the optimising mode, one worker's ``study.optimize``.
- :mod:`~harness.sweep.trial`: the child process that trains one trial.
- :mod:`~harness.sweep.parent`: the MLflow parent run, best trials, plots, links to MLflow.
- :mod:`~harness.sweep.artifacts`: each trial's sample grid as an Optuna artifact.
- :mod:`~harness.sweep.preferential`: people rank the grids in optuna-dashboard.
- :mod:`~harness.sweep.show`: the ``--show`` table.

See docs/sweeps.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.sweep import preferential, worker
from harness.sweep.artifacts import GRID_ATTR, artifact_dir
from harness.sweep.parent import ParentRun, best_trials, save_plots
from harness.sweep.plan import (
    DEFAULT_OBJECTIVE,
    DEFAULT_STORAGE,
    Objective,
    Plan,
    SweepError,
    SweepResult,
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
    RetryLost,
    StudySize,
    counts,
    open_storage,
    open_study,
    surplus,
    worker_id,
)


def run(p: Plan, echo: Callable[[str], Any] = print) -> SweepResult:
    """Run ``p``'s sweep in its mode: optimising (:mod:`~harness.sweep.worker`) or
    preferential (:mod:`~harness.sweep.preferential`)."""
    if p.sweep.mode == "preferential":
        return preferential.run(p, echo)
    return worker.run(p, echo)


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
    "RetryLost",
    "StudySize",
    "artifact_dir",
    "SweepError",
    "SweepResult",
    "best_trials",
    "counts",
    "distributions",
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
