"""The losses against PyTorch: the official packages (``focal-frequency-loss``,
``pytorch-msssim``) and the papers' formulas written in PyTorch (``l1``, ``charbonnier``, the
``vanilla``, ``hinge`` and ``relativistic`` adversarial losses, the R1 penalty by
``torch.autograd.grad``), run by ``tests/reference/torch_losses.py`` in the interpreter
``HARNESS_TORCH_PYTHON`` names (a virtual environment with torch 2.13 CPU and those packages;
``.ci/run`` makes one). The harness side runs the registered plugins in TensorFlow float32.

Each case compares the value and the gradient with respect to every input the loss is
differentiated by (SR for content losses, both logit tensors for a discriminator loss, the
discriminator's weights for R1, through the second-order gradient):

- values: ``|tf - torch| <= rtol * |torch| + 1e-6``, rtol 1e-5 (1e-4 for SSIM and MS-SSIM);
- gradients: ``max |tf - torch| <= gtol * max |torch|``, gtol 1e-5 (5e-4 for SSIM and
  MS-SSIM, 1e-4 for R1's second-order gradient).

Each tolerance is at least ten times the largest difference seen on CPU (TensorFlow 2.21 and
PyTorch 2.13.0: values within 1e-7 relative, 7e-6 for the SSIM family; gradients within 4e-7,
4e-5 for the SSIM family, 3e-6 for R1); a window sigma of 1.45 for 1.5 misses by 2e-2, an ESRGAN
discriminator loss without its detached means by 3e-1 in the gradient.

Where the definitions differ, the inputs are chosen where they coincide, and the docstring of
:data:`CASES` says so: ``pytorch-msssim`` pads an odd-sized scale before its 2x2 average
(``ms_ssim`` here pools without padding), so MS-SSIM inputs halve evenly at every scale; it
clips negative terms to 0 (here: 1e-8, to keep the gradient finite), so the inputs keep every
term positive; it needs images larger than ``(win_size - 1) * 16`` px whatever the number of
scales.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent / "reference" / "torch_losses.py"
ENV = "HARNESS_TORCH_PYTHON"
ATOL = 1e-6
TOL = (1e-5, 1e-5)
"""(value rtol, gradient gtol) of most cases."""
SSIM_TOL = (1e-4, 5e-4)
R1_TOL = (1e-5, 1e-4)

RNG = np.random.default_rng(2021)


def _pair(size: int, noise: float = 0.2, batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """HR: smooth random images in ``[-1, 1]`` (bilinear upsampling of coarse noise, so SSIM
    terms stay positive); SR: HR plus noise, clipped."""
    coarse = RNG.uniform(-1, 1, (batch, size // 8, size // 8, 3)).astype(np.float32)
    hr = np.asarray(tf.image.resize(coarse, (size, size), "bilinear"), np.float32)
    sr = np.clip(hr + RNG.normal(0, noise, hr.shape), -1, 1).astype(np.float32)
    return sr, hr


IMAGES = {32: _pair(32), 96: _pair(96), 176: _pair(176, batch=1)}

CASES: list[tuple[str, dict, int, tuple[float, float]]] = [
    # (plugin, parameters, image size, tolerances)
    ("focal_frequency", {}, 32, TOL),
    ("focal_frequency", {"alpha": 2.0, "patch_factor": 2}, 32, TOL),
    ("focal_frequency", {"ave_spectrum": True, "log_matrix": True}, 32, TOL),
    ("focal_frequency", {"batch_matrix": True, "alpha": 0.5}, 32, TOL),
    ("ssim", {}, 32, SSIM_TOL),
    ("ssim", {"channel": "y"}, 32, SSIM_TOL),
    ("ssim", {"filter_size": 7, "filter_sigma": 1.0, "k2": 0.05}, 32, SSIM_TOL),
    ("ms_ssim", {}, 176, SSIM_TOL),
    ("ms_ssim", {"channel": "y"}, 176, SSIM_TOL),
    ("ms_ssim", {"weights": [0.2, 0.3, 0.5], "filter_size": 5}, 96, SSIM_TOL),
    ("l1", {}, 32, TOL),
    ("charbonnier", {}, 32, TOL),
    ("charbonnier", {"eps": 1e-6}, 32, TOL),
]
"""Content losses: the harness plugin with these parameters against its PyTorch reference.
``ms_ssim`` at 176 px (5 scales) and 96 px (3 scales) halves evenly at every scale, where
``pytorch-msssim``'s padding of odd sizes does not apply; the smooth images keep every MS-SSIM
term positive, where its clipping to 0 and the harness' 1e-8 floor do not apply."""

ADVERSARIAL = [
    ("vanilla", {}),
    ("vanilla", {"label_smoothing": 0.1}),
    ("hinge", {}),
    ("relativistic", {}),
]
LOGIT_SHAPES = {"image": (4, 1), "patch": (4, 6, 6, 1)}

DEFAULTS = {
    "focal_frequency": {
        "alpha": 1.0,
        "patch_factor": 1,
        "ave_spectrum": False,
        "log_matrix": False,
        "batch_matrix": False,
    },
    "ssim": {"channel": "rgb", "filter_size": 11, "filter_sigma": 1.5, "k1": 0.01, "k2": 0.03},
    "charbonnier": {"eps": 1e-12},
}
DEFAULTS["ms_ssim"] = {**DEFAULTS["ssim"], "weights": [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]}


def _torch_python() -> str:
    python = os.environ.get(ENV, "").strip()
    if not python:
        pytest.skip(
            f"{ENV} is unset: set it to a Python with torch==2.13.0, focal-frequency-loss and "
            "pytorch-msssim (.ci/run makes one) to compare the losses with PyTorch"
        )
    return python


