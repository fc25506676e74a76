"""How fast the training data pipeline delivers batches, against what a training step consumes.

    .venv/bin/python bench/data_pipeline.py [--data DIR ...] [--seconds 20] [--no-step]
        [--degradation NAME] [--set key=value ...] [--step-time SECONDS]

Measures images per second of :func:`harness.data.pipeline.training_dataset` (96 px HR crops, batch
16, decoded images cached in memory, augmentation on, LR made per crop by ``--degradation``,
``bicubic`` by default) after one warm-up epoch, and the time of one
SRResNet-16 MSE training step (batch 16, ``mixed_bfloat16`` where the CPU has bf16 units) when the
``srresnet`` generator is registered; otherwise it uses the figure in NOTES.md (0.54 s). The
pipeline should deliver at least 5 times what the step consumes, so it never starves training.
Also times the evaluation protocol (bicubic) on BSD100 when it is in the data folder.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
NOTES_STEP_S = 0.54  # SRResNet-16 step, batch 16, mixed_bfloat16, this project's 2-core CPU
TARGET_RATIO = 5.0


def pipeline_rate(
    folders: list[str],
    batch: int,
    patch: int,
    seconds: float,
    degradation: str = "bicubic",
    params: dict | None = None,
) -> tuple[float, float]:
    """(images per second after warm-up, seconds to the first batch)."""
    from harness.config import DataConfig, PluginConfig
    from harness.data import pipeline as data
    from harness.data.degrade import build
    from harness.plugin_api.registry import build_registry

    registry = build_registry()
    build(registry, degradation, params or {}, 4)  # parameters checked, as --set would be
    cfg = DataConfig(
        train=tuple(folders),
        patch=patch,
        scale=4,
        augment=True,
        cache="memory",
        degradation=PluginConfig(degradation, dict(params or {})),
    )
    start = time.perf_counter()
    it = iter(data.training_dataset(cfg, batch, seed=0, registry=registry))
    next(it)
    first = time.perf_counter() - start
    for _ in range(50):  # past the first epoch: every image decoded and cached
        next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        count += batch
    return count / (time.perf_counter() - start), first


def step_time(batch: int, patch: int, steps: int = 6) -> tuple[float | None, str]:
    """Seconds per SRResNet-16 MSE step, or ``None`` when srresnet is not registered."""
    from harness.plugin_api.registry import build_registry

    registry = build_registry()
    if "srresnet" not in registry.names("generator"):
        return None, "srresnet not registered"
    import keras
    import numpy as np
    import tensorflow as tf

    try:
        from harness.training.precision import resolve

        policy = resolve("auto")
    except Exception:  # the precision helper's API differs: fall back to the CPU's best
        policy = "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = registry.factory("generator", "srresnet")(scale=4, blocks=16, filters=64)
        optimizer = keras.optimizers.Adam(1e-4)
        rng = np.random.default_rng(0)
        lr = tf.constant(rng.uniform(0, 1, (batch, patch // 4, patch // 4, 3)), tf.float32)
        hr = tf.constant(rng.uniform(-1, 1, (batch, patch, patch, 3)), tf.float32)

        @tf.function
        def train_step(lr, hr):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.cast(model(lr, training=True), tf.float32) - hr))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        train_step(lr, hr)  # trace and warm up
        train_step(lr, hr)
        start = time.perf_counter()
        for _ in range(steps):
            train_step(lr, hr).numpy()
        return (time.perf_counter() - start) / steps, policy
    finally:
        keras.mixed_precision.set_global_policy("float32")


def eval_time(folder: Path) -> tuple[float, float, int]:
    """(seconds, bicubic PSNR-Y, images) for the evaluation protocol on one folder."""
    from harness.data import pipeline as data
    from harness.measures.bicubic import bicubic_upscaler
    from harness.measures.scoring import evaluate

    start = time.perf_counter()
    images = data.load_folder(str(folder), 4)
    result = evaluate(bicubic_upscaler(4), images, 4)
    return time.perf_counter() - start, result.psnr_y, len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", default=[str(SHARED / "t91"), str(SHARED / "bsd200")])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-step", action="store_true", help="use the NOTES.md step time")
    parser.add_argument("--step-time", type=float, default=None, help="seconds per step, given")
    parser.add_argument("--degradation", default="bicubic", help="a registered degradation")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-eval", action="store_true", help="skip timing the evaluation")
    args = parser.parse_args()

    from harness.config import parse_overrides

    params = parse_overrides(args.sets)
    rate, first = pipeline_rate(
        args.data, args.batch, args.patch, args.seconds, args.degradation, params
    )
    print(
        f"pipeline: {rate:.0f} img/s ({args.patch} px crops, batch {args.batch}, degradation "
        f"{args.degradation}, {os.cpu_count()} CPUs); first batch after {first:.1f} s"
    )
    if args.step_time:
        seconds, how = args.step_time, "given with --step-time"
    elif args.no_step:
        seconds, how = None, "--no-step"
    else:
        seconds, how = step_time(args.batch, args.patch)
    if seconds is None:
        seconds, how = NOTES_STEP_S, f"NOTES.md figure ({how})"
    elif not args.step_time:
        how = f"measured here, {how}"
    consumed = args.batch / seconds
    ratio = rate / consumed
    verdict = "OK" if ratio >= TARGET_RATIO else f"below the {TARGET_RATIO:.0f}x target"
    print(
        f"training step: {seconds:.3f} s per batch of {args.batch} ({how}) = {consumed:.1f} img/s"
    )
    print(f"ratio: {ratio:.1f}x what training consumes ({verdict})")
    bsd100 = SHARED / "bsd100"
    if bsd100.is_dir() and not args.no_eval:
        took, psnr_y, n = eval_time(bsd100)
        print(
            f"evaluation: bicubic x4 on BSD100 ({n} images) PSNR-Y {psnr_y:.2f} dB "
            f"(published 25.96) in {took:.1f} s"
        )


if __name__ == "__main__":
    main()
