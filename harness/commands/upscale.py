"""``harness upscale``: images, folders of images (or video frames) and video files.

The pipelines live in :mod:`harness.deploy.upscaling`; this module parses the command line,
makes one call and prints.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands._options import MODEL, registry
from harness.deploy.upscaling import upscale_path
from harness.references import ACCEPTED, ModelRef


@click.command("upscale")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output file (for an image or video INPUT) or folder (for a folder INPUT; a video "
    "file such as out.mp4 encodes the upscaled frames).",
)
@click.option("--model", "-m", type=MODEL, required=True, help=f"The trained model: {ACCEPTED}.")
@click.option(
    "--tile",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Process images in LR tiles of this side (bounded memory; 0: whole images).",
)
@click.option(
    "--overlap",
    type=click.IntRange(min=0),
    default=None,
    help="LR pixels of context around each tile [default: the model's receptive field].",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Also write bicubic (MATLAB imresize, as evaluation scores it) | model side by side.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Images or frames per forward pass (same-sized ones only).",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=25.0,
    show_default=True,
    help="Frame rate of the video a folder of frames becomes (-o out.mp4).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(
    input_path: Path,
    output: Path,
    model: ModelRef,
    tile: int,
    overlap: int | None,
    compare: bool,
    batch: int,
    fps: float,
    quiet: bool,
) -> None:
    """Upscale INPUT with a trained generator.

    INPUT is an image, a folder of images (video frames included) or a video file (anything
    FFmpeg reads). Outputs keep the input's format (and a video its frame rate); a folder of
    frames with -o naming a video (.mp4, .mkv, .mov, .avi, .webm) is encoded at --fps. With
    --compare a bicubic-vs-model side-by-side is written next to each output
    (NAME_compare.EXT, or a folder OUTPUT_compare for a folder INPUT).
    """
    done = upscale_path(
        input_path,
        output,
        model=model,
        registry=registry(),
        tile=tile,
        overlap=overlap,
        compare=compare,
        batch=batch,
        quiet=quiet,
        fps=fps,
    )
    if not quiet:
        click.echo(f"upscaled x{done.scale}: {done.summary}")
    error = done.skipped_error()
    if error is not None:
        raise error
