"""Checks across values of a built experiment: sizes that fit each other, counts with a meaning,
and weights and learning rates that stay finite (rates also >= 0) over the run, refused when
the file is read rather than at the step where they first apply."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from harness.config import schedules
from harness.config.checking import Where
from harness.config.milestones import MAX_STEPS
from harness.config.schema import Experiment, ScheduleSpec
from harness.errors import ConfigError, HarnessError

MAX_RUN_STEPS = 10**9
"""The most train.steps a run may ask for (a larger count is a typo, not a plan)."""
MAX_BATCH_PIXELS = 2**24
"""HR pixels per training batch (batch_size x patch^2): 16.8 M, 114 times the SRGAN recipe's
16 x 96^2 (a batch so large is a typo; the networks' activations grow with it)."""


def check(exp: Experiment, where: Where) -> None:
    """Sizes and counts that only make sense together (pre-training within the run)."""
    d, t, v = exp.data, exp.train, exp.validation
    if exp.experiment.seeds < 1:
        raise ConfigError(
            f"{where('experiment.seeds')} must be at least 1 (runs per experiment in "
            f"`harness compare`), not {exp.experiment.seeds}."
        )
    if d.scale < 1:
        raise ConfigError(f"{where('data.scale')} must be at least 1, not {d.scale}.")
    if d.patch < d.scale:
        raise ConfigError(
            f"{where('data.patch')} must be at least the scale ({d.scale}), not {d.patch}."
        )
    if d.patch % d.scale:
        raise ConfigError(
            f"{where('data.patch')}: patch {d.patch} must be a multiple of scale {d.scale}."
        )
    for key in ("val_limit", "val_max_side"):
        if getattr(d, key) < 0:
            raise ConfigError(f"{where(f'data.{key}')} must be 0 (no limit) or more.")
    for key in ("every", "samples"):
        if getattr(v, key) < 0:
            raise ConfigError(
                f"{where(f'validation.{key}')} must be 0 or more, not {getattr(v, key)}."
            )
    for key in ("steps", "batch_size", "d_steps", "log_every", "checkpoint_every"):
        if getattr(t, key) < (0 if key == "steps" else 1):
            raise ConfigError(f"{where(f'train.{key}')} must be positive, not {getattr(t, key)}.")
        if getattr(t, key) > MAX_STEPS:
            raise ConfigError(
                f"{where(f'train.{key}')} is {getattr(t, key)}, beyond any run ({MAX_STEPS})."
            )
    if t.steps > MAX_RUN_STEPS:
        raise ConfigError(
            f"{where('train.steps')} is {t.steps:,}: beyond any run (at 1,000 steps a second "
            f"{MAX_RUN_STEPS:,} steps take 11 days); give at most {MAX_RUN_STEPS:,}."
        )
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(t, key) < 1.0:  # NaN fails too
            raise ConfigError(
                f"{where(f'train.{key}')} must be in [0, 1) (Adam's decay of its moment "
                f"estimates), not {getattr(t, key)}."
            )
    check_batch_size(exp, where)
    if not 0 <= t.pretrain_steps <= t.steps:
        raise ConfigError(
            f"{where('train.pretrain_steps')} must be between 0 and train.steps ({t.steps})."
        )
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"{where('train.ema')} must be in [0, 1), not {t.ema}.")
    live = [c for c in exp.losses if not (isinstance(c.weight, int | float) and c.weight == 0)]
    if not live and exp.adversarial is None:
        raise ConfigError(
            f"every [losses.*] weight is 0 in {where.source} and there is no [adversarial] "
            "table: nothing would train the generator. Give one loss a weight."
        )
    check_registration(exp, where)


def check_batch_size(exp: Experiment, where: Where) -> None:
    """A batch of ``batch_size`` HR patches must fit in memory with the networks' activations
    (refused when read, not after the data has been loaded)."""
    t, d = exp.train, exp.data
    pixels = t.batch_size * d.patch * d.patch
    if pixels > MAX_BATCH_PIXELS:
        gib = pixels * 3 * 4 / 2**30
        raise ConfigError(
            f"{where('train.batch_size')}: train.batch_size x data.patch^2 = {t.batch_size:,} x "
            f"{d.patch}^2 = {pixels:,} HR pixels per batch, over the limit of "
            f"{MAX_BATCH_PIXELS:,} (the batch alone is {gib:,.1f} GiB of float32, the networks' "
            "activations many times that). Lower train.batch_size or data.patch (the SRGAN "
            "recipe is 16 x 96)."
        )


def check_registration(exp: Experiment, where: Where) -> None:
    """``[tracking] register`` needs the logged model; an alias MLflow would refuse is refused
    when the file is read, not after training."""
    tr = exp.tracking
    if tr.register and not tr.log_model:
        raise ConfigError(
            f"{where('tracking.register')} registers the logged generator, but "
            "tracking.log_model is false; set log_model = true or remove register."
        )
    if tr.alias and (
        not re.fullmatch(r"[\w-]+", tr.alias) or re.fullmatch(r"latest|v\d+", tr.alias.lower())
    ):
        raise ConfigError(
            f'{where("tracking.alias")} "{tr.alias}" is not a usable MLflow alias: use letters, '
            'digits, _ and - (not "latest" nor v<number>, which MLflow reserves), e.g. "champion".'
        )


def probe_steps(spec: Any, steps: int) -> list[int]:
    """Steps at which a schedule is checked: the ends, the middle and around its boundaries."""
    probe = {0, max(steps - 1, 0), steps // 2}
    if isinstance(spec, ScheduleSpec):
        for key in ("boundaries", "begin", "steps"):
            raw = spec.params.get(key)
            for b in raw if isinstance(raw, tuple | list) else [raw]:
                if isinstance(b, int | float) and 0 <= b < 2**62:
                    probe.update({int(b), int(b) + 1})
    return sorted(probe)


def check_rates_and_weights(
    exp: Experiment, where: Where, function: Callable[[Any], Callable[[int], float]]
) -> None:
    """Learning rates and weights that are negative, NaN or infinite at any probed step (a
    negative weight would maximise its loss). ``function`` gives a value's built schedule."""
    for key, spec in schedules.values(exp):
        is_rate = not key.endswith(".weight")
        if isinstance(spec, ScheduleSpec):
            for name, raw in spec.params.items():
                if isinstance(raw, float) and not math.isfinite(raw):
                    raise ConfigError(
                        f'{where(key)}: schedule "{spec.schedule}" has {name} = {raw}; its '
                        "parameters must be finite numbers."
                    )
        try:
            fn = function(spec)
        except HarnessError:
            continue  # reported where the schedule is built
        for step in probe_steps(spec, exp.train.steps):
            try:
                value = float(fn(step))
            except (TypeError, ValueError, OverflowError, ArithmeticError):
                continue
            if not math.isfinite(value) or value < 0:
                what = "a finite learning rate >= 0" if is_rate else "a finite weight >= 0"
                at = "" if not isinstance(spec, ScheduleSpec) else f" at step {step}"
                raise ConfigError(f"{where(key)} must be {what}, but is {value}{at}.")
