"""What ``harness serve`` reads and writes, and the limits on it: request codecs and bounds.

Tensors are float32 NHWC in ``[0, 1]`` (LR in, SR out). Every bad request becomes a
:class:`RequestError` (HTTP status and one message naming the problem); the application in
:mod:`harness.deploy.serve` answers it as ``{"error": "..."}`` (TF Serving's error shape).

Limits: bodies over ``max_bytes`` get 413 before they are read in full (:class:`BodyLimit`);
``max_pixels`` bounds the LR pixels of a request and ``max_output_pixels`` its SR pixels (all
images together), checked before the model runs (:func:`check_work`): at x4 each LR pixel
becomes 16 SR pixels, and each SR pixel costs about 38 bytes of JSON response (plus 12 for the
float32 array). An uploaded image's size is checked from its header, before decoding.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
from PIL import UnidentifiedImageError

from harness.data.images import ImageTooLargeError, check_pixels, open_image, to_rgb8
from harness.deploy.lr_range import range_problem
from harness.errors import HarnessError

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096  # LR pixels per request (all images of a batch together)
DEFAULT_MAX_OUTPUT_PIXELS = 4096 * 4096
"""SR pixels per request (all images together): a 4K UHD frame (3840x2160) fits; as JSON that is
at most about 640 MB of response, as PNG 20-50 MB (docs/inference.md has the figures)."""
INPUT_NAME = "lr"


class RequestError(Exception):
    """A client error: HTTP ``status`` and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- request parsing


