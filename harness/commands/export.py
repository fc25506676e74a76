"""``harness export``: a trained generator as a TensorFlow SavedModel for TF Serving."""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands._options import registry
from harness.deploy.export import export_saved_model
from harness.deploy.models import load_generator


@click.command("export")
@click.argument("run", metavar="RUN")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New (or empty) folder for the SavedModel.",
)
@click.option(
    "--version",
    "model_version",
    type=click.IntRange(min=1),
    default=None,
    help="Write into OUTPUT/<VERSION>/, the layout TF Serving's model_base_path expects.",
)
def command(run: str, output: Path, model_version: int | None) -> None:
    """Export RUN's generator as a SavedModel with a "serving_default" signature.

    The signature takes "lr" (float32, shape [batch, height, width, 3], values in [0, 1];
    any batch and size) and returns "sr" (the upscaled batch in [0, 1]). TF Serving loads the
    folder as is; `harness serve OUTPUT` serves it too.

    RUN is any model reference the other commands take (a run directory, a .keras file, a
    checkpoint, an MLflow URI or run id).
    """
    generator = load_generator(run, registry=registry())
    target = output / str(model_version) if model_version else output
    export_saved_model(generator, target)
    click.echo(f"exported {run} -> {target} (signature serving_default: lr -> sr)")
