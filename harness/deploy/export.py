"""A trained generator -> a TensorFlow SavedModel that TF Serving (and ``harness serve``) load,
or an ONNX file; written beside the target, checked against TensorFlow float32, then renamed.

:func:`export_checked` is what ``harness export`` runs: the generator is rebuilt in the chosen
precision (:mod:`harness.deploy.precision`, float32 by default whatever it was trained in), the
export is written under a temporary name in the target's folder, run on a real image and
compared with the float32 network in TensorFlow, and renamed into place only when it agrees. A
failed write or check removes the temporary (and the folders the export created), so a rerun
never finds a half-written export.

:func:`export_target` is where an export may go: a new path; for a SavedModel, an empty folder
too; for ONNX, a folder to write ``model.onnx`` in. Anything else that exists there is refused
before any work, and again just before the rename, and is never changed.
"""

from __future__ import annotations

import contextlib
import os
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


ONNX_FILE = "model.onnx"
"""The file an ONNX export writes in a folder given as the output (Triton's default name)."""
SAVEDMODEL_LAYOUT = "TF Serving expects <model_base_path>/<version>/, e.g. models/srgan/1"


def export_target(output: Path, fmt: str, version: int | None = None) -> Path:
    """The path an export of format ``fmt`` to ``output`` (``--version``: into
    ``output/<version>``) writes, checked with :func:`check_target`."""
    base = output / str(version) if version else output
    target = base if fmt != "onnx" or base.suffix == ".onnx" else base / ONNX_FILE
    check_target(target, fmt)
    return target


def check_target(target: Path, fmt: str) -> None:
    """A :class:`HarnessError` naming the path and the fix unless ``target`` can take an export
    without changing anything that exists: it is new, or (SavedModel) an empty folder."""
    for folder in target.parents:
        if folder.is_symlink() or folder.exists():
            if not folder.is_dir():
                raise HarnessError(
                    f"cannot export to {target}: {folder} is a file, not a folder; give another "
                    f"-o (or remove {folder})."
                )
            break
    if target.is_symlink() and not target.exists():
        raise HarnessError(
            f"-o {target} is a link to {os.readlink(target)}, which does not exist; remove the "
            "link or give another -o."
        )
    if fmt == "onnx":
        if target.is_dir():
            raise HarnessError(
                f"-o {target} is a folder; give a new .onnx file name (or remove the folder)."
            )
        if target.exists():
            raise HarnessError(f"{target} exists; give a new file name (or remove it).")
    elif target.is_dir():
        if any(target.iterdir()):
            raise HarnessError(
                f"export folder {target} is not empty; give a new or empty folder "
                f"({SAVEDMODEL_LAYOUT}), or remove {target}."
            )
    elif target.exists():
        raise HarnessError(
            f"-o {target} is a file; give a new (or empty) folder for the SavedModel, or remove "
            "the file."
        )


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
    check_target(out_dir, "savedmodel")
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
    ``precision``, checked on ``lr`` against the float32 network; the largest difference.

    ``target`` must pass :func:`check_target`. An empty folder keeps its identity (permissions,
    links to it, a shell inside it) and receives the SavedModel's files. On any failure nothing
    is left: not the temporary, nor the folders made for ``target``."""
    from harness.deploy import onnx  # tf2onnx and ONNX Runtime: only an ONNX export needs them

    check_target(target, fmt)
    target = Path(os.path.abspath(target))  # "-o ." has no name to put a temporary beside
    reference = with_precision(generator, FLOAT32)
    Upscaler.from_generator(reference)  # a model that is no upscaler is refused before writing
    model = with_precision(reference, precision)
    tolerance = TOLERANCE[precision]
    made = [f for f in reversed(target.parents) if not (f.exists() or f.is_symlink())]
    try:
        diskwrite.writable_folder(target.parent, "-o")
        with diskwrite.atomic(target) as tmp:
            if fmt == "onnx":
                onnx.export_onnx(model, tmp)
                diff = onnx.check_onnx(tmp, reference, lr, tolerance)
            else:
                export_saved_model(model, tmp)
                diff = check_saved_model(tmp, reference, lr, tolerance)
            check_target(target, fmt)  # nothing appeared there while the export ran
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        raise
    return diff


__all__ = [
    "ONNX_FILE",
    "TOLERANCE",
    "ExportCheckError",
    "check_saved_model",
    "check_target",
    "export_checked",
    "export_saved_model",
    "export_target",
]
