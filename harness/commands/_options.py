"""Options shared by several subcommands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from harness.plugin_api.registry import build_registry
from harness.references import ModelRef, parse_reference

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry


class ModelReference(click.ParamType):
    """A model reference, parsed into a :class:`~harness.references.ModelRef` as the command
    line is read (a malformed one is one ``error:`` line, as every harness error is)."""

    name = "model"

    def __init__(self, bicubic: bool = False) -> None:
        self.bicubic = bicubic

    def convert(self, value: Any, param: Any, ctx: Any) -> ModelRef:
        return parse_reference(value, bicubic=self.bicubic)


MODEL = ModelReference()
"""A model reference option or argument's type."""
MODEL_OR_BICUBIC = ModelReference(bicubic=True)
"""The same, where ``bicubic`` (the baseline) is accepted too."""


def overrides_option(
    help: str = "Override a value (TOML syntax), e.g. --set train.steps=100. Repeatable.",
) -> Callable[[Any], Any]:
    """``--set TABLE.KEY=VALUE`` (repeatable), passed to the command as ``overrides``."""
    return click.option("--set", "overrides", multiple=True, metavar="TABLE.KEY=VALUE", help=help)


def registry() -> Registry:
    """The plugin registry of this command line invocation, built once on first use and passed
    on explicitly from here (commands -> wings); nothing below the CLI builds its own."""

    root = click.get_current_context().find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    if "registry" not in root.obj:
        root.obj["registry"] = build_registry()
    return root.obj["registry"]
