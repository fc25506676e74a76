"""Options shared by several subcommands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry


def overrides_option(
    help: str = "Override a value (TOML syntax), e.g. --set train.steps=100. Repeatable.",
) -> Callable[[Any], Any]:
    """``--set TABLE.KEY=VALUE`` (repeatable), passed to the command as ``overrides``."""
    return click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE", help=help)


def registry() -> Registry:
    """The plugin registry of this command line invocation, built once on first use and passed
    on explicitly from here (commands -> wings); nothing below the CLI builds its own."""
    from harness.plugin_api.registry import build_registry

    root = click.get_current_context().find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    if "registry" not in root.obj:
        root.obj["registry"] = build_registry()
    return root.obj["registry"]
