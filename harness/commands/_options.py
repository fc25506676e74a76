"""Options shared by several subcommands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def overrides_option(
    help: str = "Override a value (TOML syntax), e.g. --set train.steps=100. Repeatable.",
) -> Callable[[Any], Any]:
    """``--set TABLE.KEY=VALUE`` (repeatable), passed to the command as ``overrides``."""
    return click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE", help=help)
