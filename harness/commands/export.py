"""``harness export``: a trained generator as a TensorFlow SavedModel (TF Serving) or ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands._options import MODEL, registry
from harness.deploy import onnx
from harness.deploy.export import TOLERANCE, export_checked, export_target
from harness.deploy.models import load_generator
from harness.deploy.precision import FLOAT32, PRECISIONS
from harness.references import ModelRef


@click.command("export")
@click.argument("run", metavar="RUN", type=MODEL)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="New (or empty) folder for the SavedModel; with --format onnx a new .onnx file, or a "
    "folder to write model.onnx in. Nothing that exists there is replaced.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["savedmodel", "onnx"]),
    default="savedmodel",
    show_default=True,
    help="savedmodel: TF Serving, `harness serve`; onnx: ONNX Runtime, Triton and others.",
)
@click.option(
    "--version",
    "model_version",
    type=click.IntRange(min=1),
    default=None,
    help="Write into OUTPUT/<VERSION>/, the layout TF Serving's model_base_path (and Triton's "
    "model repository) expects.",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=FLOAT32,
    show_default=True,
    help="What the exported network computes in, whatever it was trained in. bfloat16 is for "
    "hardware with bf16 kernels (ONNX Runtime's CPU provider has none); it is checked against "
    "float32 within 8 levels of 8 bits.",
)
@click.option(
    "--check-image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The image the export is checked on against TensorFlow float32 [default: "
    "scikit-image's astronaut photo].",
)
def command(
    run: ModelRef,
    output: Path,
    fmt: str,
    model_version: int | None,
    precision: str,
    check_image: Path | None,
) -> None:
    """Export RUN's generator as a SavedModel with a "serving_default" signature, or as ONNX.

    Both take "lr" (float32, shape [batch, height, width, 3], values in [0, 1]; any batch and
    size) and return "sr" (the upscaled batch in [0, 1]). TF Serving loads the SavedModel
    folder as is; `harness serve OUTPUT` serves it too. The network is rebuilt in float32 (or
    --precision bfloat16) whatever precision it was trained in, written under a temporary name
    beside OUTPUT, run on a real image and compared with TensorFlow float32 (the largest
    difference is printed); it is renamed into place only when it agrees (a quarter of an
    8-bit level for float32), so a failed export leaves nothing behind.

    RUN is any model reference the other commands take (a run directory, a .keras file, a
    checkpoint, an MLflow URI or run id, models:/NAME@ALIAS).
    """
    target = export_target(output, fmt, model_version)  # a taken -o: refused before loading
    generator = load_generator(run, registry=registry())
    lr = onnx.check_image(check_image)
    diff = export_checked(generator, target, fmt, lr, precision)
    kind = "ONNX" if fmt == "onnx" else "SavedModel"
    what = f"ONNX opset {onnx.OPSET}" if fmt == "onnx" else "SavedModel, signature serving_default"
    click.echo(
        f"exported {run} -> {target} ({what}: lr -> sr, {precision}); max |{kind} - "
        f"TensorFlow float32| = {diff:.2e} on a {lr.shape[2]}x{lr.shape[1]} image "
        f"(tolerance {TOLERANCE[precision]:.2e})"
    )
