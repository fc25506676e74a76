"""First-party degradations: how a training LR image is made from its HR crop.

Each factory takes the host's ``scale`` and its own parameters and returns ``degrade(hr, seed)
-> lr`` (the hook ``harness_register_degradations`` in :mod:`harness.plugin_api.hookspecs`).

- ``bicubic``: MATLAB ``imresize(hr, 1/scale, 'bicubic')`` rounded to 8 bits, the classic
  synthetic LR of SRGAN, EDSR and the benchmark sets, and the default ``[data.degradation]``.
- ``realesrgan``: Real-ESRGAN's second-order degradation (blur, resize, noise, JPEG, twice),
  in :mod:`harness_degradations.realesrgan`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import hookimpl

Degrade = Callable[[Any, Any], Any]


def bicubic(scale: int) -> Degrade:
    """MATLAB bicubic downsampling by ``scale`` (deterministic: the seed is not used)."""
    from harness.data.resize import bicubic_downsample

    def degrade(hr: Any, seed: Any) -> Any:
        del seed  # no randomness
        return bicubic_downsample(hr, scale)

    return degrade


@hookimpl
def harness_register_degradations() -> dict[str, Callable[..., Degrade]]:
    from harness_degradations.realesrgan import realesrgan

    return {"bicubic": bicubic, "realesrgan": realesrgan}
