"""``harness show``: the fully resolved experiment, itself a valid experiment file."""

from __future__ import annotations

import click

from harness import config
from harness.commands._options import overrides_option, registry


@click.command("show")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False))
@overrides_option()
@click.option("--flat", is_flag=True, help="Print dotted keys (the MLflow parameter names).")
def command(experiment: str | None, overrides: tuple[str, ...], flat: bool) -> None:
    """Validate EXPERIMENT and print it with every default filled in (step milestones
    resolved to numbers).

    Without EXPERIMENT, prints the built-in defaults.
    """
    exp = config.load(experiment, overrides, registry=registry())
    if flat:
        for key, value in exp.flat_params().items():
            click.echo(f"{key} = {value}")
    else:
        click.echo(exp.to_toml(), nl=False)
