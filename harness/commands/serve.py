"""``harness serve``: a REST prediction server (TF Serving and MLflow conventions)."""

from __future__ import annotations

import click

from harness.commands._options import MODEL, registry
from harness.deploy.asgi import bind_socket
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
    "--max-held-bytes",
    default="1GB",
    show_default=True,
    help="Largest total of answers waiting for clients to read them (slow readers); a new "
    "answer beyond it gets 503 (one answer alone is always sent).",
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
    max_held_bytes: str,
    tile: int,
) -> None:
    """Serve MODEL over HTTP until interrupted.

    \b
    POST /v1/models/NAME:predict  {"instances": [HxWx3 images in [0,1]]} -> {"predictions": ...}
    POST /invocations             {"inputs": NxHxWx3 tensor in [0,1]}    -> {"predictions": ...}
    POST /upscale                 a PNG/JPEG (multipart, raw body or {"image": base64}) -> PNG
    GET  /v1/models/NAME, /health, /version, /ping, /openapi.json, /docs (Swagger UI, offline)

    MODEL is any model reference, including a `harness export` folder; a generator is served in
    float32 whatever precision it was trained in. One line per request is logged to standard
    error (client, method, path, status, milliseconds).
    """
    import uvicorn  # the server: loaded only when serving

    from harness.deploy.serve import create_app  # FastAPI: loaded only when serving

    limit, held = parse_size(max_bytes), parse_size(max_held_bytes)
    sock = bind_socket(host, port)  # a taken port or a bad host: one error line, before loading
    with sock:
        upscaler = load_upscaler(model, registry=registry(), tile=tile)
        app = create_app(
            upscaler,
            name=name,
            max_bytes=limit,
            max_pixels=max_pixels,
            max_output_pixels=max_output_pixels,
            max_held_bytes=held,
            reference=str(model),
        )
        port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(
            f'serving {model} (x{upscaler.scale}) as "{name}" on http://{shown}:{port} '
            f"(POST /v1/models/{name}:predict, /invocations, /upscale; docs at /docs)",
            err=True,
        )
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        server.run(sockets=[sock])


command.help = (command.help or "") + f"\n\nAccepted MODEL forms: {ACCEPTED}."
