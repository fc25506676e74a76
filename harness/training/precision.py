"""Mixed-precision policy: which Keras dtype policy a run trains under, and why.

``precision = "auto"`` picks the fastest policy that keeps SRGAN training stable:

- a GPU of compute capability 8.0 or newer (Ampere+): ``mixed_bfloat16`` (no loss scaling needed);
- an older GPU: ``mixed_float16`` with dynamic loss scaling (``keras.mixed_precision.
  LossScaleOptimizer``);
- a CPU whose ``/proc/cpuinfo`` flags include ``amx_bf16`` or ``avx512_bf16``:
  ``mixed_bfloat16`` (oneDNN runs the convolutions in bf16; an SRResNet step takes about half the
  float32 time on such a CPU);
- anything else: ``float32``.

Any other value of ``train.precision`` is used as given. Models keep float32 variables and emit
float32 outputs (their last layer is float32); losses are computed in float32.

Speed of the bf16 step on a CPU (``bench/train_step.py``, 2-core EPYC with AVX512_BF16): what
runs in bf16 is each model's choice (SRResNet's 9x9 ``to_rgb`` convolution computes in bf16 with
a float32 tanh; batch norm is ``harness_models.layers.FusedBatchNorm``). Measured and left at
TensorFlow's defaults, being no faster: ``train.xla`` (about 2x slower in bf16) and one inter-op
thread (about 5% more CPU time per step).
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

from harness import ONEDNN_ENV
from harness.errors import ConfigError

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags the kernel reports (empty where ``/proc/cpuinfo`` is unreadable)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def _gpu_capabilities() -> list[tuple[int, int]]:
    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        caps.append(tuple(details.get("compute_capability", (0, 0))))
    return caps


def auto_policy(
    gpu_capabilities: list[tuple[int, int]] | None = None, flags: set[str] | None = None
) -> str:
    """The policy ``precision = "auto"`` resolves to on this machine (arguments: for tests)."""
    caps = _gpu_capabilities() if gpu_capabilities is None else gpu_capabilities
    if caps:
        return "mixed_bfloat16" if min(caps) >= (8, 0) else "mixed_float16"
    flags = cpu_flags() if flags is None else flags
    if any(flag in flags for flag in BF16_CPU_FLAGS):
        return "mixed_bfloat16"
    return "float32"


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (decided when it loaded:
    see :data:`harness.ONEDNN_ENV`); ``False`` where the build cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # no public API says it
    except ImportError:  # pragma: no cover - a build without the module
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


def onednn_advice() -> str | None:
    """A warning for a CPU run whose TensorFlow left oneDNN off although nobody asked for that:
    TensorFlow was imported before ``harness`` (which sets :data:`harness.ONEDNN_ENV`), on an
    x86-64 Linux CPU where oneDNN is not TensorFlow's default. ``None`` when oneDNN is on, when
    the user turned it off, with a GPU, or where TensorFlow's builds have no oneDNN."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    if os.environ.get(ONEDNN_ENV, "1").strip().lower() in ("0", "false"):
        return None
    if tf.config.list_physical_devices("GPU") or onednn_enabled():
        return None
    return (
        "TensorFlow's oneDNN CPU kernels are off (TensorFlow was imported before harness, which "
        f"turns them on): a training step on this CPU takes about twice as long. Import harness "
        f"before tensorflow or keras, or export {ONEDNN_ENV}=1 ({ONEDNN_ENV}=0 to keep them off "
        "without this warning)."
    )


def resolve(precision: str) -> str:
    """``train.precision`` -> a Keras policy name."""
    if precision == "auto":
        return auto_policy()
    if precision not in POLICIES:
        known = ", ".join(POLICIES)
        raise ConfigError(f'train.precision "{precision}" is not known: use "auto" or {known}.')
    return precision


def needs_loss_scaling(policy: str) -> bool:
    """float16 gradients underflow without loss scaling; bfloat16 has float32's range."""
    return policy == "mixed_float16"


@contextlib.contextmanager
def policy_scope(policy: str) -> Iterator[str]:
    """Build models under ``policy``; the previous global policy comes back afterwards."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)
