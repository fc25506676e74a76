"""A trained generator -> a TensorFlow SavedModel that TF Serving (and ``harness serve``) load,
or an ONNX file; written beside the target, checked against TensorFlow float32, then renamed.

:func:`export_checked` is what ``harness export`` runs: the generator is rebuilt in the chosen
precision (:mod:`harness.deploy.precision`, float32 by default whatever it was trained in), the
export is written under a temporary name in the target's folder, run on a real image and
compared with the float32 network in TensorFlow, and renamed into place only when it agrees. A
failed write or check removes the temporary, so a rerun never finds a half-written export.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness import diskwrite
from harness.deploy.precision import BFLOAT16, FLOAT32, with_precision
from harness.deploy.upscaler import Upscaler, generator_sr
from harness.errors import HarnessError

TOLERANCE = {FLOAT32: 0.25 / 255, BFLOAT16: 8 / 255}
"""Largest export-vs-TensorFlow-float32 difference accepted (``[0, 1]`` scale) per precision:
a float32 export must agree to a quarter of an 8-bit level (rounding to uint8 changes at most a
few pixels by one level); a bfloat16 one (8 bits of mantissa) to 8 levels."""


class ExportCheckError(HarnessError):
    """The export disagrees with TensorFlow float32 (or cannot run); nothing was kept."""


def export_saved_model(generator: Any, out_dir: str | Path) -> Path:
    """Write ``generator`` as a TensorFlow SavedModel TF Serving loads as is.

    ``serving_default`` takes ``lr``: float32 ``(None, None, None, 3)`` in ``[0, 1]`` (any batch
    and size) and returns ``sr``: the upscaled batch in ``[0, 1]`` (:func:`generator_sr`, as
    every upscaler of a generator). The object also carries ``scale`` (an int32 variable) so
    :func:`harness.deploy.models.load_upscaler` needs no probe. The network is written in the
    precision it computes in (see :func:`export_checked` for the float32 default).
    """
    import tensorflow as tf  # heavy: the deploy wing imports without TensorFlow

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise HarnessError(
            f"export folder {out_dir} is not empty; give a new folder (TF Serving expects "
            "<model_base_path>/<version>/, e.g. models/srgan/1)."
        )
    scale = Upscaler.from_generator(generator).scale
    module = tf.Module()
    module.generator = generator
    module.scale = tf.Variable(scale, trainable=False, dtype=tf.int32, name="scale")

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="lr")])
    def serve(lr):
        return {"sr": generator_sr(module.generator, lr)}

    module.serve = serve
    try:
        tf.saved_model.save(module, str(out_dir), signatures={"serving_default": serve})
    except Exception as exc:
        raise HarnessError(f"writing the SavedModel to {out_dir} failed: {exc}") from exc
    return out_dir


def _compare(got: np.ndarray, want: np.ndarray, what: str, tolerance: float, lr: Any) -> float:
    if got.shape != want.shape:
        raise ExportCheckError(f"{what} returns shape {got.shape}, TensorFlow {want.shape}.")
    diff = float(np.abs(got - want).max())
    if not diff <= tolerance:
        raise ExportCheckError(
            f"{what} differs from TensorFlow float32 by up to {diff:.3g} on a "
            f"{lr.shape[2]}x{lr.shape[1]} image (tolerance {tolerance:.3g}); it was not kept. "
            "A layer may convert to an op with other semantics: try the other --format."
        )
    return diff


def check_saved_model(path: Path, reference: Any, lr: np.ndarray, tolerance: float) -> float:
    """The largest difference between the SavedModel at ``path`` and ``reference`` (a float32
    generator) on ``lr``; an :class:`ExportCheckError` above ``tolerance``."""
    import tensorflow as tf  # heavy: the deploy wing imports without TensorFlow

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    got = serve(lr=tf.constant(lr))["sr"].numpy()
    return _compare(got, Upscaler.from_generator(reference)(lr), "the SavedModel", tolerance, lr)


def export_checked(
    generator: Any, target: Path, fmt: str, lr: np.ndarray, precision: str = FLOAT32
) -> float:
    """Export ``generator`` to ``target`` (``fmt``: ``savedmodel`` or ``onnx``) computing in
    ``precision``, checked on ``lr`` against the float32 network; the largest difference."""
    from harness.deploy import onnx  # tf2onnx and ONNX Runtime: only an ONNX export needs them

    reference = with_precision(generator, FLOAT32)
    Upscaler.from_generator(reference)  # a model that is no upscaler is refused before writing
    model = with_precision(reference, precision)
    tolerance = TOLERANCE[precision]
    target.parent.mkdir(parents=True, exist_ok=True)
    with diskwrite.atomic(target) as tmp:
        if fmt == "onnx":
            onnx.export_onnx(model, tmp)
            return onnx.check_onnx(tmp, reference, lr, tolerance)
        export_saved_model(model, tmp)
        return check_saved_model(tmp, reference, lr, tolerance)


__all__ = [
    "TOLERANCE",
    "ExportCheckError",
    "check_saved_model",
    "export_checked",
    "export_saved_model",
]
