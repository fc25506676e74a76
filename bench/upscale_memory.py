"""Peak memory of upscaling to a 3840x2160 output, with and without tiling.

    .venv/bin/python bench/upscale_memory.py [--model REF] [--blocks 16] [--tile 128]
                                             [--width 960 --height 540] [--modes whole,tiled]

Each mode runs in a fresh process (so one's allocations do not hide the other's) that builds the
generator (``--model``: any reference ``harness upscale`` takes; default: an untrained
SRResNet with ``--blocks`` blocks, whose memory profile is that of a trained one), warms it up
on a small input, then upscales one ``width`` x ``height`` LR image. Reported: peak resident
memory (``ru_maxrss``), resident memory before the upscale, their difference (what the upscale
itself needed), and wall time. The tiled output must equal the whole-image output to within one
8-bit level; the script checks it when both modes ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mib() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args: argparse.Namespace) -> None:
    import numpy as np

    from harness.data.images import to_uint8
    from harness.deploy.models import load_upscaler
    from harness.deploy.upscaler import Upscaler
    from harness.plugin_api.registry import build_registry

    registry = build_registry()
    tile = args.tile if args.child == "tiled" else 0
    if args.model:
        upscaler = load_upscaler(args.model, registry=registry, tile=tile)
    else:
        import keras

        keras.utils.set_random_seed(0)
        factory = registry.factory("generator", "srresnet")
        upscaler = Upscaler.from_generator(factory(scale=4, blocks=args.blocks), tile=tile)
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 1, (1, args.height, args.width, 3)).astype(np.float32)
    upscaler(lr[:, :32, :32])  # trace and warm up
    if tile:
        _ = upscaler.overlap  # the receptive-field probe, measured once
    before = rss_mib()
    start = time.perf_counter()
    sr = upscaler(lr)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(args.out, to_uint8(sr[0]))
    print(
        json.dumps(
            {
                "mode": args.child,
                "tile": tile,
                "overlap": upscaler.overlap if tile else 0,
                "output": f"{sr.shape[2]}x{sr.shape[1]}",
                "rss_before_mib": round(before, 1),
                "peak_rss_mib": round(peak, 1),
                "upscale_mib": round(peak - before, 1),
                "seconds": round(seconds, 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model reference (default: untrained SRResNet)")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--modes", default="whole,tiled")
    parser.add_argument("--child", choices=["whole", "tiled"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import numpy as np

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            out = Path(tmp) / f"{mode}.npy"
            cmd = [sys.executable, __file__, "--child", mode, "--out", str(out)]
            for key in ("model", "blocks", "tile", "width", "height"):
                cmd += [f"--{key}", str(getattr(args, key))]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{mode}: failed (exit {done.returncode})\n{done.stderr[-3000:]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[mode] = (result, out)
            print(json.dumps(result))
        if {"whole", "tiled"} <= results.keys():
            whole = np.load(results["whole"][1]).astype(int)
            tiled = np.load(results["tiled"][1]).astype(int)
            diff = int(np.abs(whole - tiled).max())
            ratio = results["whole"][0]["upscale_mib"] / max(results["tiled"][0]["upscale_mib"], 1)
            print(
                f"tiled vs whole: max difference {diff} (8-bit levels); the whole-image upscale "
                f"needed {ratio:.1f}x the memory of the tiled one"
            )


if __name__ == "__main__":
    main()
