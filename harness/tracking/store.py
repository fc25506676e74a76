"""The MLflow store: URIs, clients, tags and the calls that write to an existing run."""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import (
    Metric,
    Param,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from harness.config import Experiment
from harness.errors import HarnessError, HarnessWarning

DEFAULT_URI = "sqlite:///mlflow.db"
PARENT_TAG = "mlflow.parentRunId"
RESUMED_FROM_TAG = "harness.resumed_from_run"
"""Set on a new run that continues a checkpoint whose MLflow run is gone (the old run id)."""
ERROR_TAG = "error"
GROUP_TAG = "harness.group"
"""The experiment a replicate run belongs to (``[experiment] group``, set by ``harness compare
--seeds``): a report shows the runs of one group as their mean and spread."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""MLflow 3's UI opens an experiment on its model-training pages when this tag is
``custom_model_development`` (its GenAI pages otherwise)."""
DESCRIPTION_TAG = "mlflow.note.content"
"""What MLflow's UI shows as the description of an experiment, a run or a logged model."""
SYSTEM_METRICS_INTERVAL = 10.0
"""Seconds between system metric samples; ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` overrides."""
MAX_BATCH = 100  # MLflow accepts at most 100 params per log_batch call


class TrackingError(HarnessError):
    """The MLflow store cannot be reached or refuses a run."""


class TrackingWarning(HarnessWarning):
    """Tracking goes on, but not where the run's history says it should."""


def resolve_uri(uri: str | None = None) -> str:
    """The one place a tracking URI is resolved: ``uri`` (``[tracking].uri``, ``--tracking``)
    when given, else ``$MLFLOW_TRACKING_URI``, else :data:`DEFAULT_URI`; a PostgreSQL URL gets
    a driver that is installed (:func:`database_url`)."""
    return database_url(uri or os.environ.get("MLFLOW_TRACKING_URI", "") or DEFAULT_URI)


def tracking_uri(exp: Experiment) -> str:
    """The tracking URI this experiment logs to."""
    return resolve_uri(exp.tracking.uri)


def database_url(url: str) -> str:
    """``url`` with a PostgreSQL driver that is installed.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; the ``postgres`` extra installs
    psycopg2-binary, so without psycopg 3 the URL is sent to psycopg2.
    """
    if not url.startswith(("postgresql://", "postgres://")):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def client(uri: str) -> MlflowClient:
    """A client of the store ``uri`` (its model registry too, unless ``MLFLOW_REGISTRY_URI``
    names another)."""
    return MlflowClient(tracking_uri=uri)


def log_table(client: MlflowClient, run_id: str, table: Mapping[str, Sequence], name: str) -> None:
    """A table (column -> values) logged to a run as MLflow's table artifact ``name`` (a
    ``.json``): the UI shows it, and ``mlflow.load_table(name, run_ids=[run_id])`` reads it."""
    client.log_table(run_id, data={k: list(v) for k, v in table.items()}, artifact_file=name)


def experiment_name(exp: Experiment) -> str:
    """The MLflow experiment runs of ``exp`` are grouped under."""
    return exp.tracking.experiment or exp.experiment.name


def run_is_active(exp: Experiment, run_id: str | None) -> bool:
    """Whether the store of ``exp`` holds ``run_id`` as an active (not deleted) run."""
    if not run_id:
        return False
    try:
        run = client(tracking_uri(exp)).get_run(run_id)
    except (MlflowException, ValueError):
        return False
    return run.info.lifecycle_stage == "active"


def annotate_run(
    exp: Experiment,
    run_id: str,
    *,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    files: Mapping[str | Path, str | None] | None = None,
) -> None:
    """Add tags, new parameters and files (``path -> artifact folder``) to a run of ``exp``'s
    store, leaving its status as it is (a sweep's finished trial runs)."""
    store = client(tracking_uri(exp))
    batch_tags = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
    batch_params = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
    for i in range(0, max(len(batch_params), 1), MAX_BATCH):
        store.log_batch(
            run_id, params=batch_params[i : i + MAX_BATCH], tags=batch_tags if i == 0 else []
        )
    for path, folder in (files or {}).items():
        store.log_artifact(run_id, str(path), folder)


def log_run_metrics(uri: str, run_id: str, metrics: Mapping[str, float], step: int = 0) -> int:
    """Log the finite ``metrics`` to the existing run ``run_id`` of the store ``uri`` (an
    evaluation of its model: ``eval/<data set>/<measure>``), leaving its status as it is; how
    many were logged. Raises :class:`MlflowException` when the store does not have the run."""
    store = client(uri)
    store.get_run(run_id)
    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if math.isfinite(v)]
    for i in range(0, len(batch), MAX_BATCH * 10):
        store.log_batch(run_id, metrics=batch[i : i + MAX_BATCH * 10])
    return len(batch)
