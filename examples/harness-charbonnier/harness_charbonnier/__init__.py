"""harness-charbonnier: an example third-party plugin package for srgan-harness.

It shows every hook a loss author needs, each in its own module:

- ``harness_register_content_losses``: ``lapsrn_charbonnier`` (:mod:`.losses`);
- ``harness_register_adversarial_losses``: ``relativistic_average`` (:mod:`.adversarial`);
- ``harness_register_schedules``: ``sigmoid_rampup`` (:mod:`.schedules`), for a weight that
  fades in;
- ``harness_register_metrics``: ``charbonnier_error`` (:mod:`.metrics`), the loss reported as a
  validation metric.

The harness imports this module through the entry point in ``pyproject.toml``
(``[project.entry-points.harness] charbonnier = "harness_charbonnier"``) and calls each hook
once, when it builds its registry. Each hook returns ``{registered name: factory}``.
"""

from __future__ import annotations

from harness import hookimpl
from harness_charbonnier.adversarial import RelativisticAverage
from harness_charbonnier.losses import charbonnier
from harness_charbonnier.metrics import charbonnier_error
from harness_charbonnier.schedules import sigmoid_rampup

__all__ = ["RelativisticAverage", "lapsrn_charbonnier", "charbonnier_error", "sigmoid_rampup"]


@hookimpl
def harness_register_content_losses():
    """Content losses, used as ``[losses.lapsrn_charbonnier]`` in an experiment."""
    return {"lapsrn_charbonnier": charbonnier}


@hookimpl
def harness_register_adversarial_losses():
    """GAN losses, used as ``[adversarial] name = "relativistic_average"``."""
    return {"relativistic_average": RelativisticAverage}


@hookimpl
def harness_register_schedules():
    """Schedules, used as ``weight = {schedule = "sigmoid_rampup", ...}``."""
    return {"sigmoid_rampup": sigmoid_rampup}


@hookimpl
def harness_register_metrics():
    """Validation metrics, reported as ``val/charbonnier_error``."""
    return {"charbonnier_error": charbonnier_error}
