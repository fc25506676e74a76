"""``harness export``: a trained generator as a TensorFlow SavedModel (TF Serving) or ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands._options import MODEL, registry
from harness.deploy import onnx
from harness.deploy.export import export_saved_model
from harness.deploy.models import load_generator
from harness.errors import HarnessError
from harness.references import ModelRef


@click.command("export")
@click.argument("run", metavar="RUN", type=MODEL)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="New (or empty) folder for the SavedModel; with --format onnx a new .onnx file, or a "
    "folder to write model.onnx in.",
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
    "--check-image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="ONNX: the image the export is checked on against TensorFlow [default: scikit-image's "
    "astronaut photo].",
)
def command(
    run: ModelRef, output: Path, fmt: str, model_version: int | None, check_image: Path | None
) -> None:
    """Export RUN's generator as a SavedModel with a "serving_default" signature, or as ONNX.

    Both take "lr" (float32, shape [batch, height, width, 3], values in [0, 1]; any batch and
    size) and return "sr" (the upscaled batch in [0, 1]). TF Serving loads the SavedModel
    folder as is; `harness serve OUTPUT` serves it too. An ONNX export is checked against
    TensorFlow on a real image (the largest difference is printed; the export fails above a
    quarter of an 8-bit level).

    RUN is any model reference the other commands take (a run directory, a .keras file, a
    checkpoint, an MLflow URI or run id, models:/NAME@ALIAS).
    """
    base = output / str(model_version) if model_version else output
    if fmt == "onnx":
        target = base if base.suffix == ".onnx" else base / "model.onnx"
        if target.exists():
            raise onnx.OnnxExportError(f"{target} exists; give a new file name (or remove it).")
        generator = load_generator(run, registry=registry())
        onnx.export_onnx(generator, target)
        lr = onnx.check_image(check_image)
        try:
            diff = onnx.check_onnx(target, generator, lr)
        except onnx.OnnxExportError:
            target.unlink()
            raise
        click.echo(
            f"exported {run} -> {target} (ONNX opset {onnx.OPSET}: lr -> sr); max |ONNX - "
            f"TensorFlow| = {diff:.2e} on a {lr.shape[2]}x{lr.shape[1]} image "
            f"(tolerance {onnx.TOLERANCE:.2e})"
        )
        return

    if base.is_file():
        raise HarnessError(f"-o {base} is a file; give a new folder for the SavedModel.")
    generator = load_generator(run, registry=registry())
    export_saved_model(generator, base)
    click.echo(f"exported {run} -> {base} (signature serving_default: lr -> sr)")
