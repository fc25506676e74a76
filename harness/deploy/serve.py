"""A REST prediction server for an upscaler, on the conventions clients already speak.

Routes (``<name>`` is the served model's name, ``srgan`` by default):

- ``POST /v1/models/<name>:predict`` (also ``/v1/models/<name>/versions/<n>:predict``): TF
  Serving's REST API. Row format ``{"instances": [...]}`` -> ``{"predictions": [...]}``, each
  instance an ``(h, w, 3)`` image or ``{"lr": image}``; columnar ``{"inputs": ...}`` ->
  ``{"outputs": ...}``.
- ``POST /invocations``: MLflow's scoring protocol, ``{"inputs": tensor}`` (or ``instances``)
  -> ``{"predictions": tensor}``.
- ``POST /upscale``: one PNG/JPEG image, as a multipart upload (any file field), as the raw
  body (``Content-Type: image/...``) or as JSON ``{"image": "<base64>"}``; returns a PNG.
- ``GET /v1/models/<name>`` (TF Serving's model status), ``GET /v1/models/<name>/metadata``,
  ``GET /health``, ``GET /ping`` (MLflow's and SageMaker's health check: 200 once the model is
  loaded, which it is before the server listens).
- ``GET /version``: the harness version and the model reference served.
- ``GET /openapi.json`` (the schema: request bodies, answers, the ``{"error": ...}`` shape;
  :mod:`harness.deploy.openapi`) and ``GET /docs`` (Swagger UI, its JavaScript and CSS served
  by the server itself from ``fastapi-offline``: it works without internet access).

Tensors are float32 NHWC in ``[0, 1]`` (LR in, SR out). Every bad request gets a 4xx with
``{"error": "..."}`` naming the problem (TF Serving's error shape); bodies over ``max_bytes``
get 413 before they are read in full. Decoding, encoding and the limits live in
:mod:`harness.deploy.codecs`, the routes in :mod:`harness.deploy.routes`; this module builds the
application and its error handling.

The work per request is bounded by what it produces, not only by what it sends: a request whose
output would exceed ``max_output_pixels`` (all images together) gets 413 before the model runs.
Parsing, the forward pass and encoding the response run in a worker thread under one lock, so
one request at a time holds its arrays and its encoded response. Encoded answers then wait for
their clients to read them; the bytes they hold, all together, are bounded by
``max_held_bytes`` (503 beyond, :class:`harness.deploy.asgi.HeldBytes`), so slow readers cannot
grow the server without bound. Every request is logged in one line (:class:`AccessLog`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from harness import __version__
from harness.deploy.asgi import DEFAULT_MAX_HELD_BYTES, AccessLog, HeldBytes
from harness.deploy.codecs import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_OUTPUT_PIXELS,
    DEFAULT_MAX_PIXELS,
    BodyLimit,
    RequestError,
    parse_size,
)
from harness.deploy.openapi import DESCRIPTION, without_unused_422
from harness.deploy.routes import (
    Served,
    health_routes,
    mlflow_routes,
    tf_serving_routes,
    upscale_routes,
)
from harness.deploy.upscaler import Upscaler

__all__ = ["RequestError", "create_app", "parse_size"]


def create_app(
    upscaler: Upscaler,
    *,
    name: str = "srgan",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
    max_held_bytes: int = DEFAULT_MAX_HELD_BYTES,
    reference: str = "",
    access_log: Callable[[str], Any] | None = None,
) -> Any:
    """The ASGI application serving ``upscaler`` (loaded from ``reference``) as model ``name``.

    ``max_pixels`` bounds the LR pixels and ``max_output_pixels`` the SR pixels of one request
    (all its images together); larger requests get 413 before the model runs.
    ``max_held_bytes`` bounds the answers waiting for clients (503 beyond). ``access_log``
    receives one line per request (default: standard error).
    """
    app = FastAPIOffline(
        title="srgan-harness upscaler",
        description=DESCRIPTION,
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
    )
    add_error_handlers(app)
    served = Served(
        upscaler,
        name,
        max_pixels,
        max_output_pixels,
        held=HeldBytes(max_held_bytes),
        reference=reference or getattr(upscaler, "source", ""),
    )
    for routes in (mlflow_routes, health_routes, tf_serving_routes, upscale_routes):
        app.include_router(routes(served))
    openapi = app.openapi
    app.openapi = lambda: without_unused_422(openapi())
    return AccessLog(BodyLimit(app, max_bytes), access_log)


def error(status: int, message: str) -> JSONResponse:
    """TF Serving's error shape: ``{"error": "..."}``."""
    return JSONResponse({"error": message}, status_code=status)


def add_error_handlers(app: FastAPI) -> None:
    """Every failure answers as :func:`error`: client errors with their status, the rest 500."""

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"the model failed: {type(exc).__name__}: {exc}")
