"""A generator as a logged MLflow model, and registering it (``[tracking] register``).

The logged model is an ``mlflow.pyfunc`` model with the contract of every other serving path:
float32 NHWC LR in ``[0, 1]`` -> float32 NHWC SR in ``[0, 1]`` (``harness export``'s SavedModel,
``harness serve``, the docs). Its artifacts are that SavedModel (what ``mlflow models serve``
runs, through :mod:`harness.deploy.mlflow_pyfunc`) and the generator's ``generator.keras``
(what harness loads back as a generator: warm starts, ``harness export``).

Why not ``mlflow.keras`` or ``mlflow.tensorflow``: both log the raw generator, whose output is
``[-1, 1]``, and deserializing it needs the plugin packages that define its layers. The
SavedModel needs only TensorFlow. The requirements pin what PyPI has (tensorflow, keras, mlflow,
numpy at the versions that trained the model), never srgan-harness, so every env manager
(``local``, ``virtualenv``, ``uv``, ``conda``) can build the serving environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import Schema, TensorSpec

from harness.errors import HarnessError
from harness.rundir import GENERATOR_FILE

SAVED_MODEL = "saved_model"
"""The artifact key of the SavedModel folder (also in :mod:`harness.deploy.mlflow_pyfunc`)."""
GENERATOR = "generator"
"""The artifact key of the ``.keras`` generator inside a logged model."""
LOADER = Path(__file__).with_name("mlflow_pyfunc.py")
RANGE_RULE = Path(__file__).with_name("lr_range.py")
"""The input rule the loader imports, shipped as the model's code (harness is not installed
where ``mlflow models serve`` runs)."""


class RegistrationError(HarnessError):
    """The model registry refused a version or an alias."""


def requirements() -> list[str]:
    """pip requirements that exist on PyPI: the versions this process runs."""
    import keras  # TensorFlow and Keras: only a process that logs a model has them loaded
    import tensorflow as tf  # as above

    return [
        f"tensorflow=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
    ]


DESCRIPTION_TAG = "mlflow.note.content"
"""The tag MLflow's UI shows as a description (of a run, an experiment or a logged model)."""


def model_description(model: Any, name: str, step: int) -> str:
    """What a logged generator is and how to call it (its I/O contract), for MLflow's UI."""
    probe = np.zeros((1, 8, 8, 3), np.float32)
    try:  # the generator's own answer: a fully convolutional model's shapes do not say it
        scale = int(np.shape(model(probe))[1]) // 8
    except Exception:  # noqa: BLE001 - a description without the factor
        scale = 0
    times = f"{scale} times" if scale else "a whole multiple of"
    return (
        f"{name} of this run at step {step}: a super-resolution generator. Input: a float32 "
        "NHWC batch of RGB low-resolution images in [0, 1], any height and width. Output: "
        f"float32 NHWC RGB in [0, 1], {times} the input's height and width. Serve it with "
        "`mlflow models serve -m models:/<model id>` or `harness serve`; `harness export` makes "
        "a SavedModel or ONNX file with the same contract."
    )


def log_generator(client: Any, run_id: str, model: Any, step: int, name: str = "generator") -> str:
    """Log ``model`` (a generator) in run ``run_id`` as the MLflow model ``name``; its URI.
    Its description (:func:`model_description`) states its input and output.

    The signature takes any batch of any size, ``(-1, -1, -1, 3)`` float32 in ``[0, 1]``, and
    returns the same shape ``scale`` times larger in ``[0, 1]``; an 8x8 grey input example is
    recorded. Requirements are given explicitly so MLflow does not spend a subprocess
    inferring them.

    Every step goes through ``client``, the steps of ``Model.log`` (``mlflow.pyfunc.log_model``)
    without its fluent parts: ``Model.log`` reads MLflow's process-wide tracking URI (and marks
    the model ready through it), so it would need that URI switched to the run's store. The
    model is saved with ``mlflow.pyfunc.save_model``, its artifacts uploaded to the logged model,
    the run's metrics of ``step`` linked to it and it is marked ready.
    """
    from harness.deploy.export import export_saved_model  # TensorFlow
    from harness.deploy.precision import with_precision  # Keras

    model = with_precision(model)  # served in float32 whatever it trained in
    spec = TensorSpec(np.dtype(np.float32), (-1, -1, -1, 3))
    signature = ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))
    example = np.full((1, 8, 8, 3), 0.5, np.float32)
    # Created in the run's MLflow experiment (MLflow would otherwise file it under the caller's
    # active experiment).
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        params=dict(run.data.params),
        tags={DESCRIPTION_TAG: model_description(model, name, step)},
    )
    try:
        with tempfile.TemporaryDirectory() as tmp, _quiet_mlflow():
            saved = export_saved_model(model, Path(tmp) / SAVED_MODEL)
            keras_file = Path(tmp) / GENERATOR_FILE
            model.save(keras_file)
            meta = Model(
                artifact_path=logged.artifact_location,
                run_id=run_id,
                model_uuid=logged.model_id,
                model_id=logged.model_id,
            )
            folder = Path(tmp) / "model"
            mlflow.pyfunc.save_model(
                path=str(folder),
                python_model=str(LOADER),
                artifacts={SAVED_MODEL: str(saved), GENERATOR: str(keras_file)},
                code_paths=[str(RANGE_RULE)],
                signature=signature,
                input_example=example,
                pip_requirements=requirements(),
                mlflow_model=meta,
            )
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=int(step))])
            _link_metrics(client, run_id, logged.model_id, int(step))
            client.log_model_artifacts(logged.model_id, str(folder))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return f"models:/{logged.model_id}"


