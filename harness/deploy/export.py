"""A trained generator -> a TensorFlow SavedModel that TF Serving (and ``harness serve``) load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.deploy.upscaler import Upscaler, generator_sr
from harness.errors import HarnessError


def export_saved_model(generator: Any, out_dir: str | Path) -> Path:
    """Write ``generator`` as a TensorFlow SavedModel TF Serving loads as is.

    ``serving_default`` takes ``lr``: float32 ``(None, None, None, 3)`` in ``[0, 1]`` (any batch
    and size) and returns ``sr``: the upscaled batch in ``[0, 1]`` (:func:`generator_sr`, as
    every upscaler of a generator). The object also carries ``scale`` (an int32 variable) so
    :func:`harness.deploy.models.load_upscaler` needs no probe.
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
