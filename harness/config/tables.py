"""From a raw experiment mapping (as read from TOML) to a checked
:class:`~harness.config.schema.Experiment`, table by table.

Fixed tables are checked against their dataclass fields; plugin tables against the factory of
the plugin they name (:mod:`harness.config.checking`), with :data:`DEFAULT_RECIPE
<harness.config.schema.DEFAULT_RECIPE>` filling what the file leaves out. Every schedule table
is checked, its milestone names resolved (:mod:`harness.config.milestones`) and built once;
:mod:`harness.config.consistency` then probes the built schedules and the values that depend on
each other.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any

from harness.config import consistency, milestones, schedules
from harness.config.checking import (
    Mismatch,
    ParamError,
    ScheduleError,
    Where,
    check_params,
    coerce,
    schedule_parts,
    unknown,
)
from harness.config.schema import (
    DEFAULT_RECIPE,
    FIXED_TABLES,
    HOST_KEYS,
    HOST_SUPPLIED,
    PLUGIN_TABLES,
    TOP_LEVEL,
    WEIGHTED_TABLES,
    DataConfig,
    Experiment,
    PairedFolder,
    PluginConfig,
    Schedulable,
    ScheduleSpec,
    WeightedPlugin,
    WeightedTable,
)
from harness.errors import ConfigError, HarnessError
from harness.plugin_api.registry import Registry

OLD_SELECTORS = ("plugin",)
"""Selector words other than ``name`` (``plugin``): refused with an error that names ``name``."""


class _Reader:
    """One experiment being checked: where it comes from, the registry, its milestones and the
    schedules built so far (each once)."""

    def __init__(self, where: Where, registry: Registry, steps: Mapping[str, int]) -> None:
        self.where = where
        self.registry = registry
        self.milestones = steps
        self.built: dict[int, tuple[ScheduleSpec, Callable[[int], float]]] = {}

    def schedule(self, value: Mapping[str, Any]) -> ScheduleSpec:
        """A schedule table -> its checked spec (milestones resolved); built once, here."""
        name, params = schedule_parts(value)
        try:
            factory = self.registry.factory("schedule", name)
        except HarnessError as exc:
            raise ScheduleError(str(exc)) from exc
        try:
            params = milestones.resolve(factory, params, self.milestones)
            spec = ScheduleSpec(name, check_params(factory, params))
            fn = schedules.build(spec, self.registry)  # one that cannot be built is an error now
        except (ParamError, ConfigError) as exc:
            text = str(exc).removeprefix(f'schedule "{name}": ')
            raise ScheduleError(f'schedule "{name}": {text}') from exc
        self.built[id(spec)] = (spec, fn)
        return spec

    def function(self, value: Any) -> Callable[[int], float]:
        """The built function of a checked weight or rate."""
        if isinstance(value, ScheduleSpec) and id(value) in self.built:
            spec, fn = self.built[id(value)]
            if spec is value:
                return fn
        return schedules.build(value, self.registry)

    # ----------------------------------------------------------------------- tables

    def fixed(self, cls: type, table: str, values: Mapping[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in values.items():
            if key not in fields:
                raise unknown(self.where, f"{table}.{key}", sorted(fields))
            try:
                kwargs[key] = coerce(value, hints[key], self.schedule)
            except Mismatch as exc:
                raise ConfigError(
                    f"{self.where(f'{table}.{key}')} must be {exc}, not {value!r}."
                ) from None
            except ScheduleError as exc:
                raise ConfigError(f"{self.where(f'{table}.{key}')}: {exc}") from None
        return cls(**kwargs)

    def data(self, values: Mapping[str, Any]) -> DataConfig:
        """``[data]``: a fixed table whose folder lists may hold ``{hr, lr}`` pairs, with the
        plugin table ``[data.degradation]`` inside."""
        values = dict(values)
        degradation = values.pop("degradation", None)
        for key in ("train", "val"):
            if isinstance(values.get(key), list | tuple):
                values[key] = tuple(self._folder(f"data.{key}", v) for v in values[key])
        cfg = self.fixed(DataConfig, "data", values)
        if degradation is None:
            return cfg
        path = "data.degradation"
        if not isinstance(degradation, Mapping):
            raise ConfigError(
                f"{self.where(path)} must be a table [data.degradation] naming the degradation "
                f'(name = "bicubic") and its parameters, not {degradation!r}.'
            )
        table = dict(degradation)
        name = self._name(path, "degradation", table, cfg.degradation.name)
        if name == cfg.degradation.name and not table:
            # the default as written back by `harness show`: no parameters to check (a registry
            # without the degradation plugins, as in hermetic tests, still reads the file)
            return cfg
        params = self._params("degradation", name, path, "degradation", table, HOST_SUPPLIED[path])
        return dataclasses.replace(cfg, degradation=PluginConfig(name, params))

    def _folder(self, path: str, value: Any) -> Any:
        """One entry of ``[data] train`` or ``val``: a folder, or ``{hr = ..., lr = ...}``."""
        if not isinstance(value, Mapping):
            return value  # checked against the field's type by fixed()
        keys = set(value)
        if keys != {"hr", "lr"} or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(
                f"{self.where(path)}: a paired entry is a table of two folders, "
                f'{{hr = "HR folder", lr = "LR folder"}}, not {dict(value)!r}.'
            )
        return PairedFolder(value["hr"], value["lr"])

    def plugin(self, table: str, kind: str, values: Mapping[str, Any]) -> PluginConfig:
        """``[generator]`` or ``[discriminator]``."""
        values = {**DEFAULT_RECIPE.get(table, {}), **values}
        name = self._name(table, kind, values)
        init = ""
        if "init" in HOST_KEYS.get(table, ()):
            init = values.pop("init", "")
            if not isinstance(init, str):
                raise ConfigError(
                    f"{self.where(f'{table}.init')} must be a model reference string (a run "
                    "directory, a checkpoint, a .keras file or an MLflow model URI), not "
                    f"{init!r}."
                )
        params = self._params(kind, name, table, table, values, HOST_SUPPLIED.get(table, ()))
        return PluginConfig(name, params, init=init)

    def weighted(self, spec: WeightedTable, path: str, key: str, values: Any) -> WeightedPlugin:
        """One ``[losses.<key>]`` or ``[adversarial]`` table (``path`` is its dotted name)."""
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"{self.where(path)} must be a table [{path}] with an optional weight, "
                f"not {values!r}."
            )
        values = dict(values)
        name = self._name(path, spec.kind, values, key if spec.name_is_key else None)
        weight = values.pop("weight", spec.weight)
        try:
            self.registry.factory(spec.kind, name, where=f"[{path}] ({self.where.source})")
        except HarnessError as exc:
            raise ConfigError(str(exc)) from None
        try:
            weight = coerce(weight, Schedulable, self.schedule)
        except Mismatch as exc:
            raise ConfigError(f"{self.where(f'{path}.weight')} must be {exc}.") from None
        except ScheduleError as exc:
            raise ConfigError(f"{self.where(f'{path}.weight')}: {exc}") from None
        params = self._params(spec.kind, name, path, spec.label, values)
        return WeightedPlugin(key, name, weight, params)

    def _name(self, path: str, kind: str, values: dict[str, Any], default: Any = None) -> str:
        """Take the plugin's ``name`` out of a plugin table's ``values`` (``name`` is the one
        selector word of every plugin table; :data:`OLD_SELECTORS` are refused, naming it)."""
        for old in OLD_SELECTORS:
            if old in values:
                value = values[old]
                shown = f'"{value}"' if isinstance(value, str) else repr(value)
                raise ConfigError(
                    f'{self.where(f"{path}.{old}")}: a plugin table names its plugin with "name": '
                    f"write name = {shown} instead of {old} = {shown}."
                )
        name = values.pop("name", default)
        if not isinstance(name, str):
            raise ConfigError(
                f"{self.where(f'{path}.name')} is required: the registered "
                f"{kind.replace('_', ' ')} to use. Known: {', '.join(self.registry.names(kind))}."
            )
        return name

    def _params(
        self,
        kind: str,
        name: str,
        path: str,
        label: str,
        values: Mapping[str, Any],
        host_supplied: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        try:
            factory = self.registry.factory(kind, name, where=f"[{path}] ({self.where.source})")
        except HarnessError as exc:
            raise ConfigError(str(exc)) from None
        try:
            return check_params(factory, values, self.schedule, host_supplied)
        except ParamError as exc:
            raise ConfigError(
                f'{self.where(f"{path}.{exc.key}")}: {label} "{name}": {exc}'
            ) from None


def experiment(
    raw: Mapping[str, Any], source: str, registry: Registry, overrides: Mapping[str, str]
) -> Experiment:
    """``raw`` checked into an :class:`Experiment`; raises :class:`ConfigError` naming the
    file, table and key."""
    where = Where(source, overrides)
    for key, value in raw.items():
        if key not in TOP_LEVEL:
            raise unknown(where, key, [t for t in TOP_LEVEL if t != "extends"])
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where(key)} must be a table [{key}], not {value!r}.")
    reader = _Reader(where, registry, milestones.read(raw.get("train", {}), where))
    kwargs: dict[str, Any] = {"source": source}
    for table, cls in FIXED_TABLES.items():
        if table == "data" and table in raw:
            kwargs[table] = reader.data(raw[table])
        elif table in raw:
            kwargs[table] = reader.fixed(cls, table, raw[table])
    for table, kind in PLUGIN_TABLES.items():
        kwargs[table] = reader.plugin(table, kind, raw.get(table, {}))
    losses = raw.get("losses", DEFAULT_RECIPE["losses"])
    kwargs["losses"] = tuple(
        reader.weighted(WEIGHTED_TABLES["losses"], f"losses.{key}", key, table)
        for key, table in losses.items()
    )
    if not kwargs["losses"]:
        raise ConfigError(f"[losses] ({source}) is empty: name at least one loss.")
    if "adversarial" in raw:
        spec = WEIGHTED_TABLES["adversarial"]
        kwargs["adversarial"] = reader.weighted(
            spec, "adversarial", "adversarial", raw["adversarial"]
        )
    validation = kwargs.get("validation")
    if validation is not None and validation.lpips and "lpips" not in validation.metrics:
        # the shorthand `lpips = true` means metrics += ["lpips"]; resolved here, the one
        # place that knows it
        kwargs["validation"] = dataclasses.replace(
            validation, metrics=(*validation.metrics, "lpips")
        )
    if "train" in kwargs:  # the milestones as milestones.read() checked them (integers)
        named = {k: v for k, v in reader.milestones.items() if k != milestones.PRETRAIN}
        kwargs["train"] = dataclasses.replace(kwargs["train"], milestones=named)
    exp = Experiment(**kwargs)
    consistency.check(exp, where)
    consistency.check_rates_and_weights(exp, where, reader.function)
    # the trainer receives these functions (schedules.functions) rather than building them again
    built = {key: (value, reader.function(value)) for key, value in schedules.values(exp)}
    exp = dataclasses.replace(exp, schedules=built)
    for name in exp.validation.metrics:
        try:
            registry.factory("metric", name, where=f"[validation] metrics ({source})")
        except HarnessError as exc:
            raise ConfigError(str(exc)) from None
    return exp
