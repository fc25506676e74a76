"""The PyTorch side of ``bench/train_step.py``: the same steps, timed on request.

It imports only torch and NumPy, so it runs in an interpreter of its own (PyTorch is not a
project dependency); ``bench/train_step.py --torch-python PATH`` starts it and asks it for
rounds of timed steps, alternating with the TensorFlow sides. Protocol: one JSON object per
line on stdin (``{"steps": n}``), one per line on stdout (``{"ms": [...], "cpu_ms": [...]}``:
wall and process CPU time per step); its first line describes the run (torch version, threads).

Cases, as in ``bench/train_step.py`` (channels_last, Adam 1e-4, random init):

- ``mse``: SRResNet (conv-BN-PReLU blocks), MSE;
- ``perpix``: SRResNet + the SRGAN discriminator (one D update on ``sr.detach()``, then one G
  update against it), MSE x 10 + VGG19 ``conv5_4`` features (/12.75, random weights) + 1e-3 x the
  ``modified`` (non-saturating) adversarial loss.

``--precision mixed_bfloat16`` runs the forward passes and losses under
``torch.autocast("cpu", torch.bfloat16)`` (weights and optimizer stay float32), as the
TensorFlow policy does.

    python bench/train_step_torch.py --case mse --precision float32 < requests
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

import torch
from torch import nn
from torch.nn import functional


class Block(nn.Module):
    def __init__(self, f: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(f, f, 3, padding=1),
            nn.BatchNorm2d(f, momentum=0.1),
            nn.PReLU(f),
            nn.Conv2d(f, f, 3, padding=1),
            nn.BatchNorm2d(f, momentum=0.1),
        )

    def forward(self, x):
        return x + self.body(x)


class SRResNet(nn.Module):
    def __init__(self, blocks: int, f: int = 64):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, f, 9, padding=4), nn.PReLU(f))
        self.blocks = nn.Sequential(*[Block(f) for _ in range(blocks)])
        self.body = nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.BatchNorm2d(f))
        up: list[nn.Module] = []
        for _ in range(2):
            up += [nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(f)]
        self.up = nn.Sequential(*up)
        self.tail = nn.Conv2d(f, 3, 9, padding=4)

    def forward(self, x):
        h = self.head(x)
        return torch.tanh(self.tail(self.up(h + self.body(self.blocks(h)))))


def discriminator(patch: int, f: int = 64, dense: int = 1024) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, f, 3, padding=1), nn.LeakyReLU(0.2)]
    channels = f
    for mult, stride in [(1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2)]:
        layers += [
            nn.Conv2d(channels, f * mult, 3, stride=stride, padding=1),
            nn.BatchNorm2d(f * mult, momentum=0.1),
            nn.LeakyReLU(0.2),
        ]
        channels = f * mult
    side = patch // 16
    layers += [
        nn.Flatten(),
        nn.Linear(channels * side * side, dense),
        nn.LeakyReLU(0.2),
        nn.Linear(dense, 1),
    ]
    return nn.Sequential(*layers)


def vgg19_conv5_4() -> nn.Module:
    """VGG19's features up to the ReLU after ``conv5_4`` (frozen)."""
    layers: list[nn.Module] = []
    channels = 3
    for block, (width, convs) in enumerate([(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]):
        if block:
            layers.append(nn.MaxPool2d(2))
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
    net = nn.Sequential(*layers)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def build(args: argparse.Namespace):
    torch.manual_seed(0)
    cl = torch.channels_last
    g = SRResNet(args.blocks).to(memory_format=cl)
    g_opt = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.9, 0.999))
    p = args.patch
    lr = torch.rand(args.batch, 3, p // 4, p // 4).to(memory_format=cl)
    hr = (torch.rand(args.batch, 3, p, p) * 2 - 1).to(memory_format=cl)

    def autocast():
        if args.precision == "mixed_bfloat16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    if args.case == "mse":

        def once() -> float:
            g_opt.zero_grad(set_to_none=True)
            with autocast():
                loss = torch.mean((g(lr).float() - hr) ** 2)
            loss.backward()
            g_opt.step()
            return float(loss.detach())

        return once

    d = discriminator(p).to(memory_format=cl)
    d_opt = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.9, 0.999))
    vgg = vgg19_conv5_4().to(memory_format=cl)
    mean = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)

    def features(x):
        bgr = (x.float().flip(1) + 1.0) * 127.5 - mean  # Keras' caffe preprocessing
        return vgg(bgr.contiguous(memory_format=cl)).float() / 12.75

    def bce(logits, target: float):
        return functional.binary_cross_entropy_with_logits(
            logits.float(), torch.full_like(logits.float(), target)
        )

    def once() -> float:
        with autocast():
            sr = g(lr)
        d_opt.zero_grad(set_to_none=True)
        with autocast():
            d_loss = bce(d(hr), 1.0) + bce(d(sr.detach()), 0.0)
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad(set_to_none=True)
        with autocast():
            feats = features(torch.cat([sr, hr]))
            n = sr.shape[0]
            content = 10.0 * torch.mean((sr.float() - hr) ** 2)
            content = content + torch.mean((feats[:n] - feats[n:]) ** 2)
            loss = content + 1e-3 * bce(d(sr), 1.0)
        loss.backward()
        g_opt.step()
        return float(loss.detach())

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", choices=["mse", "perpix"], default="mse")
    parser.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--blocks", type=int, default=16)
    args = parser.parse_args()
    once = build(args)
    for _ in range(args.warmup):
        once()
    info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        steps = int(json.loads(line)["steps"])
        ms, cpu_ms = [], []
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            once()
            ms.append((time.perf_counter() - t0) * 1000.0)
            cpu_ms.append((time.process_time() - c0) * 1000.0)
        print(json.dumps({"ms": ms, "cpu_ms": cpu_ms}), flush=True)


if __name__ == "__main__":
    main()
