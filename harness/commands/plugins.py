"""``harness plugins``: everything the registry holds, and where it came from."""

from __future__ import annotations

import json

import click

from harness.commands._options import registry


@click.command("plugins")
@click.option("--kind", help="Only this kind (content_loss, adversarial_loss, generator, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(kind: str | None, as_json: bool) -> None:
    """List every registered plugin name, its kind and its distribution."""
    rows = [
        (e.name, e.kind, e.provenance, e.plugin)
        for e in registry().entries()
        if kind is None or e.kind == kind
    ]
    if as_json:
        keys = ("name", "kind", "distribution", "plugin")
        click.echo(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2))
        return
    header = ("NAME", "KIND", "DISTRIBUTION", "PLUGIN")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
