"""The sigmoid-shaped ramp-up of Laine & Aila (2017, "Temporal Ensembling for Semi-Supervised
Learning"): ``exp(-5 (1 - t)^2)`` for ``t`` going from 0 to 1.

A typical use is fading in the adversarial weight after pre-training, so the generator is not
hit by a full-strength discriminator at once::

    [adversarial]
    weight = { schedule = "sigmoid_rampup", end = 1e-3, begin = 1000, steps = 4000 }
"""

from __future__ import annotations

import math
from collections.abc import Callable


def sigmoid_rampup(
    start: float = 0.0, end: float = 1.0, begin: int = 0, steps: int = 1000
) -> Callable[[int], float]:
    """The factory the harness calls with the schedule table's keys (everything but ``schedule``).

    Args:
        start: the value up to step ``begin``.
        end: the value from step ``begin + steps`` on.
        begin: the step where the ramp starts.
        steps: the length of the ramp, > 0.

    Returns:
        ``schedule(step) -> float``: a pure function of the step, finite for every step >= 0.
    """
    if steps <= 0:
        raise ValueError(f"sigmoid_rampup: steps must be > 0, not {steps}.")

    def schedule(step: int) -> float:
        t = (int(step) - begin) / steps
        if t <= 0.0:
            return float(start)
        if t >= 1.0:
            return float(end)
        return float(start + (end - start) * math.exp(-5.0 * (1.0 - t) ** 2))

    return schedule
