"""The REST app's routes: one router per family of clients (TF Serving, MLflow, uploads, health).

Each ``*_routes`` function returns a FastAPI router for one :class:`Served` model; the
application in :mod:`harness.deploy.serve` includes them and turns every :class:`RequestError`
into ``{"error": "..."}``. The conventions each family follows are listed in that module.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# module level: FastAPI resolves the handlers' annotations (postponed by the __future__
# import) in this module's namespace when it builds /openapi.json
from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from harness import __version__
from harness.data.images import encode_png, to_uint8
from harness.deploy.asgi import HeldBytes, HeldResponse
from harness.deploy.codecs import (
    INPUT_NAME,
    RequestError,
    check_work,
    decode_image,
    instances,
    parse_json,
    parse_tensor,
    tensor_json,
)
from harness.deploy.openapi import (
    ERRORS,
    INVOCATIONS_BODY,
    PNG,
    PREDICT_BODY,
    PREDICTIONS,
    UPSCALE_BODY,
)
from harness.deploy.upscaler import Upscaler
from harness.errors import HarnessError


@dataclass
class Served:
    """The served model, its name and the per-request limits every route applies to it.

    One lock: parsing, the forward pass and encoding of one request run in a worker thread
    while no other request's do, so only one request's arrays and response exist at a time.
    """

    upscaler: Upscaler
    name: str
    max_pixels: int
    max_output_pixels: int
    held: HeldBytes = field(default_factory=HeldBytes)
    reference: str = ""
    scale: int = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.scale = int(self.upscaler.scale)

    def check_name(self, model: str) -> None:
        if model != self.name:
            raise RequestError(
                404,
                f'Servable not found for request: model "{model}"; '
                f'this server serves "{self.name}".',
            )

    def upscale_tensor(self, value: Any, what: str, key: str) -> bytearray:
        """A JSON tensor -> its SR as the JSON body ``{key: ...}``, bounded before the model."""
        lr = parse_tensor(value, what, self.max_pixels)
        check_work(lr.shape, self.scale, self.max_output_pixels)
        return tensor_json(key, self.upscaler(lr))

    async def run(self, work: Callable[[], bytes | bytearray]) -> bytes | bytearray:
        """``work`` in a worker thread under the lock, so the event loop stays free."""
        return await run_in_threadpool(self._locked, work)

    def respond(self, body: bytes | bytearray, media_type: str) -> Response:
        """``body`` as the answer, counted among the bytes held for clients; 503 when the
        answers already waiting leave no room for it."""
        if not self.held.reserve(len(body)):
            waiting = self.held.held / 2**20
            raise RequestError(
                503,
                f"the server holds {waiting:.0f} MiB of answers that clients have not read yet "
                f"(limit {self.held.limit / 2**20:.0f} MiB, --max-held-bytes); this answer of "
                f"{len(body) / 2**20:.1f} MiB does not fit: retry in a moment.",
            )
        return HeldResponse(body, media_type, self.held)

    def _locked(self, work: Callable[[], bytes | bytearray]) -> bytes | bytearray:
        with self.lock:
            try:
                return work()
            except HarnessError as exc:
                raise RequestError(400, str(exc)) from None


def tensor_input(payload: dict, key: str) -> Any:
    """``payload[key]``, or its ``"lr"`` entry when it is a dict of named inputs."""
    value = payload[key]
    return value.get(INPUT_NAME) if isinstance(value, dict) else value


# --------------------------------------------------------------------------- TF Serving


def tf_serving_routes(served: Served) -> APIRouter:
    """TF Serving's REST API: model status, metadata and ``:predict``."""
    router = APIRouter()
    # the served name as each path parameter's example, so Swagger UI's "Try it out" has a
    # request that works (a parameter with no value is not sent at all)
    model_name = Path(
        description="the served model's name (`harness serve --name`)",
        openapi_examples={"served": {"summary": "the served model", "value": served.name}},
    )
    predict_target = Path(
        description="`NAME:predict` or `NAME/versions/N:predict`",
        openapi_examples={
            "served": {"summary": "the served model", "value": f"{served.name}:predict"}
        },
    )

    unknown = {404: ERRORS[404]}

    @router.get("/v1/models/{model}", summary="The model's status (TF Serving)", responses=unknown)
    def model_status(model: str = model_name) -> dict:
        served.check_name(model)
        ok = {"error_code": "OK", "error_message": ""}
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]}

    @router.get(
        "/v1/models/{model}/metadata",
        summary="The model's signature and scale (TF Serving)",
        responses=unknown,
    )
    def model_metadata(model: str = model_name) -> dict:
        served.check_name(model)
        return tf_serving_metadata(served)

    @router.post(
        "/v1/models/{target:path}",
        summary="Upscale a batch (TF Serving's :predict)",
        description="`target` is `NAME:predict` (or `NAME/versions/N:predict`), NAME the "
        'served model\'s name. Row format `{"instances": [...]}` answers '
        '`{"predictions": [...]}`; columnar `{"inputs": ...}` answers `{"outputs": ...}`.',
        openapi_extra=PREDICT_BODY,
        responses=PREDICTIONS,
        response_class=Response,
    )
    async def tf_serving_predict(request: Request, target: str = predict_target) -> Response:
        model, sep, verb = target.rpartition(":")
        if not sep:
            raise RequestError(
                404, f"unknown route /v1/models/{target}; use /v1/models/{served.name}:predict."
            )
        served.check_name(model.split("/versions/")[0].split("/labels/")[0])
        if verb != "predict":
            raise RequestError(400, f'"{verb}" is not supported; this model answers ":predict".')
        body = await request.body()
        answer = await served.run(lambda: tf_serving_predict_body(served, body))
        return served.respond(answer, "application/json")

    return router


