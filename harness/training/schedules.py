"""Turning a configured weight (a number or a schedule table) into ``step -> float``."""

from __future__ import annotations

from collections.abc import Callable

from harness.config.experiment import ScheduleSpec
from harness.errors import ConfigError
from harness.plugin_api.registry import Registry, build_registry


def build(value: float | ScheduleSpec, registry: Registry | None = None) -> Callable[[int], float]:
    """A pure function of the step for a number or a
    :class:`~harness.config.experiment.ScheduleSpec`."""
    if isinstance(value, ScheduleSpec):
        factory = (registry or build_registry()).factory("schedule", value.schedule)
        try:
            return factory(**value.params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f'schedule "{value.schedule}" {value.params}: {exc}') from None
    number = float(value)
    return lambda step: number
