"""Writing resolved values back as TOML: the inverse of reading, so that ``harness show`` prints
a file that loads to the same experiment, and the flat dotted keys MLflow records.

Works on plain values and on anything with a ``to_toml()`` (the schema's value types), so it
needs nothing from the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomli_w


def to_toml_value(value: Any) -> Any:
    """``value`` as TOML data: value types through their ``to_toml()``, tuples as lists, and
    table entries that are ``None`` left out (TOML has no null)."""
    if hasattr(value, "to_toml"):
        return value.to_toml()
    if isinstance(value, Mapping):
        return {k: to_toml_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, tuple | list):
        return [to_toml_value(v) for v in value]
    return value


def dumps(tree: Mapping[str, Any]) -> str:
    """A resolved experiment tree (:meth:`Experiment.to_toml_dict`) as TOML text."""
    return tomli_w.dumps(dict(tree))


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
    if hasattr(value, "to_toml"):
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