def tf_serving_metadata(served: Served) -> dict:
    tensor = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}] * 3 + [{"size": "3"}]}}
    signature = {
        "inputs": {INPUT_NAME: {**tensor, "name": INPUT_NAME}},
        "outputs": {"sr": {**tensor, "name": "sr"}},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": served.name, "signature_name": "", "version": "1"},
        "metadata": {
            "signature_def": {"signature_def": {"serving_default": signature}},
            "scale": served.upscaler.scale,
        },
    }


def tf_serving_predict_body(served: Served, body: bytes) -> bytearray:
    """Row format ``instances`` -> ``predictions``; columnar ``inputs`` -> ``outputs``."""
    payload = parse_json(body)
    if "instances" in payload:
        lr = instances(payload["instances"])
        return served.upscale_tensor(lr, "instances", "predictions")
    if "inputs" in payload:
        return served.upscale_tensor(tensor_input(payload, "inputs"), "inputs", "outputs")
    raise RequestError(400, 'the body must have "instances" (row format) or "inputs".')


# --------------------------------------------------------------------------- MLflow


def mlflow_routes(served: Served) -> APIRouter:
    """MLflow's scoring protocol: ``/invocations`` and the ``/ping`` health check."""
    router = APIRouter()

    @router.get(
        "/ping",
        summary="Health check (MLflow, SageMaker): 200 once the model is loaded",
        response_class=PlainTextResponse,
    )
    def ping() -> PlainTextResponse:
        return PlainTextResponse("\n")

    @router.post(
        "/invocations",
        summary="Upscale a batch (MLflow's scoring protocol)",
        openapi_extra=INVOCATIONS_BODY,
        responses=PREDICTIONS,
        response_class=Response,
    )
    async def mlflow_invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", "application/json").split(";")[0]
        if content_type.strip() != "application/json":
            raise RequestError(
                415, f'/invocations takes application/json ({{"inputs": ...}}), not {content_type}.'
            )
        body = await request.body()
        answer = await served.run(lambda: mlflow_invocations_body(served, body))
        return served.respond(answer, "application/json")

    return router


def mlflow_invocations_body(served: Served, body: bytes) -> bytearray:
    payload = parse_json(body)
    for key in ("inputs", "instances"):
        if key in payload:
            return served.upscale_tensor(tensor_input(payload, key), key, "predictions")
    raise RequestError(
        400,
        'the body must have "inputs" (a 4-D tensor); dataframe formats are not '
        "accepted for images.",
    )


# --------------------------------------------------------------------------- image upload


def upscale_routes(served: Served) -> APIRouter:
    """``POST /upscale``: one PNG/JPEG in, a PNG out."""
    router = APIRouter()

    @router.post(
        "/upscale",
        summary="Upscale one PNG or JPEG image; answers a PNG",
        description="Send the image as a multipart upload (any file field; `image` here), as "
        "the raw body with Content-Type image/png or image/jpeg, or as JSON "
        '`{"image": "<base64>"}`. In Swagger UI, press *Reset* after choosing another request '
        "content type: it keeps the last one's value until then.",
        openapi_extra=UPSCALE_BODY,
        responses=PNG,
        response_class=Response,
    )
    async def upscale_image(request: Request) -> Response:
        data = await uploaded_image(request)

        def work() -> bytes:
            image = decode_image(
                data,
                served.max_pixels,
                scale=served.scale,
                max_output_pixels=served.max_output_pixels,
            )
            sr = served.upscaler(image.astype(np.float32)[None] / 255.0)
            return encode_png(to_uint8(sr[0]))

        return served.respond(await served.run(work), "image/png")

    return router


async def uploaded_image(request: Request) -> bytes:
    """The encoded image of a multipart upload, a raw ``image/*`` body or JSON base64."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        files = [v for v in form.values() if hasattr(v, "read")]
        if not files:
            raise RequestError(400, 'the multipart form has no file; send the image as "image".')
        return await files[0].read()
    if content_type == "application/json":
        payload = parse_json(await request.body())
        text = payload.get("image", payload.get("b64"))
        if not isinstance(text, str):
            raise RequestError(400, 'the JSON body must have "image": a base64 string.')
        try:
            return base64.b64decode(text.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestError(400, f'"image" is not valid base64 ({exc}).') from None
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return await request.body()
    raise RequestError(
        415,
        "send the image as multipart/form-data, as an image/* body, or as JSON "
        f'{{"image": "<base64>"}}; got Content-Type {content_type or "(none)"}.',
    )


# --------------------------------------------------------------------------- health


def health_routes(served: Served) -> APIRouter:
    """``GET /health``: the served model's name and scale; ``GET /version``: the harness
    version and the model reference served."""
    router = APIRouter()

    @router.get("/health", summary="The served model's name and scale")
    def health() -> dict:
        return {"status": "ok", "model": served.name, "scale": served.upscaler.scale}

    @router.get("/version", summary="The harness version and the model served")
    def version() -> dict:
        return {
            "harness": __version__,
            "model": served.name,
            "reference": served.reference,
            "scale": served.scale,
            "tile": getattr(served.upscaler, "tile", 0),
        }

    return router
