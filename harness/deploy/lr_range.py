"""The one rule for the values an upscaler accepts: finite float RGB in ``[0, 1]``.

``harness serve`` (:mod:`harness.deploy.codecs`) and the logged MLflow model
(:mod:`harness.deploy.mlflow_pyfunc`) both apply it. The MLflow model runs without harness
installed, so this file imports only NumPy: it is shipped in the model's ``code/`` folder and
imported there as the top-level module ``lr_range``.
"""

from __future__ import annotations

import numpy as np


def range_problem(array: np.ndarray, what: str) -> str | None:
    """Why ``array`` is not LR input in ``[0, 1]`` (NaN, infinity, 8-bit values), or ``None``."""
    if not np.all(np.isfinite(array)):
        return f'"{what}" holds NaN or infinite values.'
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        return (
            f'"{what}" values must lie in [0, 1] (float RGB); found min {low:g}, max {high:g}. '
            "Divide 8-bit pixels by 255."
        )
    return None
