"""First-party content losses: ``mse``, ``vgg54`` (SRGAN's VGG feature loss) and ``perpix``
(the seed's scheduled MSE + VGG).

Registered through the ``harness`` entry points exactly as a third-party package would be.
"""

from __future__ import annotations

from harness import hookimpl
from harness_losses.perpix import perpix
from harness_losses.pixel import mse
from harness_losses.vgg import VGGFeatureLoss, vgg54

__all__ = ["VGGFeatureLoss", "mse", "perpix", "vgg54"]

# Cheap parameters for the contract checks (harness.plugin_api.contracts) and tests: a random,
# shallow VGG.
vgg54.contract_params = {"weights": "none", "layer": "block2_conv2"}
perpix.contract_params = {"weights": "none", "layer": "block2_conv2"}


@hookimpl
def harness_register_content_losses():
    return {"mse": mse, "vgg54": vgg54, "perpix": perpix}
