"""First-party metric plugins: LPIPS (Zhang et al. 2018) with the AlexNet or VGG16 backbone, and
DISTS (Ding et al. 2020) on VGG16.

PSNR and SSIM are the evaluation protocol itself (:mod:`harness.measures`); the metrics
here are extra columns for ``harness evaluate --metric NAME``, validation and sweep objectives.

The factories are registered as ``lpips`` and ``dists`` but named ``lpips_distance`` and
``dists_distance`` here, so that ``harness_metrics.lpips`` and ``harness_metrics.dists`` stay the
submodules (a package attribute of the same name would hide them from ``from harness_metrics
import lpips``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from harness import hookimpl
from harness_metrics.dists import PROTOCOL as DISTS_PROTOCOL
from harness_metrics.dists import dists_metric
from harness_metrics.lpips import PROTOCOL as LPIPS_PROTOCOL
from harness_metrics.lpips import lpips_metric

Metric = Callable[[np.ndarray, np.ndarray], float]


def lpips_distance(net: Literal["alex", "vgg"] = "alex") -> Metric:
    """LPIPS distance between SR and HR (lower is better), on the whole RGB image scaled to
    [-1, 1], as the perceptual-SR papers report it.

    Args:
        net: the backbone, "alex" (the paper's default) or "vgg".
    """
    return lpips_metric(net)


lpips_distance.higher_is_better = False  # type: ignore[attr-defined]
lpips_distance.protocol = LPIPS_PROTOCOL  # type: ignore[attr-defined]


def dists_distance() -> Metric:
    """DISTS distance between SR and HR (lower is better; 0 for identical images): the deep
    image structure and texture similarity of Ding et al. (TPAMI 2020), from the means,
    variances and covariances of L2-pooled VGG16 features, weighted by the reference package's
    trained alpha and beta. On the whole RGB image in [0, 1], at its own size (the reference
    demo's optional resize to 256 pixels is not used).
    """
    return dists_metric()


dists_distance.higher_is_better = False  # type: ignore[attr-defined]
dists_distance.protocol = DISTS_PROTOCOL  # type: ignore[attr-defined]


@hookimpl
def harness_register_metrics():
    return {"lpips": lpips_distance, "dists": dists_distance}
