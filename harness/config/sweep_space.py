"""The search space of a ``[sweep]`` table, checked against the experiment it sweeps: every
parameter is a dotted key the experiment has (the ``--set`` keys), with a range or choices Optuna
can sample; every objective a validation metric the run measures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.config.dotted import get_dotted
from harness.config.schema import Experiment, SweepConfig
from harness.errors import ConfigError
from harness.plugin_api.metrics import MEASURES as VALIDATION_MEASURES

SWEEP_PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "float": ("type", "low", "high", "step", "log"),
    "int": ("type", "low", "high", "step", "log"),
    "categorical": ("type", "choices"),
}
SWEEP_OBJECTIVE_KEYS = ("metric", "direction", "reduce")


def check_sweep(exp: Experiment) -> SweepConfig:
    """The ``[sweep]`` table of ``exp``, checked: every parameter, objective and option.

    Raises :class:`ConfigError` naming the key and the fix. A sweep parameter must be a key the
    experiment has (``harness show FILE`` lists them; list items by index, ``values.2``).
    """
    sweep = exp.sweep
    where = f"[sweep] ({exp.source})"
    if sweep is None:
        raise ConfigError(
            f"{exp.source} has no [sweep] table. Add one (see docs/sweeps.md), or make a sweep "
            'file that starts with extends = "your-experiment.toml" and holds [sweep].'
        )
    if sweep.trials < 1:
        raise ConfigError(f'{where}: "trials" must be at least 1, not {sweep.trials}.')
    if sweep.timeout < 0:
        raise ConfigError(f'{where}: "timeout" must be 0 (none) or seconds, not {sweep.timeout}.')
    if sweep.jobs < 1:
        raise ConfigError(f'{where}: "jobs" must be at least 1, not {sweep.jobs}.')
    if sweep.n_generate < 1:
        raise ConfigError(f'{where}: "n_generate" must be at least 1, not {sweep.n_generate}.')
    if sweep.mode == "preferential" and sweep.sampler in ("grid", "nsga2"):
        raise ConfigError(
            f'{where}: mode = "preferential" learns from rankings with sampler = "gp" (the '
            f'default there) or samples at random (sampler = "random"), not "{sweep.sampler}".'
        )
    if sweep.mode == "optimize" and sweep.sampler == "gp":
        raise ConfigError(
            f'{where}: sampler = "gp" is the preferential GP; it needs mode = "preferential" '
            '(or choose "tpe", "random", "grid" or "nsga2").'
        )
    if sweep.heartbeat_interval < 1 or sweep.grace_period < 0:
        raise ConfigError(
            f'{where}: "heartbeat_interval" must be at least 1 s and "grace_period" 0 or more.'
        )
    if sweep.grace_period and sweep.grace_period <= sweep.heartbeat_interval:
        raise ConfigError(
            f'{where}: "grace_period" ({sweep.grace_period}) must be longer than '
            f'"heartbeat_interval" ({sweep.heartbeat_interval}), or a live trial looks stale.'
        )
    if not sweep.params:
        raise ConfigError(
            f"{where} has no parameters. Add one per dotted key, e.g. "
            '[sweep.params."train.learning_rate"] type = "float", low = 1e-5, high = 1e-3, '
            "log = true."
        )
    tree = exp.to_toml_dict()
    for key, spec in sweep.params.items():
        _check_sweep_param(key, spec, tree, f'[sweep.params."{key}"] ({exp.source})')
    for i, objective in enumerate(sweep.objectives):
        here = f"[sweep] objectives[{i}] ({exp.source})"
        unknown = sorted(set(objective) - set(SWEEP_OBJECTIVE_KEYS))
        if unknown:
            raise ConfigError(
                f"{here}: unknown key(s) {', '.join(unknown)}. "
                f"Known keys: {', '.join(SWEEP_OBJECTIVE_KEYS)}."
            )
        metric = objective.get("metric")
        if not isinstance(metric, str) or not metric.startswith("val/"):
            raise ConfigError(
                f'{here}: "metric" must be a validation metric such as "val/psnr_y", '
                f'"val/ssim_y" or "val/lpips", not {metric!r}.'
            )
        name = metric[len("val/") :]
        if name not in VALIDATION_MEASURES and name not in exp.validation.metrics:
            raise ConfigError(
                f'{here}: "{metric}" is measured only when [validation] metrics lists it '
                f'(metrics = ["{name}"]; every validation measures '
                f"{', '.join(VALIDATION_MEASURES)}); add it there."
            )
        if objective.get("direction", "maximize") not in ("maximize", "minimize"):
            raise ConfigError(f'{here}: "direction" must be "maximize" or "minimize".')
        if objective.get("reduce", "best") not in ("best", "final"):
            raise ConfigError(
                f'{here}: "reduce" must be "best" (best validation of the run) or "final" '
                "(last validation)."
            )
    metrics = [o["metric"] for o in sweep.objectives]
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"{where}: an objective metric is named twice: {metrics}.")
    return sweep


def _check_sweep_param(key: str, spec: Mapping[str, Any], tree: Mapping[str, Any], here: str):
    kind = spec.get("type")
    if kind not in SWEEP_PARAM_KEYS:
        raise ConfigError(f'{here}: "type" must be "float", "int" or "categorical", not {kind!r}.')
    unknown = sorted(set(spec) - set(SWEEP_PARAM_KEYS[kind]))
    if unknown:
        raise ConfigError(
            f"{here}: unknown key(s) {', '.join(unknown)} for a {kind} parameter. "
            f"Known keys: {', '.join(SWEEP_PARAM_KEYS[kind])}."
        )
    try:
        current = get_dotted(tree, key)
    except (KeyError, IndexError, TypeError, ConfigError):
        raise ConfigError(
            f'{here}: "{key}" is not a key of this experiment. Sweep parameters use the --set '
            "keys: `harness show FILE` prints them (tables and keys; list items by index, "
            "e.g. losses.mse.weight.values.1, and a weight must be a schedule table before its "
            "boundaries or values can be swept)."
        ) from None
    if isinstance(current, Mapping | list | tuple):
        raise ConfigError(
            f'{here}: "{key}" is a table or a list; sweep one value in it (e.g. "{key}.0").'
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise ConfigError(f"{here}: a categorical parameter needs choices = [a, b, ...].")
        if any(not isinstance(c, bool | int | float | str) for c in choices):
            raise ConfigError(f"{here}: choices must be numbers, strings or booleans.")
        return
    number = int if kind == "int" else (int, float)
    for bound in ("low", "high"):
        value = spec.get(bound)
        if not isinstance(value, number) or isinstance(value, bool):
            raise ConfigError(
                f'{here}: "{bound}" must be {"an integer" if kind == "int" else "a number"}.'
            )
    if spec["low"] >= spec["high"]:
        raise ConfigError(f'{here}: "low" ({spec["low"]}) must be below "high" ({spec["high"]}).')
    step, log = spec.get("step"), spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f'{here}: "log" must be true or false.')
    if step is not None and (not isinstance(step, number) or isinstance(step, bool) or step <= 0):
        raise ConfigError(f'{here}: "step" must be a positive number.')
    if log and step is not None and (kind == "float" or step != 1):
        raise ConfigError(f'{here}: "log" and "step" cannot be used together.')
    if log and spec["low"] <= 0:
        raise ConfigError(f'{here}: a log-scale parameter needs "low" > 0.')
    if kind == "float" and isinstance(current, int) and not isinstance(current, bool):
        raise ConfigError(
            f'{here}: "{key}" holds an integer ({current}); use type = "int" to sweep it.'
        )
