"""ONNX Runtime (CPU) vs the harness's own upscaler on one 720p frame.

An MSRResNet-16 generator (64 filters, x4; random weights: the timing does not depend on them)
upscales one 1280x720 LR frame to 5120x2880, first through
:class:`harness.deploy.upscaler.Upscaler` of the generator (TensorFlow: what ``harness
upscale`` runs) and then through an ``Upscaler`` of ONNX Runtime running the ``harness export
--format onnx`` graph. Both cut the frame into the same ``--tile`` LR tiles with the same
overlap (the measured receptive field), so memory stays that of one tile (a whole 720p frame at
x4 needs about 15 GB) and only the engine differs. Each path runs once on one tile to warm up,
then ``--repeat`` times on the frame; the median seconds per frame, the frames per second and
the largest difference between the two outputs are printed.

Usage (from the repository root)::

    PYTHONPATH=.:plugins python bench/onnx_upscale.py [--height 720 --width 1280] [--repeat 1]
        [--tile 128] [--threads 0]

``--threads`` sets both ONNX Runtime's intra-op threads and TensorFlow's (0: each library's
default, all cores).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, lr: np.ndarray, repeat: int, tile: int) -> tuple[float, np.ndarray]:
    fn(lr[:, : tile or None, : tile or None])  # warm-up: tracing, graph optimisation
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(lr)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    import onnxruntime as ort
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from harness.deploy.onnx import export_onnx
    from harness.deploy.upscaler import Upscaler
    from harness.plugin_api.registry import build_registry

    tf.keras.utils.set_random_seed(0)
    generator = build_registry().factory("generator", "msrresnet")(scale=4, blocks=16, filters=64)
    lr = np.random.default_rng(0).uniform(0, 1, (1, args.height, args.width, 3)).astype(np.float32)

    upscaler = Upscaler.from_generator(generator, tile=args.tile)
    overlap = upscaler.overlap if args.tile else 0
    tf_s, tf_out = timed(upscaler, lr, args.repeat, args.tile)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(generator, Path(tmp) / "msrresnet16.onnx")
        options = ort.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        onnx_upscaler = Upscaler(
            lambda x: session.run(["sr"], {"lr": x})[0], 4, tile=args.tile, overlap=overlap
        )
        ort_s, ort_out = timed(onnx_upscaler, lr, args.repeat, args.tile)

    size = f"{args.width}x{args.height} -> {args.width * 4}x{args.height * 4}"
    tiles = f"{args.tile}x{args.tile} LR tiles, overlap {overlap}" if args.tile else "whole frame"
    print(f"MSRResNet-16 x4, {size}, {tiles}, median of {args.repeat} after a warm-up")
    print(
        f"harness Upscaler (TensorFlow {tf.__version__}): {tf_s:7.2f} s/frame {1 / tf_s:6.3f} fps"
    )
    print(
        f"ONNX Runtime {ort.__version__} CPU:           {ort_s:7.2f} s/frame {1 / ort_s:6.3f} fps"
    )
    print(f"speed-up {tf_s / ort_s:.2f}x; max |ONNX - TF| = {np.abs(ort_out - tf_out).max():.2e}")


if __name__ == "__main__":
    main()
