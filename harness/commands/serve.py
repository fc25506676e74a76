"""``harness serve``: a REST prediction server (TF Serving and MLflow conventions)."""

from __future__ import annotations

import click

from harness.commands._options import MODEL, registry
from harness.deploy.codecs import parse_size
from harness.deploy.models import load_upscaler
from harness.references import ACCEPTED, ModelRef


@click.command("serve")
@click.argument("model", metavar="MODEL", type=MODEL)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8501, show_default=True, help="TCP port."
)
@click.option(
    "--name",
    default="srgan",
    show_default=True,
    help="Model name in the routes: POST /v1/models/NAME:predict.",
)
@click.option(
    "--max-bytes",
    default="32MB",
    show_default=True,
    help="Largest request body accepted (larger ones get 413), e.g. 8MB, 512KB.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=4096 * 4096,
    show_default=True,
    help="Largest number of LR pixels per request (413 beyond).",
)
@click.option(
    "--max-output-pixels",
    type=click.IntRange(min=1),
    default=4096 * 4096,
    show_default=True,
    help="Largest number of SR (output) pixels per request, all images together (413 beyond): "
    "about 38 bytes of JSON response per pixel.",
)
@click.option(
    "--tile",
    type=click.IntRange(min=0),
    default=256,
    show_default=True,
    help="Upscale larger inputs in LR tiles of this side (bounded memory; 0: never tile).",
)
def command(
    model: ModelRef,
    host: str,
    port: int,
    name: str,
    max_bytes: str,
    max_pixels: int,
    max_output_pixels: int,
    tile: int,
) -> None:
    """Serve MODEL over HTTP until interrupted.

    \b
    POST /v1/models/NAME:predict  {"instances": [HxWx3 images in [0,1]]} -> {"predictions": ...}
    POST /invocations             {"inputs": NxHxWx3 tensor in [0,1]}    -> {"predictions": ...}
    POST /upscale                 a PNG/JPEG (multipart, raw body or {"image": base64}) -> PNG
    GET  /v1/models/NAME, /health, /ping, /openapi.json, /docs (Swagger UI, from a CDN)

    MODEL is any model reference, including a `harness export` folder.
    """
    import uvicorn  # the server: loaded only when serving

    from harness.deploy.serve import create_app  # FastAPI: loaded only when serving

    limit = parse_size(max_bytes)
    upscaler = load_upscaler(model, registry=registry(), tile=tile)
    app = create_app(
        upscaler,
        name=name,
        max_bytes=limit,
        max_pixels=max_pixels,
        max_output_pixels=max_output_pixels,
    )
    click.echo(
        f'serving {model} (x{upscaler.scale}) as "{name}" on http://{host}:{port} '
        f"(POST /v1/models/{name}:predict, /invocations, /upscale)",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


command.help = (command.help or "") + f"\n\nAccepted MODEL forms: {ACCEPTED}."
