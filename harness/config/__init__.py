"""Experiments: the schema (frozen dataclasses), reading TOML (``extends``, ``--set``, step
milestones), checking values against the plugins' own signatures, and writing the resolved
experiment back.

This package is the public API; other code imports from here, never from the modules below::

    from harness import config

    exp = config.load("experiments/perpix.toml", ["train.steps=2000"], registry=registry)
    exp = config.from_dict({"train": {"steps": 10}}, registry=registry)

Modules: :mod:`~harness.config.schema` (the tables and the default recipe),
:mod:`~harness.config.reading` (files, ``extends``, ``--set``; :func:`load`, :func:`from_dict`),
:mod:`~harness.config.tables` (raw tables -> checked dataclasses),
:mod:`~harness.config.checking` (values against types and factory signatures),
:mod:`~harness.config.milestones` (named steps), :mod:`~harness.config.consistency` (values that
depend on each other), :mod:`~harness.config.schedules` (a weight or rate as ``step -> float``),
:mod:`~harness.config.sweep_space` (``[sweep]``), :mod:`~harness.config.writing` (TOML and
flat keys out), :mod:`~harness.config.dotted` (dotted keys).
"""

from __future__ import annotations

from harness.config.checking import check_params, coerce, factory_parameters
from harness.config.dotted import get_dotted, set_dotted
from harness.config.reading import from_dict, load, parse_overrides, parse_value, read_toml
from harness.config.schedules import build as build_schedule
from harness.config.schema import (
    DEFAULT_RECIPE,
    WEIGHTED_TABLES,
    DataConfig,
    Experiment,
    ExperimentMeta,
    PairedFolder,
    PluginConfig,
    Schedulable,
    ScheduleSpec,
    SweepConfig,
    TrackingConfig,
    TrainConfig,
    ValidationConfig,
    WeightedPlugin,
)
from harness.config.sweep_space import check_sweep
from harness.config.writing import flatten, inline
from harness.errors import ConfigError

__all__ = [
    "DEFAULT_RECIPE",
    "WEIGHTED_TABLES",
    "ConfigError",
    "DataConfig",
    "Experiment",
    "ExperimentMeta",
    "PairedFolder",
    "PluginConfig",
    "Schedulable",
    "ScheduleSpec",
    "SweepConfig",
    "TrackingConfig",
    "TrainConfig",
    "ValidationConfig",
    "WeightedPlugin",
    "build_schedule",
    "check_params",
    "check_sweep",
    "coerce",
    "factory_parameters",
    "flatten",
    "from_dict",
    "get_dotted",
    "inline",
    "load",
    "parse_overrides",
    "parse_value",
    "read_toml",
    "set_dotted",
]
