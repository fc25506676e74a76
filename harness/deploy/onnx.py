"""A trained generator -> an ONNX model with the SavedModel's contract (``harness export
--format onnx``), checked against TensorFlow on a real image.

The graph is :func:`harness.deploy.upscaler.generator_sr` converted by tf2onnx: input ``lr``,
float32 NHWC in ``[0, 1]`` with dynamic ``batch``, ``height`` and ``width``; output ``sr`` in
``[0, 1]``, ``scale`` times larger. tf2onnx converts the traced TensorFlow function, so a
plugin's layers need no ONNX code of their own as long as they use standard TensorFlow ops.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
from skimage import data

from harness.data.images import read_image
from harness.deploy.upscaler import Upscaler, error_reason, generator_sr
from harness.errors import HarnessError

OPSET = 17
"""ONNX opset written (ONNX Runtime 1.16 and later run it)."""
TOLERANCE = 0.25 / 255
"""Largest ONNX-vs-TensorFlow difference accepted (``[0, 1]`` scale): a quarter of an 8-bit
level, so rounding to uint8 changes at most a few pixels by one level."""
DYNAMIC_DIMS = ("batch", "height", "width")


class OnnxExportError(HarnessError):
    """The generator cannot be converted to ONNX, or the ONNX model disagrees with it."""


def _require(module: str) -> Any:
    """Import ``module`` of the ``onnx`` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise OnnxExportError(
            f'ONNX export needs {module} ({exc}): pip install "srgan-harness[onnx]" '
            "(tf2onnx, onnx, onnxruntime)."
        ) from None


def export_onnx(generator: Any, path: str | Path, *, opset: int = OPSET) -> Path:
    """Write ``generator`` as the ONNX model ``path`` (``lr`` -> ``sr``, both ``[0, 1]``)."""
    import tensorflow as tf  # heavy: onnx_session runs an exported file without TensorFlow

    tf2onnx = _require("tf2onnx")

    path = Path(path)
    if path.exists():
        raise OnnxExportError(f"{path} exists; give a new file name (or remove it).")

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="lr")])
    def serve(lr):
        return {"sr": generator_sr(generator, lr)}

    try:
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=serve.input_signature, opset=opset
        )
    except Exception as exc:
        raise OnnxExportError(
            f"tf2onnx could not convert the generator ({type(exc).__name__}: {error_reason(exc)}); "
            "export a SavedModel instead (--format savedmodel)."
        ) from None
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        for dim, name in zip(dims, (*DYNAMIC_DIMS, None), strict=True):
            if name is not None:
                dim.dim_param = name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return path


def check_image(source: str | Path | None = None, size: int = 128) -> np.ndarray:
    """A real LR image for the check, float32 ``(1, h, w, 3)`` in ``[0, 1]``: ``source`` (any
    image file) or scikit-image's bundled astronaut photo, centre-cropped to ``size``."""
    image = read_image(Path(source)) if source is not None else data.astronaut()
    h, w = image.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    crop = image[y : y + size, x : x + size]
    return (crop.astype(np.float32) / 255.0)[None]


def onnx_session(path: str | Path) -> Any:
    """An ONNX Runtime CPU session for ``path``."""
    ort = _require("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_onnx(
    path: str | Path, generator: Any, lr: np.ndarray, tolerance: float = TOLERANCE
) -> float:
    """The largest absolute difference between ONNX Runtime and TensorFlow on ``lr``; an
    :class:`OnnxExportError` above ``tolerance`` or when ONNX Runtime cannot run the file."""
    try:
        got = onnx_session(path).run(["sr"], {"lr": lr})[0]
    except OnnxExportError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / ... types
        said = (str(exc).splitlines() or [""])[0].split(" failed:", 1)[-1].strip()
        raise OnnxExportError(
            f"ONNX Runtime (CPU) cannot run the exported model ({type(exc).__name__}: "
            f"{said[:300]}); it was not kept. A "
            "bfloat16 export needs a runtime with bfloat16 kernels; export float32 for CPUs."
        ) from None
    want = Upscaler.from_generator(generator)(lr)
    if got.shape != want.shape:
        raise OnnxExportError(f"the ONNX model returns shape {got.shape}, TensorFlow {want.shape}.")
    diff = float(np.abs(got - want).max())
    if not diff <= tolerance:
        raise OnnxExportError(
            f"the ONNX model differs from TensorFlow by up to {diff:.3g} on a "
            f"{lr.shape[2]}x{lr.shape[1]} image (tolerance {tolerance:.3g}); it was not kept. "
            "A layer may convert to an ONNX op with other semantics: export a SavedModel."
        )
    return diff
