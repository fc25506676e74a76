"""Reading experiments: TOML text (``extends`` resolved), ``--set`` overrides, then the checks.

A file may start with ``extends = "base.toml"`` (relative to itself): the base is loaded first
and this file's tables are merged over it, key by key (a schedule table replaces a schedule
whole). ``--set table.key=value`` then sets one dotted key, list items by index.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.config import tables
from harness.config.dotted import set_dotted
from harness.config.schema import Experiment
from harness.config.sweep_space import check_sweep
from harness.config.writing import inline
from harness.errors import ConfigError
from harness.plugin_api.registry import Registry

# --------------------------------------------------------------------------- --set


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.steps=10", "losses.mse.weight=2"]`` -> ``{"train.steps": 10, ...}``.

    Values are TOML (``10``, ``1e-3``, ``true``, ``[1, 2]``, ``{schedule = "constant",
    value = 1}``); anything that does not parse as TOML is taken as a string.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        shown = item.encode("utf-8", "backslashreplace").decode("utf-8")
        if not sep or not key:
            raise ConfigError(
                f'--set "{shown}" is not of the form table.key=value, e.g. --set train.steps=100.'
            )
        if any(not part.strip() for part in key.split(".")):
            raise ConfigError(
                f'--set "{shown}": the key "{key}" has an empty part (two dots, or a dot at an '
                "end); write table.key=value, e.g. --set train.steps=3."
            )
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # bytes the terminal's encoding could not decode
            raise ConfigError(
                f'--set "{shown}" holds bytes that are not UTF-8 text; type the value as UTF-8 '
                "(experiment files and MLflow parameters are UTF-8)."
            ) from None
        out[key] = parse_value(raw.strip())
    return out


def parse_value(raw: str) -> Any:
    """One ``--set`` value: TOML if it parses, else the text itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


# --------------------------------------------------------------------------- files


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


# --------------------------------------------------------------------------- experiments


def load(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    *,
    registry: Registry,
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
    return from_dict(raw, source, registry=registry, overrides=shown)


def from_dict(
    raw: Mapping[str, Any],
    source: str = "<dict>",
    *,
    registry: Registry,
    overrides: Mapping[str, str] | None = None,
) -> Experiment:
    """Validate a raw experiment mapping (as read from TOML) into an :class:`Experiment`.

    ``registry`` holds the plugins the tables name (and the schedules and metrics).
    """
    exp = tables.experiment(raw, source, registry, overrides or {})
    if exp.sweep is not None:
        check_sweep(exp)
    return exp
