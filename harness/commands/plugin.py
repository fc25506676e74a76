"""``harness plugin new``: start a plugin package (a loss, GAN loss, generator or schedule)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from harness.plugin_api import scaffold


@click.group("plugin")
def command() -> None:
    """Write plugin packages. `harness plugins` lists the installed ones."""


@command.command("new")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(list(scaffold.SCAFFOLD_KINDS)),
    default="loss",
    show_default=True,
    help="What the package registers.",
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Folder to create the package folder harness-NAME in.",
)
def new(name: str, kind: str, dest: str) -> None:
    """Create the package harness-NAME (import harness_NAME), ready to `pip install -e`.

    NAME is normalised to snake_case (MyLoss, my-loss -> my_loss): it is the name experiments
    use. The package holds a documented implementation to edit, a test running the project's
    plugin contract checks, a README and a pyproject.toml with the "harness" entry point.
    """
    target = scaffold.write_package(name, kind, dest)
    names = scaffold.PluginNames(scaffold.normalise_name(name))
    shown = _shown(target)
    click.echo(
        f'created {shown}: {kind} "{names.name}" (distribution {names.distribution}, '
        f"import {names.module})"
    )
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        click.echo(f"  {_shown(path)}")
    click.echo("next:")
    click.echo(f"  pip install -e {shown}")
    click.echo(f"  harness plugins --kind {scaffold.SCAFFOLD_KINDS[kind]}")
    click.echo(f"  pytest {shown}")


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it (shorter to copy)."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)
