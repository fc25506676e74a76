"""``harness show``: the fully resolved experiment, itself a valid experiment file."""

from __future__ import annotations

import click

from harness.commands._options import overrides_option
from harness.config import experiment as config


@click.command("show")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False))
@overrides_option()
@click.option("--flat", is_flag=True, help="Print dotted keys (the MLflow parameter names).")
def command(experiment: str | None, overrides: tuple[str, ...], flat: bool) -> None:
    """Validate EXPERIMENT and print it with every default filled in.

    Without EXPERIMENT, prints the built-in defaults.
    """
    exp = config.load(experiment, overrides)
    if flat:
        for key, value in exp.flat_params().items():
            click.echo(f"{key} = {value}")
    else:
        click.echo(exp.to_toml(), nl=False)
