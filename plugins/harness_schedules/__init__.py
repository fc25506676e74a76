"""First-party schedules: values that follow the training step.

Each factory returns a pure function ``step -> float``. The seed's Per-Pix weights are
``piecewise`` schedules: ``[losses.mse]`` 10 then 1 from step 20000, ``[losses.vgg54]`` 1 then 10
from step 15000 (experiments/perpix.toml). A parameter that takes a step (``boundaries``,
``begin``, ``steps``: annotated ``int`` or a list of ``int``) may name a ``[train]`` milestone.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

from harness import hookimpl

Schedule = Callable[[int], float]


def constant(value: float = 1.0) -> Schedule:
    """The same ``value`` at every step."""

    def schedule(step: int) -> float:
        return float(value)

    return schedule


def piecewise(boundaries: Sequence[int] = (), values: Sequence[float] = (1.0,)) -> Schedule:
    """``values[i]`` for ``boundaries[i-1] <= step < boundaries[i]`` (as Keras' PiecewiseConstant,
    but a boundary step already takes the next value: 15000 -> the second value).

    Args:
        boundaries: increasing steps where the value changes.
        values: one more value than boundaries.
    """
    bounds = [int(b) for b in boundaries]
    vals = [float(v) for v in values]
    if len(vals) != len(bounds) + 1:
        raise ValueError(
            f"piecewise needs one more value than boundaries: {len(bounds)} boundaries, "
            f"{len(vals)} values."
        )
    if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(f"piecewise boundaries must increase: {bounds}.")

    def schedule(step: int) -> float:
        return vals[bisect.bisect_right(bounds, int(step))]

    return schedule


def linear(start: float = 0.0, end: float = 1.0, begin: int = 0, steps: int = 1000) -> Schedule:
    """A ramp from ``start`` (up to step ``begin``) to ``end`` (from ``begin + steps`` on)."""
    if steps <= 0:
        raise ValueError(f"linear needs steps > 0, not {steps}.")

    def schedule(step: int) -> float:
        t = min(max((int(step) - begin) / steps, 0.0), 1.0)
        return float(start + (end - start) * t)

    return schedule


def cosine(start: float = 1.0, end: float = 0.0, begin: int = 0, steps: int = 1000) -> Schedule:
    """Cosine decay from ``start`` to ``end`` over ``steps`` steps starting at ``begin``
    (Loshchilov & Hutter's SGDR without restarts)."""
    if steps <= 0:
        raise ValueError(f"cosine needs steps > 0, not {steps}.")

    def schedule(step: int) -> float:
        t = min(max((int(step) - begin) / steps, 0.0), 1.0)
        return float(end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t)))

    return schedule


@hookimpl
def harness_register_schedules():
    return {"constant": constant, "piecewise": piecewise, "linear": linear, "cosine": cosine}