def _link_metrics(client: Any, run_id: str, model_id: str, step: int) -> None:
    """The run's metrics logged at ``step`` also recorded as the model's (what ``Model.log``
    does; MLflow's UI shows them on the model's page)."""
    points = [
        Metric(m.key, m.value, m.timestamp, m.step, run_id=run_id, model_id=model_id)
        for key in client.get_run(run_id).data.metrics
        for m in client.get_metric_history(run_id, key)
        if m.step == step and m.model_id is None
    ]
    if points:
        client.log_batch(run_id, metrics=points)


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """No progress bars, INFO lines or type-hint advice while MLflow logs and validates the
    model (it loads the model back to check the input example). The model's signature is
    given explicitly, so MLflow's advice on ``predict``'s type hints does not apply."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    saved = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*type hint", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)
        if saved is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = saved


def download(client: Any, model_uri: str, dst: str | Path | None = None) -> Path:
    """The local folder of the MLflow model ``model_uri`` (``runs:/<run id>/<name>``,
    ``models:/<model id>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``) of
    ``client``'s store, downloaded into ``dst`` (or where MLflow chooses; a local artifact
    store's folder is used where it is).

    The logged or registered model is looked up here with ``client``: MLflow 3.17 resolves
    ``models:/`` (and a run's logged model behind ``runs:/``) through the process-wide registry
    URI whatever ``tracking_uri`` it is given (``ModelsArtifactRepository._get_model_uri_infos``).
    """
    source = model_uri
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri.removeprefix("runs:/").partition("/")
        name, _, sub = path.partition("/")
        found = client.search_logged_models(
            experiment_ids=[client.get_run(run_id).info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
        )
        if found:  # else the run's own artifacts (models logged by earlier versions)
            source = "/".join(p for p in (found[0].artifact_location, sub) if p)
    elif model_uri.startswith("models:/"):
        name, _, version = model_uri.removeprefix("models:/").partition("/")
        if "@" in name and not version:
            name, _, alias = name.rpartition("@")
            version = client.get_model_version_by_alias(name, alias).version
        if version:
            source = client.get_model_version_download_uri(name, version)
        else:
            source = client.get_logged_model(name).artifact_location
    folder = mlflow.artifacts.download_artifacts(
        artifact_uri=source,
        dst_path=None if dst is None else str(dst),
        tracking_uri=client.tracking_uri,
    )
    return Path(folder)


def register(client: Any, model_uri: str, name: str, run_id: str, alias: str = "") -> str:
    """Register ``model_uri`` as a new version of the registered model ``name`` (created when
    missing), set ``alias`` on it when given; the version number.

    A logged model (``models:/<model id>``) is registered from its artifact location: MLflow
    3.17's SQL registry looks that URI up through the process-wide tracking URI (the TODO in
    ``SqlAlchemyStore.create_model_version``), not through ``client``'s store."""
    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/") else None
        if model_id and "/" not in model_id and "@" not in model_id:
            source = client.get_logged_model(model_id).artifact_location
            version = client.create_model_version(name, source, run_id=run_id, model_id=model_id)
        else:
            version = client.create_model_version(name, model_uri, run_id=run_id)
        if alias:
            client.set_registered_model_alias(name, alias, version.version)
    except MlflowException as exc:
        raise RegistrationError(
            f'registering {model_uri} as model "{name}" failed: {exc.message}. Check '
            "[tracking] register and alias (names of letters, digits, _ and -)."
        ) from exc
    return str(version.version)
