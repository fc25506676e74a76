"""First-party content losses: pixel (``mse``, ``l1``, ``charbonnier``, ``gradient``),
structural (``ssim``, ``ms_ssim``), spectral (``focal_frequency``), feature (``vgg54``, SRGAN's;
``perceptual``, BasicSR's; ``lpips`` and ``dists``, the metrics as losses) and ``ldl`` (which
reads the EMA generator's output). The seed's Per-Pix is ``[losses.mse]`` and
``[losses.vgg54]`` tables with scheduled weights (experiments/perpix.toml).

Registered through the ``harness`` entry points exactly as a third-party package would be.
"""

from __future__ import annotations

from harness import hookimpl
from harness_losses.frequency import focal_frequency
from harness_losses.ldl import ldl
from harness_losses.perceptual import dists, lpips, perceptual
from harness_losses.pixel import charbonnier, gradient, l1, mse
from harness_losses.structure import ms_ssim, ssim
from harness_losses.vgg import VGGFeatureLoss, vgg54

__all__ = [
    "VGGFeatureLoss",
    "charbonnier",
    "dists",
    "focal_frequency",
    "gradient",
    "l1",
    "ldl",
    "lpips",
    "ms_ssim",
    "mse",
    "perceptual",
    "ssim",
    "vgg54",
]

# Cheap parameters for the contract checks (harness.plugin_api.contracts) and tests: random,
# shallow networks, and windows that fit the checks' 16-px images.
vgg54.contract_params = {"weights": "none", "layer": "block2_conv2"}
perceptual.contract_params = {
    "weights": "none",
    "network": "vgg16",
    "layer_weights": {"conv2_2": 1.0, "relu1_2": 0.5},
}
lpips.contract_params = {"weights": "none", "net": "vgg"}
dists.contract_params = {"weights": "none"}
ms_ssim.contract_params = {"weights": (0.5, 0.5), "filter_size": 5}

LOSSES = {
    "mse": mse,
    "l1": l1,
    "charbonnier": charbonnier,
    "gradient": gradient,
    "ssim": ssim,
    "ms_ssim": ms_ssim,
    "focal_frequency": focal_frequency,
    "vgg54": vgg54,
    "perceptual": perceptual,
    "lpips": lpips,
    "dists": dists,
    "ldl": ldl,
}


@hookimpl
def harness_register_content_losses():
    return dict(LOSSES)
