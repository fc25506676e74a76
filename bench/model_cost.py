"""Parameters and multiply-accumulates (MACs) per LR pixel of the registered generators, and
parameters of the discriminators, with their defaults (the figures in docs/plugins-builtin.md).

MACs count every convolution and dense layer (``k_h * k_w * c_in * c_out`` per output pixel),
measured by running the model on a 32x32 LR input and dividing by its 1024 pixels; additions,
activations and interpolation are left out (they are a few percent).

    python bench/model_cost.py
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from harness.plugin_api.registry import build_registry  # noqa: E402

SIDE = 32


def macs_per_lr_pixel(model: keras.Model) -> float:
    layers = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)
    ]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    outputs = probe(np.zeros((1, SIDE, SIDE, 3), np.float32))
    total = 0
    for layer, out in zip(layers, outputs, strict=True):
        kernel = layer.kernel.shape
        total += int(np.prod(kernel)) * int(np.prod(out.shape[1:-1]))
    return total / (SIDE * SIDE)


def main() -> None:
    registry = build_registry()
    for name in ("srresnet", "msrresnet", "edsr", "rrdbnet", "srvgg_compact"):
        model = registry.factory("generator", name)(scale=4)
        macs = macs_per_lr_pixel(model)
        print(
            json.dumps(
                {
                    "generator": name,
                    "params": model.count_params(),
                    "macs_per_lr_pixel": round(macs),
                }
            ),
            flush=True,
        )
    for name, kwargs in (
        ("srgan", {}),
        ("vgg_style", {}),
        ("patchgan", {}),
        ("unet_sn", {}),
        ("projected", {"weights": "none"}),
    ):
        model = registry.factory("discriminator", name)(patch=96, **kwargs)
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        print(
            json.dumps(
                {
                    "discriminator": name,
                    "patch": 96,
                    "trainable": trainable,
                    "all_weights": model.count_params(),
                    "logits": list(model.output.shape[1:]),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
