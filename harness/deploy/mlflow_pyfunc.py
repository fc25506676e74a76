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

SAVED_MODEL = "saved_model"
"""The artifact key of the SavedModel folder (``harness.deploy.mlflow_model.SAVED_MODEL``)."""


class SavedModelUpscaler(mlflow.pyfunc.PythonModel):
    """``predict(lr)``: the SavedModel's ``serving_default`` on a float32 NHWC batch."""

    def load_context(self, context: Any) -> None:
        import tensorflow as tf

        self._loaded = tf.saved_model.load(context.artifacts[SAVED_MODEL])
        self._serve = self._loaded.signatures["serving_default"]

    def predict(self, context: Any, model_input: Any, params: Any = None) -> np.ndarray:
        import tensorflow as tf

        lr = np.asarray(model_input, np.float32)
        if lr.ndim == 3:
            lr = lr[None]
        if lr.ndim != 4 or lr.shape[-1] != 3:
            raise ValueError(f"expected float32 NHWC RGB images (N, h, w, 3); got {lr.shape}")
        return self._serve(lr=tf.constant(lr))["sr"].numpy()


mlflow.models.set_model(SavedModelUpscaler())