def parse_tensor(value: Any, what: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A JSON value -> float32 ``(N, h, w, 3)`` in ``[0, 1]``, or a :class:`RequestError`."""
    if value is None:
        raise RequestError(400, f'"{what}" is missing or null.')
    depth, inner = 0, value
    while isinstance(inner, list) and inner and depth <= 4:  # numpy would call deeper "ragged"
        depth, inner = depth + 1, inner[0]
    if depth > 4:
        raise RequestError(
            400,
            f'"{what}" is nested more than 4 lists deep; send a 4-D tensor [batch, height, '
            "width, 3] (a list of HxWx3 images).",
        )
    try:
        array = np.asarray(value, dtype=np.float32)
    except RecursionError:
        raise RequestError(400, f'"{what}" is nested too deeply; send [batch, h, w, 3].') from None
    except (ValueError, TypeError) as exc:
        if "inhomogeneous" in str(exc) or "sequence" in str(exc):
            raise RequestError(
                400,
                f'"{what}" is ragged: every image must have the same height, width and 3 '
                "channels (send different sizes in separate requests).",
            ) from None
        raise RequestError(400, f'"{what}" holds non-numeric values ({exc}).') from None
    if array.ndim != 4:
        raise RequestError(
            400,
            f'"{what}" must be a 4-D tensor [batch, height, width, 3] (a list of HxWx3 '
            f"images); got rank {array.ndim} with shape {list(array.shape)}.",
        )
    if array.shape[-1] != 3:
        raise RequestError(
            400, f'"{what}" must have 3 channels (RGB) last; got shape {list(array.shape)}.'
        )
    if 0 in array.shape:
        raise RequestError(400, f'"{what}" is empty: shape {list(array.shape)}.')
    pixels = array.shape[0] * array.shape[1] * array.shape[2]
    if pixels > max_pixels:
        raise RequestError(
            413,
            f'"{what}" has {pixels} pixels, over the server\'s limit of {max_pixels} per '
            "request; send fewer or smaller images (or start the server with a larger "
            "--max-pixels).",
        )
    problem = range_problem(array, what)
    if problem is not None:
        raise RequestError(400, problem)
    return array


def check_work(
    shape: tuple[int, ...], scale: int, max_output_pixels: int, what: str = "the request"
) -> None:
    """413 when the output of an ``(N, h, w, ...)`` input at ``scale`` would exceed the limit.

    Checked before the model runs: the output, not the input, is what costs memory and time.
    """
    n, h, w = shape[0], shape[1], shape[2]
    pixels = n * h * w * scale * scale
    if pixels > max_output_pixels:
        raise RequestError(
            413,
            f"{what} asks for {n} image(s) of {h * scale}x{w * scale} = {pixels} output pixels, "
            f"over the server's limit of {max_output_pixels} per request; send fewer or "
            "smaller images (or start the server with a larger --max-output-pixels).",
        )


def parse_json(body: bytes) -> dict:
    """A request body -> a JSON object, or a :class:`RequestError` (400)."""
    try:
        payload = json.loads(body)
    except RecursionError:
        raise RequestError(
            400, "the JSON body is nested too deeply; a tensor is [batch, height, width, 3]."
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"the body is not valid JSON ({exc}).") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "the body must be a JSON object.")
    return payload


def tensor_json(key: str, array: np.ndarray) -> bytearray:
    """``{key: array}`` as JSON bytes, for a float ``(N, H, W, C)`` array.

    Written one image row at a time with ``%.9g`` (nine significant digits give back the same
    float32), so no nested Python list of the whole output is ever built: about 38 bytes per
    RGB pixel and a third of the time of ``json.dumps(array.tolist())``. A ``bytearray``, sent
    as it is (a copy to ``bytes`` would double the peak).
    """
    array = np.asarray(array, np.float32)
    if not np.all(np.isfinite(array)):
        raise RequestError(500, "the model produced NaN or infinite values for this input.")
    n, h, w, c = array.shape
    pixel = "[" + ",".join(["%.9g"] * c) + "]"
    row = ("[" + ",".join([pixel] * w) + "]").encode()
    out = bytearray(b"{" + json.dumps(key).encode() + b":[")
    for i in range(n):
        out += b"[" if i == 0 else b",["
        for y in range(h):
            if y:
                out += b","
            out += row % tuple(array[i, y].ravel().tolist())
        out += b"]"
    out += b"]}"
    return out


def instances(value: Any) -> Any:
    """TF Serving row format: instances may be bare tensors or ``{"lr": tensor}`` objects."""
    if not isinstance(value, list) or not value:
        raise RequestError(400, '"instances" must be a non-empty list of HxWx3 images.')
    if all(isinstance(v, dict) for v in value):
        try:
            return [v[INPUT_NAME] for v in value]
        except KeyError:
            raise RequestError(
                400, f'each instance object must have the input "{INPUT_NAME}".'
            ) from None
    return value


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    scale: int = 1,
    max_output_pixels: int | None = None,
) -> np.ndarray:
    """PNG/JPEG/... bytes -> uint8 RGB ``(h, w, 3)``, or a :class:`RequestError`.

    The size is checked from the header, before decoding, against ``max_pixels`` (LR), the
    output limit at ``scale`` and the per-image limit of every read
    (:func:`harness.data.images.check_pixels`): a 1-bit PNG of a few KB can hold 400 M pixels.
    """
    if not data:
        raise RequestError(400, "the image is empty.")
    try:
        with open_image(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise RequestError(
                    413,
                    f"the image is {img.width}x{img.height} = {img.width * img.height} pixels, "
                    f"over the server's limit of {max_pixels} per request; send a smaller image "
                    "(or start the server with a larger --max-pixels).",
                )
            if max_output_pixels is not None:
                check_work((1, img.height, img.width), scale, max_output_pixels, "the image")
            check_pixels(img.width, img.height, "in the request")
            img.load()
            return to_rgb8(img)
    except ImageTooLargeError as exc:
        raise RequestError(413, str(exc)) from None
    except RequestError:
        raise
    except Exception as exc:  # UnidentifiedImageError, truncated data, decompression bomb
        raise RequestError(
            400, f"the image could not be decoded ({_decode_reason(exc)}); send a PNG or JPEG."
        ) from None


_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _decode_reason(exc: Exception) -> str:
    """Why Pillow could not decode an upload, without Python object reprs (Pillow's
    ``cannot identify image file <_io.BytesIO object at 0x...>``)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image format Pillow reads"
    text = _REPR.sub("", str(exc).splitlines()[0] if str(exc) else "").strip()
    return text or type(exc).__name__


# --------------------------------------------------------------------------- limits


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``, by header or by counting."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _text(self, size: str) -> str:
        return (
            f"request body {size} exceeds the server's limit of {self.max_bytes} bytes; send a "
            "smaller payload (or start the server with a larger --max-bytes)."
        )

    async def _reject(self, send: Any, size: str) -> None:
        body = json.dumps({"error": self._text(size)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send, f"of {int(length)} bytes")
            return
        received = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestError(413, self._text(f"of more than {self.max_bytes} bytes"))
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except RequestError:
            if not started:
                await self._reject(send, f"of more than {self.max_bytes} bytes")


def parse_size(text: str) -> int:
    """``"16MB"``, ``"512k"``, ``"1GiB"``, ``"1000"`` -> bytes (binary multiples)."""
    raw = str(text).strip().lower().removesuffix("ib").removesuffix("b")
    factor = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(raw[-1:], 1)
    number = raw[:-1] if factor > 1 else raw
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise HarnessError(f'"{text}" is not a size; write e.g. 16MB, 512KB or 1000000.') from None
    if value <= 0:
        raise HarnessError(f"the size limit must be positive, got {text}.")
    return value
