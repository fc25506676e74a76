"""Checking values against types: a fixed table's dataclass fields, or the keyword parameters of a
plugin's factory (its signature is its schema).

Errors say where the value sits (file, table, key, the ``--set`` it came from), what was
expected in words ("an integer", "one of 'mean', 'sum'") and, for an unknown key, the closest
known one. A pydantic model per signature was tried instead: its lax mode takes ``"3"`` for an
integer and ``1`` for ``true``, its strict mode refuses TOML arrays for tuples and ``2.0`` for an
integer, and its messages ("Input should be a valid integer", "Extra inputs are not permitted")
name neither the expected type as a plugin author wrote it nor a close key; this checker is
smaller than the adaptation would be.

Schedule tables are checked by a hook (:data:`ScheduleHook`) that the caller supplies, since a
schedule is itself a plugin: see :mod:`harness.config.tables`.
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union

from harness.config.schema import Schedulable, ScheduleSpec
from harness.errors import ConfigError

ScheduleHook = Callable[[Mapping[str, Any]], ScheduleSpec]
"""A schedule table -> its checked :class:`ScheduleSpec`; raises :class:`ScheduleError`."""


# --------------------------------------------------------------------------- where and errors


class Where:
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


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` Did you mean "x"?`` for the closest of ``known``, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f' Did you mean "{close[0]}"?' if close else ""


def unknown(where: Where, key: str, known: Sequence[str]) -> ConfigError:
    """An unknown key, with the closest known one and the list."""
    hint = did_you_mean(key.rsplit(".", 1)[-1], known)
    return ConfigError(
        f"unknown {where(key)}.{hint} Known keys: {', '.join(sorted(known)) or 'none'}."
    )


class Mismatch(Exception):
    """A value does not fit its type; the message is the expected type in words."""


class ScheduleError(Exception):
    """A schedule table names an unknown schedule or one that cannot be built."""


class ParamError(Exception):
    """A plugin parameter is unknown, missing or of the wrong type; ``key`` names it."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


# --------------------------------------------------------------------------- types


def type_name(annotation: Any) -> str:
    """An annotation in words, as error messages use it."""
    if annotation is Schedulable:
        return 'a number or a schedule table {schedule = "...", ...}'
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation))
    if origin in (tuple, list, Sequence):
        args = typing.get_args(annotation)
        return f"a list of {type_name(args[0])}" if args else "a list"
    if origin in (dict, Mapping):
        return "a table"
    if annotation is type(None):
        return "nothing"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def coerce(value: Any, annotation: Any, schedule: ScheduleHook | None = None) -> Any:
    """``value`` checked against ``annotation`` (and normalised: lists -> tuples, int -> float).

    A schedule table where a :data:`Schedulable` is expected goes through ``schedule`` (without
    one it is taken as written). Raises :class:`Mismatch` with the expected type's name when the
    value does not fit.
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return freeze(value)
    if annotation is Schedulable:
        if isinstance(value, Mapping):
            if "schedule" not in value or not isinstance(value["schedule"], str):
                raise Mismatch(type_name(Schedulable))
            return schedule(value) if schedule else _unchecked_schedule(value)
        if isinstance(value, ScheduleSpec):
            return value
        try:
            return coerce(value, float)
        except Mismatch:
            raise Mismatch(type_name(Schedulable)) from None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        if value in args:
            return value
        raise Mismatch(type_name(annotation))
    if origin in (Union, types.UnionType):
        for arg in args:
            try:
                return coerce(value, arg, schedule)
            except Mismatch:
                continue
        raise Mismatch(type_name(annotation))
    if origin in (tuple, list, Sequence) or annotation in (tuple, list):
        if not isinstance(value, list | tuple):
            raise Mismatch(type_name(annotation))
        item = args[0] if args else Any
        return tuple(coerce(v, item, schedule) for v in value)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise Mismatch("a table")
        return dict(value)
    return _scalar(value, annotation)


def _scalar(value: Any, annotation: Any) -> Any:
    if annotation is type(None):
        if value is None:
            return None
        raise Mismatch("nothing")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise Mismatch("true or false")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise Mismatch("an integer")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise Mismatch("a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise Mismatch("a string")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise Mismatch(type_name(annotation))


def schedule_parts(value: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A schedule table -> its name and parameters."""
    return value["schedule"], {k: v for k, v in value.items() if k != "schedule"}


def _unchecked_schedule(value: Mapping[str, Any]) -> ScheduleSpec:
    return ScheduleSpec(*schedule_parts(value))


def freeze(value: Any) -> Any:
    """Lists -> tuples, all the way down (the dataclasses are frozen and compared)."""
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


# --------------------------------------------------------------------------- plugin parameters


def factory_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a factory (a function or a class), annotations resolved."""
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
    schedule: ScheduleHook | None = None,
    host_supplied: Sequence[str] = (),
) -> dict[str, Any]:
    """``params`` checked against ``factory``'s signature, with its defaults filled in.

    Raises :class:`ParamError` naming the key.
    """
    known = {k: p for k, p in factory_parameters(factory).items() if k not in host_supplied}
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in known:
            if _accepts_anything(factory):
                out[key] = freeze(value)
                continue
            raise ParamError(
                f'unknown key "{key}".{did_you_mean(key, list(known))} '
                f"Known keys: {', '.join(sorted(known)) or 'none'}.",
                key,
            )
        try:
            out[key] = coerce(value, known[key].annotation, schedule)
        except Mismatch as exc:
            raise ParamError(f'key "{key}" must be {exc}, not {value!r}.', key) from None
        except ScheduleError as exc:
            raise ParamError(f'key "{key}": {exc}', key) from None
    for key, p in known.items():
        if key in out:
            continue
        if p.default is inspect.Parameter.empty:
            raise ParamError(f'missing required key "{key}".', key)
        if p.default is not None and _toml_representable(p.default):
            out[key] = freeze(p.default)
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