def _grads(fn, *inputs):
    """``fn(*inputs)`` and its gradients with respect to each input (float32)."""
    xs = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        value = fn(*xs)
    return float(value), [np.asarray(g) for g in tape.gradient(value, xs)]


def _r1_discriminator(pool: bool, arrays: dict[str, np.ndarray]) -> keras.Model:
    """conv3x3(3->8) + LeakyReLU(0.2) + conv3x3(8->1): a logit map, or its mean per image."""
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(image)
    x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Conv2D(1, 3, padding="same")(x)
    if pool:
        x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(image, x)
    model.set_weights([arrays[k] for k in ("kernel1", "bias1", "kernel2", "bias2")])
    return model


def _harness_side(registry) -> tuple[list[dict], dict[str, np.ndarray], dict[str, dict]]:
    """The cases' spec, their input arrays and the harness' values and gradients."""
    spec, arrays, mine = [], {}, {}
    for i, (plugin, params, size, (rtol, gtol)) in enumerate(CASES):
        cid = f"{plugin}{i}"
        sr, hr = IMAGES[size]
        loss = registry.factory("content_loss", plugin)(**params)
        value, (grad,) = _grads(lambda x, loss=loss, hr=hr: loss(x, tf.constant(hr)), sr)
        spec.append({"id": cid, "kind": plugin, "params": {**DEFAULTS.get(plugin, {}), **params}})
        arrays.update({f"{cid}/sr": sr, f"{cid}/hr": hr})
        mine[cid] = {"value": value, "grad_sr": grad, "rtol": rtol, "gtol": gtol}
    for name, params in ADVERSARIAL:
        adv = registry.factory("adversarial_loss", name)(**params)
        for shape_name, shape in LOGIT_SHAPES.items():
            real = RNG.normal(0.5, 1.5, shape).astype(np.float32)
            fake = RNG.normal(-0.5, 1.5, shape).astype(np.float32)
            for side in ("d", "g"):
                cid = f"{name}_{side}_{shape_name}_{len(spec)}"
                if side == "d":
                    value, (g_real, g_fake) = _grads(adv.discriminator_loss, real, fake)
                    grads = {"grad_real": g_real, "grad_fake": g_fake}
                else:
                    extra = {"real_logits": tf.constant(real)} if name == "relativistic" else {}
                    value, (g_fake,) = _grads(
                        lambda f, adv=adv, extra=extra: adv.generator_loss(f, **extra), fake
                    )
                    grads = {"grad_fake": g_fake}
                spec.append({"id": cid, "kind": name, "params": {**params, "side": side}})
                arrays.update({f"{cid}/real": real, f"{cid}/fake": fake})
                mine[cid] = {"value": value, **grads, "rtol": TOL[0], "gtol": TOL[1]}
    for pool in (False, True):
        cid = f"r1_{'image' if pool else 'map'}"
        weights = {
            "kernel1": RNG.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32),
            "bias1": RNG.normal(0, 0.1, 8).astype(np.float32),
            "kernel2": RNG.normal(0, 0.3, (3, 3, 8, 1)).astype(np.float32),
            "bias2": RNG.normal(0, 0.1, 1).astype(np.float32),
        }
        d = _r1_discriminator(pool, weights)
        sr, hr = IMAGES[32]
        adv = registry.factory("adversarial_loss", "hinge")(r1_gamma=10.0)
        with tf.GradientTape() as tape:
            value = adv.penalty(d, tf.constant(hr), tf.constant(sr))
        grads = tape.gradient(value, d.trainable_weights)
        spec.append({"id": cid, "kind": "r1", "params": {"gamma": 10.0, "pool": pool}})
        arrays.update({f"{cid}/{k}": v for k, v in weights.items()})
        arrays[f"{cid}/hr"] = hr
        mine[cid] = {"value": float(value), "rtol": R1_TOL[0], "gtol": R1_TOL[1]}
        for (name, w), g in zip(weights.items(), grads, strict=True):
            # the last bias does not reach the input gradient: None here, 0 in PyTorch
            mine[cid][f"grad_{name}"] = np.zeros_like(w) if g is None else np.asarray(g)
    return spec, arrays, mine


def test_losses_equal_their_pytorch_references(registry, tmp_path) -> None:
    python = _torch_python()
    spec, arrays, mine = _harness_side(registry)
    cases, values = tmp_path / "cases.npz", tmp_path / "values.npz"
    np.savez(cases, spec=np.array(json.dumps(spec)), **arrays)
    done = subprocess.run(
        [python, str(SCRIPT), str(cases), str(values)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout.strip(), file=sys.stderr)
    with np.load(values) as data:
        theirs = {key: data[key] for key in data.files}
    failures = []
    for cid, got in mine.items():
        want = float(theirs[f"{cid}/value"])
        if abs(got["value"] - want) > got["rtol"] * abs(want) + ATOL:
            failures.append(f"{cid}: value {got['value']!r} against {want!r}")
        for key, grad in got.items():
            if not key.startswith("grad_"):
                continue
            ref = theirs[f"{cid}/{key}"]
            assert grad.shape == ref.shape, (cid, key, grad.shape, ref.shape)
            err = float(np.max(np.abs(grad - ref)))
            if err > got["gtol"] * float(np.max(np.abs(ref))):
                failures.append(f"{cid}: {key} differs by {err:.3g} (max {np.abs(ref).max():.3g})")
    assert not failures, "\n".join(failures)
    assert len(mine) == len(spec) == len({k.split("/")[0] for k in theirs})
