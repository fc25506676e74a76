"""Milliseconds per training step at equal precision: the harness trainer, a bare
``tf.function`` step and PyTorch.

The TensorFlow sides train the same model with the same losses, optimizer and precision policy,
in the same process, on the same in-memory batch (so data loading is not measured). PyTorch runs
the same networks and losses in its own interpreter (``bench/train_step_torch.py``, started with
``--torch-python``), channels_last, float32 or ``torch.autocast("cpu", torch.bfloat16)`` for
``mixed_bfloat16``. The sides alternate in rounds (harness, bare, PyTorch, harness, ...), so a
busy machine slows them alike; each side reports min / median / max over all its steps, the
median of each round (their spread shows how stable the step is) and the process CPU time per
step (all threads: on a shared machine it stays within a few percent where wall time does not,
so it shows whether a change alters the work done or only the waiting). Beside each round's
median it records what else the machine did meanwhile (Linux ``/proc/stat``): the CPU time of
every other process and the time the hypervisor stole, each as a percentage of all cores over
the round, so a slow round can be told apart: other load or steal (the machine), or neither
(the step itself). Cases:

- ``mse``: SRResNet-16 (64 filters), MSE, batch 16, 96 px HR (24 px LR);
- ``perpix``: the seed's full GAN step: SRResNet-16 + SRGAN discriminator, Per-Pix as two plain
  tables, ``[losses.mse]`` + ``[losses.vgg54]`` with the seed's piecewise weights (random VGG
  weights: the same compute as ImageNet weights), ``modified`` adversarial loss;
- ``d_<family>`` (``--case discriminators`` runs them all): the harness' GAN step alone for each
  discriminator family with its paper's adversarial loss, the same generator (MSRResNet-16) and
  MSE content loss, so the differences are the discriminator's and its loss' (see
  :data:`DISCRIMINATOR_CASES`; ``projected`` uses the offline torchvision VGG16 weights);
- ``losses``: the GAN step of ``perpix`` (SRResNet-16, SRGAN discriminator, ``modified``) with
  each content loss alone (``--loss`` picks some), the cost table of docs/plugins-builtin.md;
  frozen networks with random weights (the same compute as the real ones);
- ``shared_vgg``: ``perceptual`` (VGG16, Real-ESRGAN's five layers) + ``lpips`` (vgg) in one
  GAN step, their VGG16 run once per image (shared) against once per term (not shared).
  Only ``mse`` and ``perpix`` are in ``all``.

    python bench/train_step.py --torch-python ~/.venvs/torch/bin/python   # all cases, both
    python bench/train_step.py --case mse --precision mixed_bfloat16 --rounds 8 --json out.json
    python bench/train_step.py --case discriminators --steps 4 --rounds 1
    python bench/train_step.py --case losses --loss l1,ssim --steps 3 --rounds 1 --warmup 1
    python bench/train_step.py --case shared_vgg --steps 3 --rounds 2 --warmup 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels on, as importing harness does (harness.ONEDNN_ENV); here TensorFlow loads first
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

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


def cpu_counters() -> tuple[float, float] | None:
    """Seconds of busy and of stolen CPU time of the whole machine since boot, summed over cores
    (the ``cpu`` line of ``/proc/stat``); None where there is no such file."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields)
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def round_load(
    before: tuple[float, float] | None,
    after: tuple[float, float] | None,
    wall_s: float,
    own_cpu_s: float,
) -> dict[str, float]:
    """What the rest of the machine did during one round: the CPU time of other processes and
    the time stolen by the hypervisor, each in percent of all cores over the round's wall time."""
    if before is None or after is None or wall_s <= 0:
        return {}
    capacity = wall_s * (os.cpu_count() or 1)
    others = max(0.0, after[0] - before[0] - own_cpu_s)
    return {
        "others_pct": round(100.0 * others / capacity, 1),
        "steal_pct": round(100.0 * (after[1] - before[1]) / capacity, 1),
    }


