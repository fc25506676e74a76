"""A configured weight or learning rate (a number or a :class:`ScheduleSpec`) as a pure function
``step -> float``: the one place a schedule plugin's factory is called (when an experiment is
read), and the functions the trainer receives from there (:func:`functions`).

Pre-training is one of these schedules: the adversarial weight is 0 before the milestone
``"pretrain"`` (``train.pretrain_steps``) and follows ``[adversarial] weight`` from there, so a
run with ``pretrain_steps = 1000`` and ``weight = 1e-3`` reads as the schedule ``0`` for steps
``0 .. 999``, then ``1e-3``. A weight that is 0 skips its term (and, for the adversarial term,
the discriminator update) the same way whichever spelling made it 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.config.schema import ScheduleSpec
from harness.errors import ConfigError
from harness.plugin_api.registry import Registry

if TYPE_CHECKING:
    from harness.config.schema import Experiment

ADVERSARIAL = "adversarial.weight"
"""The dotted key of the adversarial weight, the schedule ``train.pretrain_steps`` starts."""


def build(value: float | ScheduleSpec, registry: Registry) -> Callable[[int], float]:
    """``value`` as a function of the step; a schedule that cannot be built is a
    :class:`ConfigError` (an unknown name, a :class:`~harness.errors.PluginError`)."""
    if isinstance(value, ScheduleSpec):
        factory = registry.factory("schedule", value.schedule)
        try:
            return factory(**value.params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f'schedule "{value.schedule}": {exc}') from None
    number = float(value)
    return lambda step: number


@dataclass(frozen=True)
class From:
    """``fn`` from step ``start`` on, 0 before it: the adversarial weight after pre-training."""

    start: int
    fn: Callable[[int], float]

    def __call__(self, step: int) -> float:
        return float(self.fn(step)) if step >= self.start else 0.0


def values(exp: Experiment) -> list[tuple[str, Any]]:
    """Every weight and learning rate of ``exp`` under its dotted key, as configured."""
    out: list[tuple[str, Any]] = [
        ("train.learning_rate", exp.train.learning_rate),
        ("train.d_learning_rate", exp.train.d_learning_rate),
    ]
    out += [(f"losses.{c.key}.weight", c.weight) for c in exp.losses]
    if exp.adversarial is not None:
        out.append((ADVERSARIAL, exp.adversarial.weight))
    return out


def functions(exp: Experiment, registry: Registry) -> dict[str, Callable[[int], float]]:
    """Every weight and learning rate of ``exp`` as ``step -> float``, under its dotted key.

    The functions built when the file was read (``exp.schedules``) are reused; a value that is
    not among them (an experiment made or changed in code) is built now. ``adversarial.weight``
    is 0 before ``train.pretrain_steps`` (:class:`From`)."""
    out = {}
    for key, value in values(exp):
        built = exp.schedules.get(key)
        out[key] = built[1] if built is not None and built[0] is value else build(value, registry)
    if ADVERSARIAL in out and exp.train.pretrain_steps > 0:
        out[ADVERSARIAL] = From(exp.train.pretrain_steps, out[ADVERSARIAL])
    return out


def zero_steps(weight: float | ScheduleSpec, fn: Callable[[int], float], steps: int) -> str:
    """Where a weight is 0 over steps ``0 .. steps - 1`` of a run: ``"always"``, ``"sometimes"``
    or ``"never"``; the trainer never builds a term that is always 0 and skips one that is
    sometimes 0 while it is. ``weight`` is the configured value, ``fn`` its function
    (:func:`functions`). A number is read as it is; a schedule is evaluated step by step until
    it has been seen both 0 and non-zero (one pass, a microsecond a step, at build time only);
    the steps before a :class:`From`'s start (pre-training) are 0 without evaluating them."""
    zero, start = False, 0
    if isinstance(fn, From):
        if fn.start >= max(steps, 1):
            return "always"
        zero, start, fn = fn.start > 0, fn.start, fn.fn
    if not isinstance(weight, ScheduleSpec):
        if float(weight) == 0.0:
            return "always"
        return "sometimes" if zero else "never"
    nonzero = False
    for step in range(start, max(steps, 1)):
        if float(fn(step)) == 0.0:
            zero = True
        else:
            nonzero = True
        if zero and nonzero:
            return "sometimes"
    return "always" if zero else "never"
