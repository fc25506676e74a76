"""First-party metric plugins: LPIPS (Zhang et al. 2018) with the AlexNet or VGG16 backbone.

PSNR and SSIM are the evaluation protocol itself (:mod:`harness.metrics`); the metrics here are
extra columns for ``harness evaluate --metric NAME``, validation and sweep objectives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from harness import hookimpl
from harness.lpips import lpips_metric

Metric = Callable[[np.ndarray, np.ndarray], float]


def lpips(net: Literal["alex", "vgg"] = "alex") -> Metric:
    """LPIPS distance between SR and HR (lower is better).

    Args:
        net: the backbone, "alex" (the paper's default) or "vgg".
    """
    return lpips_metric(net)


lpips.higher_is_better = False  # type: ignore[attr-defined]


@hookimpl
def harness_register_metrics():
    return {"lpips": lpips}
