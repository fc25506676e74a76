"""Step milestones: a step number written once, in ``[train]``, and named wherever a schedule
needs it, so that a recipe's switch points cannot drift apart::

    [train]
    pretrain_steps = 1000000                      # named "pretrain"
    milestones = { vgg_on = 15000, mse_down = 20000 }

    [losses.mse]
    weight = { schedule = "piecewise", boundaries = ["mse_down"], values = [10, 1] }

A schedule parameter that takes a step (annotated ``int`` or a list of ``int``: ``boundaries``,
``begin``, ``steps``) may hold a milestone name instead of a number. Names are resolved when the
file is read: the :class:`~harness.config.schema.Experiment` (and ``harness show``) holds
numbers, and ``[train] milestones`` stays, so that ``--set train.milestones.vgg_on=16000`` or a
sweep over ``train.milestones.vgg_on`` moves every boundary that names it.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from harness.config.checking import ParamError, Where, did_you_mean, factory_parameters
from harness.errors import ConfigError

PRETRAIN = "pretrain"
"""The milestone every experiment has: ``[train] pretrain_steps``, where the adversarial weight
starts (:mod:`harness.config.schedules`)."""
MAX_STEPS = 2**53  # a step count a float64 schedule still tells apart
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def read(train: Mapping[str, Any], where: Where) -> dict[str, int]:
    """The milestones of a raw ``[train]`` table (``pretrain`` included), checked."""
    table = train.get("milestones", {})
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"{where('train.milestones')} must be a table of step numbers, e.g. "
            f"milestones = {{ vgg_on = 15000 }}, not {table!r}."
        )
    out: dict[str, int] = {}
    pretrain = train.get("pretrain_steps", 0)
    if isinstance(pretrain, int | float) and not isinstance(pretrain, bool):
        out[PRETRAIN] = int(pretrain)  # its own type errors are reported with [train]
    for name, step in table.items():
        key = f"train.milestones.{name}"
        if name == PRETRAIN:
            raise ConfigError(
                f'{where(key)}: "{PRETRAIN}" is train.pretrain_steps; set that, or choose '
                "another name."
            )
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"{where(key)}: a milestone name is lowercase snake_case (letters, digits, "
                "underscores, starting with a letter), as it is a dotted --set key."
            )
        if isinstance(step, float) and step.is_integer():
            step = int(step)
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEPS:
            raise ConfigError(
                f"{where(key)} must be a step number (an integer from 0 to {MAX_STEPS}), "
                f"not {step!r}."
            )
        out[name] = step
    return out


def resolve(
    factory: Any, params: Mapping[str, Any], milestones: Mapping[str, int]
) -> dict[str, Any]:
    """``params`` of a schedule table with milestone names replaced by their steps, in the
    parameters that ``factory`` declares as a step (``int``) or a list of steps.

    Raises :class:`~harness.config.checking.ParamError` naming an unknown milestone.
    """
    declared = factory_parameters(factory)
    out = dict(params)
    for key, value in params.items():
        if key not in declared or not _takes_steps(declared[key].annotation):
            continue
        if isinstance(value, str):
            out[key] = _step(value, key, milestones)
        elif isinstance(value, list | tuple):
            out[key] = [_step(v, key, milestones) if isinstance(v, str) else v for v in value]
    return out


def _takes_steps(annotation: Any) -> bool:
    if annotation is int:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    return origin in (list, tuple, Sequence) and bool(args) and args[0] is int


def _step(name: str, key: str, milestones: Mapping[str, int]) -> int:
    if name in milestones:
        return milestones[name]
    known = ", ".join(f"{k} = {v}" for k, v in milestones.items())
    raise ParamError(
        f'key "{key}": unknown milestone "{name}".{did_you_mean(name, list(milestones))} '
        f"Known milestones: {known} (pretrain is train.pretrain_steps; add others to "
        f"[train] milestones = {{ {name} = STEP }}).",
        key,
    )
