"""The seed's Per-Pix loss: ``w1 * MSE + w2 * VGG``, both weights following schedules.

The seed trained with w1 = 10 then 1 (from step 20000) and w2 = 1 then 10 (from step 15000);
its ``1e-3 * adversarial`` term is the experiment's ``[adversarial] weight``. The same recipe can
be written as two plain ``[losses.*]`` tables with schedule weights (see
docs/plugins-builtin.md); this plugin bundles it under one name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from harness.config.experiment import Schedulable, ScheduleSpec
from harness.plugin_api.losses import Composite, Term
from harness.training import schedules
from harness_losses.pixel import mse
from harness_losses.vgg import VGGFeatureLoss

W1_SEED = ScheduleSpec("piecewise", {"boundaries": (15000, 20000), "values": (10.0, 10.0, 1.0)})
W2_SEED = ScheduleSpec("piecewise", {"boundaries": (15000, 20000), "values": (1.0, 10.0, 10.0)})


def _schedule(value: Any):
    if isinstance(value, Mapping):  # a raw table, e.g. when called directly from Python
        params = {k: v for k, v in value.items() if k != "schedule"}
        value = ScheduleSpec(str(value.get("schedule")), params)
    return schedules.build(value)


def perpix(
    w1: Schedulable = W1_SEED,
    w2: Schedulable = W2_SEED,
    layer: str = "block5_conv4",
    weights: str = "imagenet",
    network: Literal["auto", "vgg19", "vgg16"] = "auto",
    feature_scale: float = 1 / 12.75,
) -> Composite:
    """Per-Pix: sub-terms ``mse`` (weight ``w1``) and ``vgg`` (weight ``w2``).

    Args:
        w1: MSE weight, a number or a schedule (default: the seed's piecewise 10, 10, 1).
        w2: VGG weight, a number or a schedule (default: the seed's piecewise 1, 10, 10).
        layer, weights, network, feature_scale: the VGG loss' parameters (see ``vgg54``).
    """
    vgg = VGGFeatureLoss(layer, weights, network, feature_scale)
    return Composite(
        (
            Term("mse", mse(), _schedule(w1)),
            Term("vgg", vgg, _schedule(w2)),
        )
    )
