"""MLflow tracking for training runs.

Where runs go: ``[tracking].uri`` if set, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` in the working directory (browse it with
``mlflow ui --backend-store-uri sqlite:///mlflow.db``). The MLflow experiment is
``[tracking].experiment`` or the experiment's name.

Names (see docs/architecture.md): parameters are the dotted keys of ``Experiment.flat_params()``;
metrics ``loss/<term>``, ``weight/<term>``, ``loss/d``, ``loss/g_total``, ``train/img_per_s``,
``train/learning_rate``, ``val/<metric>``, ``val/bicubic_<metric>``; MLflow's ``system/...``
metrics (CPU, memory, GPU) unless ``[tracking] system_metrics = false``; the sample grids as the
stepped image ``samples`` (:meth:`Tracker.log_image`); the data folders as dataset inputs
(``training``, ``validation``); artifacts ``experiment.toml``, ``console.log`` and the
generator as an MLflow model named ``generator``; ``eval/<data set>/<measure>`` metrics added
by evaluations (:func:`log_run_metrics`). The experiment gets a description
(:func:`harness.run_context.experiment_description`). Tags: ``mlflow.note.content``
(``[experiment] description``), ``mlflow.user``, ``mlflow.source.name`` (the experiment
file) and ``mlflow.source.git.commit`` when that file is in a git checkout.

This module is the only one that builds an :class:`MlflowClient` (:func:`client`), and every
call names its store: nothing here sets MLflow's process-wide tracking URI, so runs of several
stores can be read and written in one process.
"""

from harness.tracking.store import (
    DEFAULT_URI,
    DESCRIPTION_TAG,
    ERROR_TAG,
    EXPERIMENT_KIND_TAG,
    GROUP_TAG,
    MAX_BATCH,
    PARENT_TAG,
    RESUMED_FROM_TAG,
    SYSTEM_METRICS_INTERVAL,
    TrackingError,
    TrackingWarning,
    annotate_run,
    client,
    database_url,
    experiment_name,
    log_run_metrics,
    log_table,
    resolve_uri,
    run_is_active,
    tracking_uri,
)
from harness.tracking.tracker import Tracker

__all__ = [
    "DEFAULT_URI",
    "DESCRIPTION_TAG",
    "ERROR_TAG",
    "EXPERIMENT_KIND_TAG",
    "GROUP_TAG",
    "MAX_BATCH",
    "PARENT_TAG",
    "RESUMED_FROM_TAG",
    "SYSTEM_METRICS_INTERVAL",
    "Tracker",
    "TrackingError",
    "TrackingWarning",
    "annotate_run",
    "client",
    "database_url",
    "experiment_name",
    "log_run_metrics",
    "log_table",
    "resolve_uri",
    "run_is_active",
    "tracking_uri",
]
