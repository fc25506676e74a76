"""``harness interpolate``: generators between two of one architecture (ESRGAN's network
interpolation), each written as a model reference."""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands._options import MODEL, registry
from harness.deploy.interpolate import interpolate, parse_alphas
from harness.references import ModelRef


@click.command("interpolate")
@click.argument("a", metavar="A", type=MODEL)
@click.argument("b", metavar="B", type=MODEL)
@click.option(
    "--alpha",
    "alphas",
    default="0,0.2,...,1",
    show_default=True,
    help="The alphas, comma-separated; 0,0.2,...,1 is evenly spaced from 0 to 1.",
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for alpha_<alpha>.keras and interpolation.json.",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store of A and B when they are MLflow models [default: $MLFLOW_TRACKING_URI, "
    "else sqlite:///mlflow.db].",
)
def command(a: ModelRef, b: ModelRef, alphas: str, out: Path, tracking_uri: str | None) -> None:
    """Write generators with weights (1 - alpha) A + alpha B for each alpha (A and B: any model
    references of generators of the same architecture, e.g. a PSNR-oriented base and its GAN
    fine-tune). Alpha 0 is A and alpha 1 is B, exactly; each file is a model reference like any
    other.

    \b
      harness interpolate runs/compare_base_mse runs/compare_ft_srgan -o runs/interp
      harness evaluate --model runs/interp/alpha_0.6.keras --data data/set14
    """
    values = parse_alphas(alphas)
    written = interpolate(a, b, values, out, registry=registry(), tracking_uri=tracking_uri)
    for alpha, path in written.items():
        click.echo(f"alpha {alpha:g}: {path}")
