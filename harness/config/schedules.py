"""A configured weight or learning rate (a number or a :class:`ScheduleSpec`) as a pure function
``step -> float``: the one place a schedule plugin's factory is called, by the checks when an
experiment is read and by the trainer."""

from __future__ import annotations

from collections.abc import Callable

from harness.config.schema import ScheduleSpec
from harness.errors import ConfigError
from harness.plugin_api.registry import Registry


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
