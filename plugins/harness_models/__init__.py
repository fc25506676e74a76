"""First-party models: the SRResNet, MSRResNet, EDSR, RRDBNet and SRVGGNetCompact generators;
the SRGAN, VGG-style, PatchGAN, U-Net (spectral norm) and projected discriminators.

Registered through the ``harness`` entry points exactly as a third-party package would be.
Importing this package also registers its custom Keras layers (see :mod:`harness_models.layers`),
which saved generators need to load.
"""

from __future__ import annotations

from harness import hookimpl
from harness_models.edsr import edsr
from harness_models.layers import Interpolate, PixelShuffle, SpectralConv2D
from harness_models.msrresnet import msrresnet
from harness_models.patchgan import patchgan
from harness_models.projected import projected
from harness_models.rrdbnet import rrdbnet
from harness_models.srgan import srgan
from harness_models.srresnet import srresnet
from harness_models.srvgg_compact import srvgg_compact
from harness_models.unet_sn import unet_sn
from harness_models.vgg_style import vgg_style

__all__ = [
    "Interpolate",
    "PixelShuffle",
    "SpectralConv2D",
    "edsr",
    "msrresnet",
    "patchgan",
    "projected",
    "rrdbnet",
    "srgan",
    "srresnet",
    "srvgg_compact",
    "unet_sn",
    "vgg_style",
]

# Cheap parameters for the contract checks (harness.plugin_api.contracts) and tests.
srresnet.contract_params = {"blocks": 1, "filters": 8}
edsr.contract_params = {"blocks": 1, "filters": 8}
msrresnet.contract_params = {"blocks": 1, "filters": 8}
rrdbnet.contract_params = {"blocks": 1, "filters": 8, "growth": 4}
srvgg_compact.contract_params = {"convs": 2, "filters": 8}
srgan.contract_params = {"filters": 8, "dense": 16}
vgg_style.contract_params = {"filters": 8, "dense": 16}
patchgan.contract_params = {"filters": 8}
unet_sn.contract_params = {"filters": 8}
projected.contract_params = {
    "weights": "none",
    "width": 8,
    "layers": ("block1_conv2", "block2_conv2"),
}


@hookimpl
def harness_register_generators():
    return {
        "srresnet": srresnet,
        "msrresnet": msrresnet,
        "edsr": edsr,
        "rrdbnet": rrdbnet,
        "srvgg_compact": srvgg_compact,
    }


@hookimpl
def harness_register_discriminators():
    return {
        "srgan": srgan,
        "vgg_style": vgg_style,
        "patchgan": patchgan,
        "unet_sn": unet_sn,
        "projected": projected,
    }
