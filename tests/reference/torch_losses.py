"""Reference values of the harness' losses from PyTorch: the official packages where there are
ones, else the published formulas written here in PyTorch. Run by the PyTorch interpreter that
``HARNESS_TORCH_PYTHON`` names (``tests/test_torch_reference.py`` starts it); imports nothing
of the harness.

    python tests/reference/torch_losses.py cases.npz values.npz

``cases.npz`` holds ``spec`` (a JSON list of ``{"id", "kind", "params"}``) and the arrays each
case reads, under ``<id>/<name>`` (images NHWC in ``[-1, 1]``, as the harness feeds its losses).
``values.npz`` gets ``<id>/value`` and ``<id>/grad_<name>`` for every input the case
differentiates (NHWC again, or HWIO for convolution kernels).

Sources:

- ``focal_frequency``: the FFL authors' package ``focal-frequency-loss`` (``FocalFrequencyLoss``,
  Jiang et al., ICCV 2021), called as published on NCHW tensors.
- ``ssim``, ``ms_ssim``: ``pytorch-msssim`` (``ssim``, ``ms_ssim``): Gaussian window, valid
  filtering, ``data_range = 1`` on ``(x + 1) / 2``; the loss is ``1 -`` the index. The Y channel
  is the BT.601 luma written here (``16/255 + (65.481 R + 128.553 G + 24.966 B) / 255``), as
  the package has no colour conversion.
- ``l1``, ``charbonnier``: ``mean |x - y|`` (``F.l1_loss``) and ``mean sqrt((x - y)^2 + eps)``
  (Charbonnier et al. 1994; LapSRN).
- ``vanilla``, ``hinge``, ``relativistic``: the GAN losses from their papers (Goodfellow et al.
  2014 non-saturating, with BCE on logits; Lim & Ye 2017; Jolicoeur-Martineau 2018 with
  ESRGAN's eq. 1-2), with the detaching of a two-pass ESRGAN discriminator update (each side's
  term sees the other side's mean as a constant).
- ``r1``: ``gamma / 2 * E ||grad_x sum D(x)||^2`` (Mescheder et al., ICML 2018) by
  ``torch.autograd.grad`` with ``create_graph = True``, on a two-convolution discriminator with
  the weights the harness' Keras copy holds; its gradient with respect to those weights too.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from focal_frequency_loss import FocalFrequencyLoss
from pytorch_msssim import ms_ssim, ssim

LUMA = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


def nchw(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.transpose(a, (0, 3, 1, 2)), dtype=torch.float32, requires_grad=grad)


def nhwc(t: torch.Tensor) -> np.ndarray:
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


def unit(x: torch.Tensor, channel: str) -> torch.Tensor:
    """``[-1, 1]`` RGB -> ``[0, 1]`` RGB or BT.601 Y."""
    x = (x + 1.0) * 0.5
    if channel == "y":
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return 16.0 / 255.0 + LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
    return x


def image_loss(kind: str, p: dict, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    if kind == "focal_frequency":
        return FocalFrequencyLoss(loss_weight=1.0, **p)(sr, hr)
    if kind in ("ssim", "ms_ssim"):
        x, y = unit(sr, p["channel"]), unit(hr, p["channel"])
        common = {
            "data_range": 1.0,
            "win_size": p["filter_size"],
            "win_sigma": p["filter_sigma"],
            "K": (p["k1"], p["k2"]),
        }
        if kind == "ssim":
            return 1.0 - ssim(x, y, **common)
        return 1.0 - ms_ssim(x, y, weights=p["weights"], **common)
    if kind == "l1":
        return F.l1_loss(sr, hr)
    if kind == "charbonnier":
        return torch.sqrt((sr - hr) ** 2 + p["eps"]).mean()
    raise SystemExit(f"error: unknown image loss kind {kind!r}")


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def gan_loss(kind: str, side: str, p: dict, real: torch.Tensor, fake: torch.Tensor):
    if kind == "vanilla":
        if side == "d":
            return bce(real, 1.0 - p.get("label_smoothing", 0.0)) + bce(fake, 0.0)
        return bce(fake, 1.0)
    if kind == "hinge":
        if side == "d":
            return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
        return -fake.mean()
    if kind == "relativistic":
        if side == "d":
            return 0.5 * (
                bce(real - fake.detach().mean(), 1.0) + bce(fake - real.detach().mean(), 0.0)
            )
        real = real.detach()  # the generator's update: D(hr) is data
        return 0.5 * (bce(real - fake.mean(), 0.0) + bce(fake - real.mean(), 1.0))
    raise SystemExit(f"error: unknown adversarial kind {kind!r}")


def r1(p: dict, arrays: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """R1 and the discriminator's parameters it is differentiated by."""
    params = {
        "kernel1": torch.tensor(np.transpose(arrays["kernel1"], (3, 2, 0, 1)), requires_grad=True),
        "bias1": torch.tensor(arrays["bias1"], requires_grad=True),
        "kernel2": torch.tensor(np.transpose(arrays["kernel2"], (3, 2, 0, 1)), requires_grad=True),
        "bias2": torch.tensor(arrays["bias2"], requires_grad=True),
    }
    x = nchw(arrays["hr"], grad=True)
    h = F.leaky_relu(F.conv2d(x, params["kernel1"], params["bias1"], padding=1), 0.2)
    logits = F.conv2d(h, params["kernel2"], params["bias2"], padding=1)
    if p["pool"]:
        logits = logits.mean((2, 3))
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    value = p["gamma"] / 2.0 * grad.pow(2).flatten(1).sum(1).mean()
    return value, params


def run(case: dict, arrays: dict) -> dict[str, np.ndarray]:
    kind, p, cid = case["kind"], case["params"], case["id"]
    out: dict[str, np.ndarray] = {}
    if kind == "r1":
        value, params = r1(p, arrays)
        # the last bias does not reach the input gradient: its gradient is 0 (unused)
        grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
        for (name, t), g in zip(params.items(), grads, strict=True):
            g = (torch.zeros_like(t) if g is None else g).detach().numpy()
            out[f"{cid}/grad_{name}"] = np.transpose(g, (2, 3, 1, 0)) if g.ndim == 4 else g
    elif kind in ("vanilla", "hinge", "relativistic"):
        real = torch.tensor(arrays["real"], requires_grad=True)
        fake = torch.tensor(arrays["fake"], requires_grad=True)
        value = gan_loss(kind, p["side"], p, real, fake)
        wrt = [real, fake] if p["side"] == "d" else [fake]
        grads = torch.autograd.grad(value, wrt)
        for name, g in zip(["real", "fake"] if p["side"] == "d" else ["fake"], grads, strict=True):
            out[f"{cid}/grad_{name}"] = g.numpy()
    else:
        sr, hr = nchw(arrays["sr"], grad=True), nchw(arrays["hr"])
        value = image_loss(kind, p, sr, hr)
        (grad,) = torch.autograd.grad(value, sr)
        out[f"{cid}/grad_sr"] = nhwc(grad)
    out[f"{cid}/value"] = np.asarray(value.detach().numpy(), np.float64)
    return out


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: torch_losses.py CASES.npz VALUES.npz")
    torch.manual_seed(0)
    with np.load(sys.argv[1]) as data:
        spec = json.loads(str(data["spec"]))
        arrays = {key: data[key] for key in data.files if key != "spec"}
    out: dict[str, np.ndarray] = {}
    for case in spec:
        prefix = case["id"] + "/"
        mine = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        out.update(run(case, mine))
    np.savez(sys.argv[2], **out)
    print(f"torch {torch.__version__}: {len(spec)} cases")


if __name__ == "__main__":
    main()
