"""The REST API's OpenAPI document as a client sees it: what each route takes and answers.

The routes read their bodies themselves (a streamed upload, a JSON tensor bounded before it is
parsed), so FastAPI cannot infer request bodies from them; they are declared here, with the
``{"error": ...}`` answer every failure really gets (:func:`harness.deploy.serve.error`), and
FastAPI's 422 validation answer, which this server never sends, is left out
(:func:`without_unused_422`).
"""

from __future__ import annotations

from typing import Any

DESCRIPTION = """\
Upscales images with a trained super-resolution generator.

**Tensors** are float32 RGB in **[0, 1]** (divide 8-bit pixels by 255), shaped
`[batch, height, width, 3]`; the answer is the same batch `scale` times larger
(`GET /health` says the scale). Three ways to call it:

- `POST /v1/models/{name}:predict`: TF Serving's REST API,
  `{"instances": [image, ...]}` -> `{"predictions": [...]}`.
- `POST /invocations`: MLflow's scoring protocol, `{"inputs": tensor}` -> `{"predictions": ...}`.
- `POST /upscale`: one PNG or JPEG file in, a PNG out (in Swagger UI: *Try it out*, choose a file).

Every error answers `{"error": "..."}` with a 4xx status saying what to change (413 when a
request is over the server's size limits, 503 when too many large answers are waiting for slow
clients: retry later), 500 if the model itself fails.
"""

ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string", "description": "what is wrong and what to do"}},
    "required": ["error"],
    "example": {"error": '"instances" values must lie in [0, 1] (float RGB); ...'},
}
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A bad request (the message says what to change)."},
    404: {"description": "No such model name or route."},
    413: {"description": "The body, the input pixels or the output pixels are over the limits."},
    415: {"description": "A Content-Type this route does not take."},
    503: {"description": "Too many answers are waiting for slow clients; retry later."},
}
for _answer in ERRORS.values():
    _answer["content"] = _ERROR_CONTENT

_IMAGE = {
    "type": "array",
    "description": "one image: height x width x 3 floats in [0, 1]",
    "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
}
_TENSOR = {"type": "array", "description": "a batch [N, height, width, 3] in [0, 1]"}
_TINY = [[[0.5, 0.5, 0.5], [0.2, 0.4, 0.6]], [[0.9, 0.1, 0.0], [1.0, 1.0, 1.0]]]
_TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAADCAIAAAA7ljmRAAAAG0lEQVR42mM4oaGhcUJDQ+PEs2fPmBiQAAoHALt9Bf8Q"
    "U7K+AAAAAElFTkSuQmCC"
)
"""A 4x3 PNG (red, green, blue and white columns) in base64: the JSON upload's example, so that
Swagger UI's "Try it out" sends an image that decodes."""


def _json_body(schema: dict, example: dict) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


PREDICT_BODY = _json_body(
    {
        "type": "object",
        "description": 'row format "instances", or columnar "inputs" (answered as "outputs")',
        "properties": {
            "instances": {"type": "array", "items": _IMAGE},
            "inputs": _TENSOR,
        },
    },
    {"instances": [_TINY]},
)
INVOCATIONS_BODY = _json_body(
    {
        "type": "object",
        "properties": {"inputs": _TENSOR, "instances": _TENSOR},
        "description": 'MLflow\'s tensor input: "inputs" (or "instances")',
    },
    {"inputs": [_TINY]},
)
UPSCALE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "byte",
                            "description": "the PNG or JPEG file in base64 (a data: URL too)",
                        }
                    },
                    "required": ["image"],
                },
                "example": {"image": _TINY_PNG},
            },
        },
    }
}
_PREDICTIONS = {"type": "object", "properties": {"predictions": _TENSOR, "outputs": _TENSOR}}
PREDICTIONS = {
    200: {
        "description": "The upscaled batch in [0, 1].",
        "content": {"application/json": {"schema": _PREDICTIONS}},
    },
    **ERRORS,
}
PNG = {
    200: {
        "description": "The upscaled image.",
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    },
    **ERRORS,
}


def without_unused_422(schema: dict) -> dict:
    """``schema`` with FastAPI's 422 answers and their schemas removed (this server answers
    bad requests with 400 ``{"error": ...}``), and the ``Error`` schema added."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR
    return schema
