"""Dotted keys (``losses.mse.weight.values.1``): the one vocabulary of ``--set``, sweep
parameters and MLflow parameter names, as paths into nested tables (list items by index)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import ConfigError


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
    """The value at ``a.b.c`` (list items by index)."""
    node: Any = raw
    for part in key.split("."):
        node = node[_index(part, key)] if isinstance(node, list | tuple) else node[part]
    return node


def _index(part: str, key: str) -> int:
    if not part.isdigit():
        raise ConfigError(f'"{key}": "{part}" indexes a list, so it must be a number.')
    return int(part)
