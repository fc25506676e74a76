"""First-party content losses: ``mse`` and ``vgg54`` (SRGAN's VGG feature loss). The seed's
Per-Pix is the two as ``[losses.mse]`` and ``[losses.vgg54]`` tables with scheduled weights
(experiments/perpix.toml).

Registered through the ``harness`` entry points exactly as a third-party package would be.
"""

from __future__ import annotations

from harness import hookimpl
from harness_losses.pixel import mse
from harness_losses.vgg import VGGFeatureLoss, vgg54

__all__ = ["VGGFeatureLoss", "mse", "vgg54"]

# Cheap parameters for the contract checks (harness.plugin_api.contracts) and tests: a random,
# shallow VGG.
vgg54.contract_params = {"weights": "none", "layer": "block2_conv2"}


@hookimpl
def harness_register_content_losses():
    return {"mse": mse, "vgg54": vgg54}
