"""The logged MLflow model's code: an exported SavedModel as an ``mlflow.pyfunc`` model.

MLflow logs this file as the model's code ("models from code") and runs it when the model
loads, so it imports only TensorFlow, NumPy and MLflow: a model served by ``mlflow models
serve`` needs neither srgan-harness nor its plugins installed. The SavedModel (written by
:func:`harness.deploy.export.export_saved_model`) holds the network and its ``[0, 1]`` output
mapping; plugin layers are plain TensorFlow graphs there.

Contract (the same as ``harness export`` and ``harness serve``): float32 NHWC LR in ``[0, 1]``
-> float32 NHWC SR in ``[0, 1]``, ``scale`` times larger, any batch and size.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import tensorflow as tf

try:  # the rule harness serve applies; without harness, the copy in the model's code/ folder
    from harness.deploy.lr_range import range_problem
except ImportError:
    from lr_range import range_problem

SAVED_MODEL = "saved_model"
"""The artifact key of the SavedModel folder (``harness.deploy.mlflow_model.SAVED_MODEL``)."""


class SavedModelUpscaler(mlflow.pyfunc.PythonModel):
    """``predict(lr)``: the SavedModel's ``serving_default`` on a float32 NHWC batch."""

    # The model is logged with an explicit tensor signature; without this MLflow reads
    # predict's type hints as an input schema when the class is defined and warns whatever
    # they are (its own built-in models set the same attribute).
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        self._loaded = tf.saved_model.load(context.artifacts[SAVED_MODEL])
        self._serve = self._loaded.signatures["serving_default"]

    # no type hints: MLflow would try to infer a schema from them when the model is logged
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        lr = np.asarray(model_input, np.float32)
        if lr.ndim == 3:
            lr = lr[None]
        if lr.ndim != 4 or lr.shape[-1] != 3:
            raise ValueError(f"expected float32 NHWC RGB images (N, h, w, 3); got {lr.shape}")
        problem = range_problem(lr, "inputs")
        if problem is not None:
            raise ValueError(problem)
        return self._serve(lr=tf.constant(lr))["sr"].numpy()


mlflow.models.set_model(SavedModelUpscaler())
