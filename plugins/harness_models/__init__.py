"""First-party models: the SRResNet, MSRResNet and EDSR generators, the SRGAN discriminator.

Registered through the ``harness`` entry points exactly as a third-party package would be.
Importing this package also registers its custom Keras layers (see :mod:`harness_models.layers`),
which saved generators need to load.
"""

from __future__ import annotations

from harness import hookimpl
from harness_models.edsr import edsr
from harness_models.layers import Interpolate, PixelShuffle
from harness_models.msrresnet import msrresnet
from harness_models.srgan import srgan
from harness_models.srresnet import srresnet

__all__ = ["Interpolate", "PixelShuffle", "edsr", "msrresnet", "srgan", "srresnet"]

# Cheap parameters for the contract checks (harness.plugin_api.contracts) and tests.
srresnet.contract_params = {"blocks": 1, "filters": 8}
edsr.contract_params = {"blocks": 1, "filters": 8}
msrresnet.contract_params = {"blocks": 1, "filters": 8}
srgan.contract_params = {"filters": 8, "dense": 16}


@hookimpl
def harness_register_generators():
    return {"srresnet": srresnet, "msrresnet": msrresnet, "edsr": edsr}


@hookimpl
def harness_register_discriminators():
    return {"srgan": srgan}
