"""The Charbonnier error as a validation metric, so a run reports the quantity it trains on."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def charbonnier_error(eps: float = 1e-3) -> Callable[[np.ndarray, np.ndarray], float]:
    """Mean ``sqrt(d^2 + eps^2)`` over pixels, ``d`` the difference in ``[0, 1]`` units.

    Metrics receive one image pair as ``uint8`` RGB arrays ``(H, W, 3)``, already border-cropped
    by the evaluation protocol, and return a Python float.

    Args:
        eps: the smoothing constant (as the loss's ``eps``).
    """
    if not eps > 0:
        raise ValueError(f"charbonnier_error: eps must be > 0, not {eps}.")

    def metric(sr: np.ndarray, hr: np.ndarray) -> float:
        diff = (sr.astype(np.float64) - hr.astype(np.float64)) / 255.0
        return float(np.mean(np.sqrt(diff * diff + eps * eps)))

    return metric


charbonnier_error.higher_is_better = False  # type: ignore[attr-defined]  # read by sweeps