def timed(fn: Callable[[], Any], steps: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU milliseconds of each of ``steps`` calls."""
    wall, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return wall, cpu


class TorchSide:
    """The PyTorch step in its own interpreter (``bench/train_step_torch.py``), asked for one
    round of timed steps at a time so its rounds alternate with the TensorFlow sides."""

    def __init__(self, python: str, case: str, policy: str, args: argparse.Namespace):
        script = Path(__file__).with_name("train_step_torch.py")
        cmd = [python, str(script), "--case", case, "--precision", policy]
        for key in ("warmup", "batch", "patch", "blocks"):
            cmd += [f"--{key}", str(getattr(args, key))]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"error: the PyTorch side ({self.proc.args[0]}) exited; see above.")
        return json.loads(line)

    def round(self, steps: int) -> tuple[list[float], list[float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"steps": steps}) + "\n")
        self.proc.stdin.flush()
        out = self._read()
        return out["ms"], out["cpu_ms"]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def spread(ms: list[float]) -> dict[str, float]:
    """min / median / max of one side's step times."""
    return {
        "min": round(min(ms), 1),
        "median": round(statistics.median(ms), 1),
        "max": round(max(ms), 1),
    }


def bench_case(
    case: str, policy: str, args: argparse.Namespace, registry: Registry
) -> dict[str, Any]:
    """One case at one precision: harness, bare and (if given) PyTorch, alternating rounds."""
    args.precision = policy
    exp = experiment(case, args, registry)
    lr, hr = batch(args)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(tf.data.Dataset.from_tensors((lr, hr)).repeat())
    trainer.step = exp.train.pretrain_steps  # the GAN phase from the first step
    bare = bare_step(exp, registry)
    sides: dict[str, Callable[[int], tuple[list[float], list[float]]]] = {
        "harness": lambda n: timed(trainer.train_step, n),
        "bare": lambda n: timed(lambda: float(bare(lr, hr)), n),
    }
    torch_side = None
    if args.torch_python:
        torch_side = TorchSide(args.torch_python, case, policy, args)
        sides["torch"] = torch_side.round
    for name in ("harness", "bare"):
        sides[name](args.warmup)
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    medians: dict[str, list[float]] = {name: [] for name in sides}
    loads: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, side in sides.items():
            before, t0 = cpu_counters(), time.perf_counter()
            ms, cpu_ms = side(args.steps)
            wall_s = time.perf_counter() - t0
            loads[name].append(round_load(before, cpu_counters(), wall_s, sum(cpu_ms) / 1000.0))
            times[name] += ms
            cpu[name] += cpu_ms
            medians[name].append(statistics.median(ms))
    if torch_side is not None:
        torch_side.close()
    out: dict[str, Any] = {
        "case": case,
        "precision": trainer.policy,
        "batch": args.batch,
        "patch": args.patch,
        "steps_each": len(times["harness"]),
    }
    for name in sides:
        out[f"{name}_ms"] = spread(times[name])
        out[f"{name}_round_medians_ms"] = [round(m, 1) for m in medians[name]]
        out[f"{name}_round_spread_pct"] = round(
            100.0 * (max(medians[name]) / min(medians[name]) - 1), 1
        )
        out[f"{name}_round_load"] = loads[name]
        out[f"{name}_cpu_ms"] = spread(cpu[name])
    h = statistics.median(times["harness"])
    out["harness_speed_vs_bare"] = round(statistics.median(times["bare"]) / h, 3)
    if torch_side is not None:
        out["torch"] = torch_side.info
        out["harness_speed_vs_torch"] = round(statistics.median(times["torch"]) / h, 3)
    else:
        out["torch"] = "skipped: " + TORCH_HINT
    return out


TORCH_HINT = (
    "no --torch-python given (PyTorch runs in its own interpreter: python3 -m venv "
    "~/.venvs/torch && ~/.venvs/torch/bin/pip install torch numpy, then --torch-python "
    "~/.venvs/torch/bin/python)"
)


def table(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table: median (min-max) per side."""
    rows = [
        "| case | precision | harness | bare | PyTorch | harness vs bare | vs PyTorch "
        "| harness round medians: spread (others' CPU, steal) |"
    ]
    rows.append("|---|---|---|---|---|---|---|---|")
    for r in results:
        cells = []
        for side in ("harness", "bare", "torch"):
            s = r.get(f"{side}_ms")
            cells.append(f"{s['median']} ({s['min']}-{s['max']})" if s else "-")
        ratios = [r.get(key, "-") for key in ("harness_speed_vs_bare", "harness_speed_vs_torch")]
        ratios = [f"{x}x" if x != "-" else x for x in ratios]
        rows.append(
            f"| {r['case']} | {r['precision']} | {' | '.join(cells + ratios)} | {rounds(r)} |"
        )
    return "\n".join(rows)


def rounds(result: dict[str, Any]) -> str:
    """The harness side's round medians as 'spread%: median (others%, steal%) ...'."""
    medians, loads = result.get("harness_round_medians_ms"), result.get("harness_round_load")
    if not medians:
        return "-"
    parts = [
        f"{m:.0f}" + (f" ({load['others_pct']:.0f}%, {load['steal_pct']:.0f}%)" if load else "")
        for m, load in zip(medians, loads or [{}] * len(medians), strict=True)
    ]
    return f"{result['harness_round_spread_pct']}%: " + ", ".join(parts)


DISCRIMINATOR_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "d_srgan": ({"name": "srgan"}, {"name": "modified"}),
    "d_vgg_style": ({"name": "vgg_style"}, {"name": "relativistic"}),
    "d_vgg_style_r1": ({"name": "vgg_style"}, {"name": "vanilla", "r1_gamma": 10.0}),
    "d_patchgan": ({"name": "patchgan"}, {"name": "vanilla"}),
    "d_unet_sn": ({"name": "unet_sn"}, {"name": "vanilla"}),
    "d_projected": ({"name": "projected"}, {"name": "hinge"}),
}
"""Case -> (``[discriminator]``, ``[adversarial]``): each family with its paper's loss."""


def bench_discriminator(
    case: str, policy: str, args: argparse.Namespace, registry: Registry
) -> dict[str, Any]:
    """Milliseconds per GAN step of the harness trainer for one discriminator family."""
    discriminator, adversarial = DISCRIMINATOR_CASES[case]
    raw: dict[str, Any] = {
        "experiment": {"name": f"bench_{case}"},
        "data": {"patch": args.patch},
        "generator": {"name": "msrresnet", "blocks": args.blocks, "filters": 64},
        "discriminator": discriminator,
        "losses": {"mse": {}},
        "adversarial": {**adversarial, "weight": 1e-3},
        "train": {"batch_size": args.batch, "precision": policy, "steps": 10**6},
    }
    exp = config.from_dict(raw, registry=registry)
    lr, hr = batch(args)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(tf.data.Dataset.from_tensors((lr, hr)).repeat())
    for _ in range(args.warmup):
        trainer.train_step()
    times, cpu = timed(trainer.train_step, args.steps * args.rounds)
    assert trainer.discriminator is not None
    return {
        "case": case,
        "precision": trainer.policy,
        "batch": args.batch,
        "patch": args.patch,
        "discriminator_params": trainer.discriminator.count_params(),
        "discriminator_trainable": sum(
            int(np.prod(w.shape)) for w in trainer.discriminator.trainable_weights
        ),
        "harness_ms": spread(times),
        "harness_cpu_ms": spread(cpu),
        "harness_speed_vs_bare": "-",
        "steps_each": len(times),
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
        times, _ = timed(trainer.train_step, args.steps * args.rounds)
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
            times[label] += timed(trainer.train_step, args.steps)[0]
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
        "--case",
        choices=[
            "all",
            "mse",
            "perpix",
            "discriminators",
            *DISCRIMINATOR_CASES,
            "losses",
            "shared_vgg",
        ],
        default="all",
    )
    parser.add_argument("--loss", help=f"losses case: some of {', '.join(LOSS_CASES)}")
    parser.add_argument(
        "--precision",
        default="float32,mixed_bfloat16",
        help="comma-separated Keras policies (PyTorch: float32 or bf16 autocast)",
    )
    parser.add_argument("--steps", type=int, default=4, help="timed steps per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument(
        "--torch-python", help="a Python with torch installed: adds the PyTorch column"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.torch_python and not Path(args.torch_python).exists():
        raise SystemExit(f"error: --torch-python {args.torch_python} does not exist; " + TORCH_HINT)
    if not args.torch_python:
        print(f"note: PyTorch column skipped: {TORCH_HINT}", flush=True)
    onednn = precision.onednn_enabled()
    print(
        f"TensorFlow {tf.__version__}, oneDNN CPU kernels {'on' if onednn else 'off'} "
        f"(TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '')})",
        flush=True,
    )
    results = []
    registry = build_registry()
    policies = [p.strip() for p in args.precision.split(",")]  # bench_case sets args.precision
    for case in ("mse", "perpix"):
        if args.case not in ("all", case):
            continue
        for policy in policies:
            results.append(bench_case(case, precision.resolve(policy.strip()), args, registry))
            print(json.dumps(results[-1]), flush=True)
    for case in DISCRIMINATOR_CASES:
        if args.case in ("discriminators", case):
            for policy in policies:
                policy = precision.resolve(policy.strip())
                results.append(bench_discriminator(case, policy, args, registry))
                print(json.dumps(results[-1]), flush=True)
    for policy in policies if args.case in ("losses", "shared_vgg") else []:
        args.precision = precision.resolve(policy.strip())
        if args.case == "losses":
            results += bench_losses(args, registry)
        else:
            results.append(bench_shared_vgg(args, registry))
            print(json.dumps(results[-1]), flush=True)
    if args.case in ("all", "mse", "perpix", "discriminators", *DISCRIMINATOR_CASES):
        print(table(results))
    for result in results:
        result["onednn"] = onednn
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
