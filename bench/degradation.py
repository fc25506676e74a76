"""How many HR crops per second the ``realesrgan`` degradation turns into LR images.

    .venv/bin/python bench/degradation.py [--patch 96] [--scale 4] [--seconds 20]

Maps the degradation over distinct random HR crops (8-bit levels) in a ``tf.data`` pipeline with
``num_parallel_calls=AUTOTUNE``, as training does, and prints images per second after a warm-up
(the first elements include tracing). Compare with the steps a training run takes per second
times its batch size: the pipeline should deliver several times that so it never starves training.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))


def rate(patch: int, scale: int, seconds: float) -> tuple[float, float]:
    """(images per second after warm-up, seconds to the first image)."""
    import tensorflow as tf
    from harness_degradations.realesrgan import realesrgan

    degrade = realesrgan(scale)

    def crop(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        key = tf.stack([i, tf.constant(0, tf.int64)])
        hr = tf.round(tf.random.stateless_uniform([patch, patch, 3], key) * 255.0) / 255.0
        return hr, tf.stack([i, tf.constant(1, tf.int64)])

    data = tf.data.Dataset.range(1 << 30).map(crop)
    data = data.map(degrade, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    start = time.perf_counter()
    it = iter(data)
    next(it)
    first = time.perf_counter() - start
    for _ in range(20):
        next(it)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(it)
        count += 1
    return count / (time.perf_counter() - start), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patch", type=int, default=96, help="HR crop side in pixels")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    per_second, first = rate(args.patch, args.scale, args.seconds)
    print(
        f"realesrgan x{args.scale}, {args.patch} px HR crops: {per_second:.1f} img/s "
        f"(first image after {first:.1f} s, os.cpu_count() = {os.cpu_count()})"
    )


if __name__ == "__main__":
    main()
