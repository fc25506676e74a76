"""Milliseconds per training step: the harness trainer against a bare ``tf.function`` step.

Both sides train the same model with the same losses, optimizer and precision policy, in the
same process, on the same in-memory batch (so data loading is not measured). Timings alternate
between the two sides in rounds, and the median step of each side is compared (the target is
harness >= 0.97x the bare speed). Cases:

- ``mse``: SRResNet-16 (64 filters), MSE, batch 16, 96 px HR (24 px LR);
- ``perpix``: the seed's full GAN step: SRResNet-16 + SRGAN discriminator, Per-Pix as two plain
  tables, ``[losses.mse]`` + ``[losses.vgg54]`` with the seed's piecewise weights (random VGG
  weights: the same compute as ImageNet weights), ``modified`` adversarial loss;
- ``torch``: the ``mse`` step in PyTorch (float32, channels_last), when torch is installed;
- ``losses``: the GAN step of ``perpix`` (SRResNet-16, SRGAN discriminator, ``modified``) with
  each content loss alone (``--loss`` picks some), the cost table of docs/plugins-builtin.md;
  frozen networks with random weights (the same compute as the real ones);
- ``shared_vgg``: ``perceptual`` (VGG16, Real-ESRGAN's five layers) + ``lpips`` (vgg) in one
  GAN step, their VGG16 run once per image (shared) against once per term (not shared).
  Neither is in ``all``.

    python bench/train_step.py                 # mse, perpix, torch
    python bench/train_step.py --case mse --steps 20 --json /tmp/bench.json
    python bench/train_step.py --case losses --loss l1,ssim --steps 3 --rounds 1 --warmup 1
    python bench/train_step.py --case shared_vgg --steps 3 --rounds 2 --warmup 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from harness import config  # noqa: E402
from harness.plugin_api.registry import Registry, build_registry  # noqa: E402
from harness.training import precision  # noqa: E402
from harness.training.step import Trainer  # noqa: E402


def experiment(case: str, args: argparse.Namespace, registry: Registry) -> config.Experiment:
    raw: dict[str, Any] = {
        "experiment": {"name": f"bench_{case}"},
        "data": {"patch": args.patch},
        "generator": {"name": "srresnet", "blocks": args.blocks, "filters": 64},
        "train": {"batch_size": args.batch, "precision": args.precision, "steps": 10**6},
    }
    if case == "mse":
        raw["losses"] = {"mse": {}}
    else:
        piecewise = {"schedule": "piecewise", "boundaries": ["vgg_on", "mse_down"]}
        raw["train"]["milestones"] = {"vgg_on": 15000, "mse_down": 20000}
        raw["losses"] = {
            "mse": {"weight": {**piecewise, "values": [10.0, 10.0, 1.0]}},
            "vgg54": {"weight": {**piecewise, "values": [1.0, 10.0, 10.0]}, "weights": "none"},
        }
        raw["adversarial"] = {"name": "modified", "weight": 1e-3}
        raw["discriminator"] = {"name": "srgan"}
    return config.from_dict(raw, registry=registry)


def batch(args: argparse.Namespace) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(0)
    p, s = args.patch, 4
    lr = rng.uniform(0, 1, (args.batch, p // s, p // s, 3)).astype(np.float32)
    hr = rng.uniform(-1, 1, (args.batch, p, p, 3)).astype(np.float32)
    return tf.constant(lr), tf.constant(hr)


def bare_step(exp: config.Experiment, registry: Registry) -> Callable[[tf.Tensor, tf.Tensor], Any]:
    """The step a user would write by hand for ``exp``: no schedules, no strategy."""
    policy = precision.resolve(exp.train.precision)
    scaling = precision.needs_loss_scaling(policy)
    with precision.policy_scope(policy):
        g = registry.factory("generator", "srresnet")(scale=4, **exp.generator.params)
        terms = [
            (
                registry.factory("content_loss", cfg.plugin)(**cfg.params),
                float(config.build_schedule(cfg.weight, registry)(0)),
            )
            for cfg in exp.losses
        ]

        def adam():
            opt = keras.optimizers.Adam(1e-4, beta_1=0.9)
            return keras.mixed_precision.LossScaleOptimizer(opt) if scaling else opt

        g_opt = adam()
        g_opt.build(g.trainable_variables)
        if exp.adversarial is None:

            @tf.function
            def step(lr, hr):
                with tf.GradientTape() as tape:
                    sr = g(lr, training=True)
                    loss = tf.add_n([w * tf.cast(f(sr, hr), tf.float32) for f, w in terms])
                    scaled = g_opt.scale_loss(loss) if scaling else loss
                grads = tape.gradient(scaled, g.trainable_variables)
                g_opt.apply_gradients(zip(grads, g.trainable_variables, strict=True))
                return loss

            return step

        d = registry.factory("discriminator", "srgan")(patch=exp.data.patch)
        adv = registry.factory("adversarial_loss", "modified")()
        d_opt = adam()
        d_opt.build(d.trainable_variables)

        @tf.function
        def gan_step(lr, hr):
            with tf.GradientTape() as g_tape:
                sr = g(lr, training=True)
                with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                    fixed = tf.stop_gradient(sr)
                    d_loss = adv.discriminator_loss(d(hr, training=True), d(fixed, training=True))
                    d_scaled = d_opt.scale_loss(d_loss) if scaling else d_loss
                d_grads = d_tape.gradient(d_scaled, d.trainable_variables)
                d_opt.apply_gradients(zip(d_grads, d.trainable_variables, strict=True))
                content = tf.add_n([w * tf.cast(f(sr, hr), tf.float32) for f, w in terms])
                loss = content + 1e-3 * adv.generator_loss(d(sr, training=True))
                scaled = g_opt.scale_loss(loss) if scaling else loss
            grads = g_tape.gradient(scaled, g.trainable_variables)
            g_opt.apply_gradients(zip(grads, g.trainable_variables, strict=True))
            return loss

        return gan_step


def timed(fn: Callable[[], Any], steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def bench_tf(case: str, args: argparse.Namespace, registry: Registry) -> dict[str, Any]:
    exp = experiment(case, args, registry)
    lr, hr = batch(args)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(tf.data.Dataset.from_tensors((lr, hr)).repeat())
    trainer.step = exp.train.pretrain_steps  # the GAN phase from the first step
    bare = bare_step(exp, registry)

    def harness_once() -> None:
        trainer.train_step()

    def bare_once() -> None:
        float(bare(lr, hr))

    for _ in range(args.warmup):
        harness_once()
        bare_once()
    times: dict[str, list[float]] = {"harness": [], "bare": []}
    for _ in range(args.rounds):
        times["harness"] += timed(harness_once, args.steps)
        times["bare"] += timed(bare_once, args.steps)
    h, b = statistics.median(times["harness"]), statistics.median(times["bare"])
    return {
        "case": case,
        "precision": trainer.policy,
        "batch": args.batch,
        "patch": args.patch,
        "harness_ms": round(h, 1),
        "bare_ms": round(b, 1),
        "harness_speed_vs_bare": round(b / h, 3),
        "steps_each": len(times["harness"]),
    }


def bench_torch(args: argparse.Namespace) -> dict[str, Any] | None:
    try:
        import torch
        from torch import nn
    except ImportError:
        return None

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
            up = []
            for _ in range(2):
                up += [nn.Conv2d(f, 4 * f, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(f)]
            self.up = nn.Sequential(*up)
            self.tail = nn.Conv2d(f, 3, 9, padding=4)

        def forward(self, x):
            h = self.head(x)
            return torch.tanh(self.tail(self.up(h + self.body(self.blocks(h)))))

    torch.manual_seed(0)
    model = SRResNet(args.blocks).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    p = args.patch
    lr = torch.rand(args.batch, 3, p // 4, p // 4).to(memory_format=torch.channels_last)
    hr = (torch.rand(args.batch, 3, p, p) * 2 - 1).to(memory_format=torch.channels_last)

    def once() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(lr) - hr) ** 2)
        loss.backward()
        opt.step()
        float(loss)

    for _ in range(args.warmup):
        once()
    times = timed(once, args.steps * args.rounds)
    return {
        "case": "torch_mse",
        "precision": "float32 channels_last",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "torch_ms": round(statistics.median(times), 1),
    }


# --------------------------------------------------------------------------- content losses

LOSS_CASES: dict[str, dict[str, Any]] = {
    "mse": {"mse": {}},
    "l1": {"l1": {}},
    "charbonnier": {"charbonnier": {}},
    "gradient": {"gradient": {}},
    "ssim": {"ssim": {}},
    "ms_ssim": {"ms_ssim": {"weights": [0.0448, 0.2856, 0.3001]}},  # 3 scales fit 96 px
    "focal_frequency": {"focal_frequency": {}},
    "ldl": {"ldl": {}},
    "vgg54": {"vgg54": {"weights": "none"}},
    "perceptual_vgg19": {"perceptual": {"weights": "none", "network": "vgg19"}},
    "perceptual_vgg16": {"perceptual": {"weights": "none", "network": "vgg16"}},
    "lpips_vgg": {"lpips": {"weights": "none", "net": "vgg"}},
    "lpips_alex": {"lpips": {"weights": "none", "net": "alex"}},
    "dists": {"dists": {"weights": "none"}},
}
"""One ``[losses]`` recipe per row of the cost table (weights "none": random networks)."""

REAL_ESRGAN_LAYERS = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_3": 1.0,
    "conv4_3": 1.0,
    "conv5_3": 1.0,
}


def _gan_experiment(
    name: str, losses: dict[str, Any], args: argparse.Namespace, registry: Registry
) -> config.Experiment:
    raw: dict[str, Any] = {
        "experiment": {"name": f"bench_{name}"},
        "data": {"patch": args.patch},
        "generator": {"name": "srresnet", "blocks": args.blocks, "filters": 64},
        "discriminator": {"name": "srgan"},
        "adversarial": {"name": "modified", "weight": 1e-3},
        "losses": losses,
        "train": {"batch_size": args.batch, "precision": args.precision, "steps": 10**6},
    }
    if "ldl" in losses:
        raw["train"]["ema"] = 0.999  # ldl reads the EMA generator
    return config.from_dict(raw, registry=registry)


def _gan_trainer(exp: config.Experiment, args: argparse.Namespace, registry: Registry) -> Trainer:
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(tf.data.Dataset.from_tensors(batch(args)).repeat())
    for _ in range(args.warmup):
        trainer.train_step()  # the first traces the step
    return trainer


def bench_losses(args: argparse.Namespace, registry: Registry) -> list[dict[str, Any]]:
    """Median ms per GAN step with each content loss alone (``--loss``: some of them)."""
    names = args.loss.split(",") if args.loss else list(LOSS_CASES)
    out = []
    for name in names:
        trainer = _gan_trainer(
            _gan_experiment(name, LOSS_CASES[name], args, registry), args, registry
        )
        times = timed(trainer.train_step, args.steps * args.rounds)
        out.append(
            {
                "case": f"loss:{name}",
                "precision": trainer.policy,
                "batch": args.batch,
                "patch": args.patch,
                "gan_step_ms": round(statistics.median(times), 1),
                "steps": len(times),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def bench_shared_vgg(args: argparse.Namespace, registry: Registry) -> dict[str, Any]:
    """``perceptual`` + ``lpips`` on one VGG16: the trunk's features shared between the terms
    (one pass per image per step) against each term running its own (two)."""
    from harness.data import backbones  # the trunk the two terms share (random weights)

    losses = {
        "perceptual": {"weights": "none", "network": "vgg16", "layer_weights": REAL_ESRGAN_LAYERS},
        "lpips": {"weights": "none", "net": "vgg"},
    }
    trunk = backbones.vgg("vgg16", "none")
    trainers, passes = {}, {}
    for label, share in (("shared", True), ("not_shared", False)):
        trunk.share = share  # read when the step is traced, in the warm-up
        before = trunk.passes
        trainers[label] = _gan_trainer(
            _gan_experiment(label, losses, args, registry), args, registry
        )
        passes[label] = trunk.passes - before
    trunk.share = True
    times: dict[str, list[float]] = {label: [] for label in trainers}
    for _ in range(args.rounds):
        for label, trainer in trainers.items():
            times[label] += timed(trainer.train_step, args.steps)
    ms = {label: statistics.median(t) for label, t in times.items()}
    return {
        "case": "shared_vgg",
        "precision": trainers["shared"].policy,
        "batch": args.batch,
        "patch": args.patch,
        "vgg16_passes_per_trace": passes,
        "shared_ms": round(ms["shared"], 1),
        "not_shared_ms": round(ms["not_shared"], 1),
        "saved_ms": round(ms["not_shared"] - ms["shared"], 1),
        "steps_each": len(times["shared"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--case", choices=["all", "mse", "perpix", "torch", "losses", "shared_vgg"], default="all"
    )
    parser.add_argument("--loss", help=f"losses case: some of {', '.join(LOSS_CASES)}")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = []
    registry = build_registry()
    for case in ("mse", "perpix"):
        if args.case in ("all", case):
            results.append(bench_tf(case, args, registry))
            print(json.dumps(results[-1]), flush=True)
    if args.case in ("all", "torch"):
        torch_result = bench_torch(args)
        if torch_result is None:
            print('{"case": "torch_mse", "skipped": "torch is not installed"}')
        else:
            results.append(torch_result)
            print(json.dumps(torch_result), flush=True)
    if args.case == "losses":
        results += bench_losses(args, registry)
    if args.case == "shared_vgg":
        results.append(bench_shared_vgg(args, registry))
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
