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
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.rundir import GENERATOR_FILE

SAVED_MODEL = "saved_model"
"""The artifact key of the SavedModel folder (also in :mod:`harness.deploy.mlflow_pyfunc`)."""
GENERATOR = "generator"
"""The artifact key of the ``.keras`` generator inside a logged model."""
LOADER = Path(__file__).with_name("mlflow_pyfunc.py")


class RegistrationError(HarnessError):
    """The model registry refused a version or an alias."""


def requirements() -> list[str]:
    """pip requirements that exist on PyPI: the versions this process runs."""
    import keras
    import mlflow
    import numpy as np
    import tensorflow as tf

    return [
        f"tensorflow=={tf.__version__}",
        f"keras=={keras.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
    ]


def log_generator(client: Any, run_id: str, model: Any, step: int, name: str = "generator") -> str:
    """Log ``model`` (a generator) in run ``run_id`` as the MLflow model ``name``; its URI.

    The signature takes any batch of any size, ``(-1, -1, -1, 3)`` float32 in ``[0, 1]``, and
    returns the same shape ``scale`` times larger in ``[0, 1]``; an 8x8 grey input example is
    recorded. Requirements are given explicitly so MLflow does not spend a subprocess
    inferring them.
    """
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import Model
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from harness.deploy.export import export_saved_model

    spec = TensorSpec(np.dtype(np.float32), (-1, -1, -1, 3))
    signature = ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))
    example = np.full((1, 8, 8, 3), 0.5, np.float32)
    # Created here so the model lands in the run's MLflow experiment (MLflow would otherwise
    # file it under the caller's active experiment).
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        params=dict(run.data.params),
    )
    with tempfile.TemporaryDirectory() as tmp:
        saved = export_saved_model(model, Path(tmp) / SAVED_MODEL)
        keras_file = Path(tmp) / GENERATOR_FILE
        model.save(keras_file)
        # Model.log, not mlflow.pyfunc.log_model: only it takes the run to log into, and
        # harness never starts a fluent run (a caller's active run stays untouched)
        with _quiet_mlflow():
            info = Model.log(
                artifact_path=None,
                name=name,
                flavor=mlflow.pyfunc,
                python_model=str(LOADER),
                artifacts={SAVED_MODEL: str(saved), GENERATOR: str(keras_file)},
                signature=signature,
                input_example=example,
                pip_requirements=requirements(),
                run_id=run_id,
                model_id=logged.model_id,
                step=int(step),
            )
    return info.model_uri


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """No progress bars, INFO lines or type-hint advice while MLflow logs and validates the
    model (it loads the model back to check the input example). The model's signature is
    given explicitly, so MLflow's advice on ``predict``'s type hints does not apply."""
    import logging
    import warnings

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


def register(client: Any, model_uri: str, name: str, run_id: str, alias: str = "") -> str:
    """Register ``model_uri`` as a new version of the registered model ``name`` (created when
    missing), set ``alias`` on it when given; the version number."""
    from mlflow.exceptions import MlflowException

    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        version = client.create_model_version(name, model_uri, run_id=run_id)
        if alias:
            client.set_registered_model_alias(name, alias, version.version)
    except MlflowException as exc:
        raise RegistrationError(
            f'registering {model_uri} as model "{name}" failed: {exc.message}. Check '
            "[tracking] register and alias (names of letters, digits, _ and -)."
        ) from exc
    return str(version.version)
