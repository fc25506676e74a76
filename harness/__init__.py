"""srgan-harness: a plugin-based experimentation harness for GAN super-resolution.

Plugin authors need one import::

    from harness import hookimpl

    @hookimpl
    def harness_register_content_losses():
        return {"charbonnier": Charbonnier}
"""

from __future__ import annotations

import os

import pluggy

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
"""TensorFlow reads this once, when it loads. Unset, TensorFlow turns its oneDNN CPU kernels on
only for CPUs with AVX-512 VNNI/BF16 or AMX and uses Eigen's elsewhere, which made an
SRResNet-16 float32 training step 2.1x slower on an AVX2-only EPYC (``bench/train_step.py``:
2271 ms against 1091 ms with oneDNN, PyTorch 1245 ms). Importing ``harness`` before TensorFlow
sets it to ``1`` unless the user set it (``0`` keeps Eigen's kernels); on CPUs where oneDNN is
already the default this changes nothing. :func:`harness.training.precision.onednn_enabled`
says what TensorFlow chose."""

os.environ.setdefault(ONEDNN_ENV, "1")

__version__ = "0.1.0"

PROJECT = "harness"
"""The pluggy project name and the entry-point group plugins register under."""

hookimpl = pluggy.HookimplMarker(PROJECT)
hookspec = pluggy.HookspecMarker(PROJECT)

__all__ = ["ONEDNN_ENV", "PROJECT", "__version__", "hookimpl", "hookspec"]
