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
- ``GET /openapi.json`` (the schema, offline) and ``GET /docs`` (Swagger UI; the page loads its
  JavaScript and CSS from a CDN, so it needs internet access in the browser).

Tensors are float32 NHWC in ``[0, 1]`` (LR in, SR out). Every bad request gets a 4xx with
``{"error": "..."}`` naming the problem (TF Serving's error shape); bodies over ``max_bytes``
get 413 before they are read in full. Decoding, encoding and the limits live in
:mod:`harness.deploy.codecs`; this module owns the application and its routes.

The work per request is bounded by what it produces, not only by what it sends: a request whose
output would exceed ``max_output_pixels`` (all images together) gets 413 before the model runs.
Parsing, the forward pass and encoding the response run in a worker thread under one lock, so
one request at a time holds its arrays and its encoded response.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

# module level: FastAPI resolves the handlers' annotations (postponed by the __future__
# import) in this module's namespace when it builds /openapi.json
from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from harness.data.images import encode_png, to_uint8
from harness.deploy.codecs import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_OUTPUT_PIXELS,
    DEFAULT_MAX_PIXELS,
    INPUT_NAME,
    BodyLimit,
    RequestError,
    check_work,
    decode_image,
    instances,
    parse_json,
    parse_size,
    parse_tensor,
    tensor_json,
)
from harness.deploy.upscaler import Upscaler
from harness.errors import HarnessError

__all__ = ["RequestError", "create_app", "parse_size"]


def create_app(
    upscaler: Upscaler,
    *,
    name: str = "srgan",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
) -> Any:
    """The ASGI application serving ``upscaler`` as model ``name``.

    ``max_pixels`` bounds the LR pixels and ``max_output_pixels`` the SR pixels of one request
    (all its images together); larger requests get 413 before the model runs.
    """
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    app = FastAPI(
        title="srgan-harness upscaler",
        description=__doc__,
        docs_url="/docs",
        redoc_url=None,
    )
    lock = threading.Lock()  # one request's parse, forward pass and encoding at a time
    scale = int(upscaler.scale)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return error(500, f"the model failed: {type(exc).__name__}: {exc}")

    def locked(work: Callable[[], bytes | bytearray]) -> bytes | bytearray:
        """Run one request's work (parse, upscale, encode) in a worker thread under the lock,
        so the event loop stays free and only one request's arrays exist at a time."""
        with lock:
            try:
                return work()
            except HarnessError as exc:
                raise RequestError(400, str(exc)) from None

    def upscale_tensor(lr: np.ndarray, key: str) -> bytearray:
        check_work(lr.shape, scale, max_output_pixels)
        return tensor_json(key, upscaler(lr))

    def json_response(body: bytes | bytearray) -> Response:
        return Response(memoryview(body), media_type="application/json")

    def status() -> dict:
        return {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def check_name(model: str) -> None:
        if model != name:
            raise RequestError(
                404,
                f'Servable not found for request: model "{model}"; this server serves "{name}".',
            )

    @app.get("/ping", response_class=PlainTextResponse)
    def ping() -> PlainTextResponse:
        return PlainTextResponse("\n")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": name, "scale": upscaler.scale}

    @app.get("/v1/models/{model}")
    def model_status(model: str) -> dict:
        check_name(model)
        return status()

    @app.get("/v1/models/{model}/metadata")
    def model_metadata(model: str) -> dict:
        check_name(model)
        tensor = {
            "dtype": "DT_FLOAT",
            "tensor_shape": {"dim": [{"size": "-1"}] * 3 + [{"size": "3"}]},
        }
        return {
            "model_spec": {"name": name, "signature_name": "", "version": "1"},
            "metadata": {
                "signature_def": {
                    "signature_def": {
                        "serving_default": {
                            "inputs": {INPUT_NAME: {**tensor, "name": INPUT_NAME}},
                            "outputs": {"sr": {**tensor, "name": "sr"}},
                            "method_name": "tensorflow/serving/predict",
                        }
                    }
                },
                "scale": upscaler.scale,
            },
        }

    @app.post("/v1/models/{target:path}")
    async def tf_serving_predict(target: str, request: Request) -> Response:
        model, sep, verb = target.rpartition(":")
        if not sep:
            raise RequestError(
                404, f"unknown route /v1/models/{target}; use /v1/models/{name}:predict."
            )
        model = model.split("/versions/")[0].split("/labels/")[0]
        check_name(model)
        if verb != "predict":
            raise RequestError(400, f'"{verb}" is not supported; this model answers ":predict".')
        body = await request.body()

        def work() -> bytearray:
            payload = parse_json(body)
            if "instances" in payload:
                lr = parse_tensor(instances(payload["instances"]), "instances", max_pixels)
                return upscale_tensor(lr, "predictions")
            if "inputs" in payload:
                inputs = payload["inputs"]
                if isinstance(inputs, dict):
                    inputs = inputs.get(INPUT_NAME)
                return upscale_tensor(parse_tensor(inputs, "inputs", max_pixels), "outputs")
            raise RequestError(400, 'the body must have "instances" (row format) or "inputs".')

        return json_response(await run_in_threadpool(locked, work))

    @app.post("/invocations")
    async def mlflow_invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", "application/json").split(";")[0]
        if content_type.strip() != "application/json":
            raise RequestError(
                415, f'/invocations takes application/json ({{"inputs": ...}}), not {content_type}.'
            )
        body = await request.body()

        def work() -> bytearray:
            payload = parse_json(body)
            for key in ("inputs", "instances"):
                if key in payload:
                    value = payload[key]
                    if isinstance(value, dict):
                        value = value.get(INPUT_NAME)
                    return upscale_tensor(parse_tensor(value, key, max_pixels), "predictions")
            raise RequestError(
                400,
                'the body must have "inputs" (a 4-D tensor); dataframe formats are not '
                "accepted for images.",
            )

        return json_response(await run_in_threadpool(locked, work))

    @app.post("/upscale")
    async def upscale_image(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            form = await request.form()
            files = [v for v in form.values() if hasattr(v, "read")]
            if not files:
                raise RequestError(
                    400, 'the multipart form has no file; send the image as "image".'
                )
            data = await files[0].read()
        elif content_type == "application/json":
            payload = parse_json(await request.body())
            text = payload.get("image", payload.get("b64"))
            if not isinstance(text, str):
                raise RequestError(400, 'the JSON body must have "image": a base64 string.')
            try:
                data = base64.b64decode(text.split(",", 1)[-1], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise RequestError(400, f'"image" is not valid base64 ({exc}).') from None
        elif content_type.startswith("image/") or content_type == "application/octet-stream":
            data = await request.body()
        else:
            raise RequestError(
                415,
                "send the image as multipart/form-data, as an image/* body, or as JSON "
                f'{{"image": "<base64>"}}; got Content-Type {content_type or "(none)"}.',
            )

        def work() -> bytes:
            image = decode_image(data, max_pixels, scale=scale, max_output_pixels=max_output_pixels)
            sr = upscaler(image.astype(np.float32)[None] / 255.0)
            return encode_png(to_uint8(sr[0]))

        png = await run_in_threadpool(locked, work)
        return Response(png, media_type="image/png")

    return BodyLimit(app, max_bytes)
