"""One GPU check: the GPU-relevant tests, train-step speed and model FLOP utilisation (MFU) per
generator, precision and XLA setting, the data pipeline against the step, and tiled 4x upscaling.

    python bench/gpu_check.py                          # on a GPU machine, about 8 minutes at most
    python bench/gpu_check.py --no-tests --json /tmp/gpu_check.json
    python bench/gpu_check.py --peak-tflops mixed_bfloat16=989 --peak-tflops float32=495
    python bench/gpu_check.py --cpu-smoke --json /tmp/smoke.json   # tiny sizes on CPU, < 60 s

Sections, in order (each one records ``status``: ``ok``, ``skipped`` or ``error`` with a
``reason``, so one failing section never stops the others):

1. ``tests``: ``pytest`` in a subprocess over the precision, loss-scaling, XLA, EMA, strategy and
   tiling tests (``--tests-k``); pass / fail / error / skip counts from its JUnit XML.
2. ``data``: images per second of :func:`harness.data.pipeline.training_dataset` (``pipeline_rate``
of
   ``bench/data_pipeline.py``) over ``--data`` folders, else ``../shared/data`` (t91, bsd200),
   else a folder of generated PNGs.
3. ``upscale``: one ``--frame`` LR frame (1920x1080) upscaled 4x by the first ``--models``
   generator through :class:`harness.deploy.upscaler.Upscaler` in ``--tile`` LR tiles.
4. ``train``: for every ``--models`` x ``--precisions`` x XLA off/on, a :class:`Trainer` built
   from ``config.from_dict`` (MSE, ``train.strategy = "default"``) steps on one in-memory batch:
   ms/step (mean of the timed steps), img/s, TFLOP/s and MFU. Training FLOPs are 3x the
   generator's forward FLOPs, counted from the traced graph's convolutions and matmuls at the LR
   patch size. Peaks: a table of NVIDIA GPUs (dense tensor-core bf16 / fp16; TF32 for float32
   where TensorFlow enables it, else fp32) or ``--peak-tflops``; MFU is ``null`` with a
   ``mfu_note`` when no peak is known (a CPU, an unlisted GPU).

Then ``bottleneck``: the pipeline's img/s against what the fastest train case consumes
(batch / step time); data is the bottleneck below ``TARGET_RATIO`` (5x) of ``data_pipeline.py``.
Train cases stop (``skipped: time budget``) once ``--budget-s`` would be passed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN kernels on, as importing harness does (harness.ONEDNN_ENV); here TensorFlow loads first
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from data_pipeline import SHARED, TARGET_RATIO, pipeline_rate  # noqa: E402

from harness import config  # noqa: E402
from harness.deploy.upscaler import Upscaler  # noqa: E402
from harness.plugin_api.registry import Registry, build_registry  # noqa: E402
from harness.training import precision  # noqa: E402
from harness.training.step import Trainer  # noqa: E402

SCHEMA = 1
SMOKE_XLA_FLAGS = "--xla_backend_optimization_level=0"
SCALE = 4
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
TEST_FILES = ("tests/test_train.py", "tests/test_models.py", "tests/test_inference.py")
TEST_K = (
    "precision or float16 or xla or retrace or running_average or gan_phase or mirrored "
    "or strategy or tiled or receptive"
)

# Dense (no sparsity) peak TFLOP/s from NVIDIA's data sheets: fp32 (CUDA cores), tf32, fp16 and
# bf16 tensor cores with float32 accumulation (GeForce cards run that at half their fp16-accumulate
# rate). ``None``: the GPU has no such unit. First matching pattern wins: specific ones first.
PEAKS: tuple[tuple[str, str, dict[str, float | None]], ...] = (
    (r"H200.*NVL", "H200 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5}),
    (r"GH200", "GH200", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    (r"H200", "H200 SXM", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    (r"H100.*NVL", "H100 NVL", {"fp32": 60.0, "tf32": 417.5, "fp16": 835.5, "bf16": 835.5}),
    (r"H100.*PCI", "H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "fp16": 756.0, "bf16": 756.0}),
    (r"H100", "H100 SXM", {"fp32": 67.0, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}),
    (r"A100", "A100", {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0, "bf16": 312.0}),
    (r"L40S", "L40S", {"fp32": 91.6, "tf32": 183.0, "fp16": 362.0, "bf16": 362.0}),
    (r"\bL4\b", "L4", {"fp32": 30.3, "tf32": 60.0, "fp16": 121.0, "bf16": 121.0}),
    (r"\bA10\b", "A10", {"fp32": 31.2, "tf32": 62.5, "fp16": 125.0, "bf16": 125.0}),
    (r"RTX 4090", "RTX 4090", {"fp32": 82.6, "tf32": 82.6, "fp16": 165.2, "bf16": 165.2}),
    (r"RTX 3090", "RTX 3090", {"fp32": 35.6, "tf32": 35.6, "fp16": 71.0, "bf16": 71.0}),
    (r"V100.*PCI", "V100 PCIe", {"fp32": 14.0, "tf32": None, "fp16": 112.0, "bf16": None}),
    (r"V100", "V100 SXM2", {"fp32": 15.7, "tf32": None, "fp16": 125.0, "bf16": None}),
    (r"\bT4\b", "T4", {"fp32": 8.1, "tf32": None, "fp16": 65.0, "bf16": None}),
)
FLOPS_CACHE: dict[tuple[str, int, int, int], float] = {}
FLOP_OPS = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul", "BatchMatMulV2")


# --------------------------------------------------------------------------- settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU, < 60 s")
    parser.add_argument("--no-tests", action="store_true", help="skip the pytest subprocess")
    parser.add_argument("--json", help="result file [default: gpu_check.json in --out]")
    parser.add_argument("--out", default=".", help="folder of the default --json file")
    parser.add_argument("--models", nargs="+", default=["srresnet", "msrresnet"])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--xla", choices=["both", "off", "on"], default="both")
    parser.add_argument("--blocks", type=int, help="residual blocks [16; smoke 1]")
    parser.add_argument("--filters", type=int, help="feature maps [64; smoke 16]")
    parser.add_argument("--batch", type=int, help="[16; smoke 2]")
    parser.add_argument("--patch", type=int, help="HR patch side [96; smoke 32]")
    parser.add_argument("--warmup", type=int, help="untimed steps after the first [3; smoke 1]")
    parser.add_argument("--steps", type=int, help="timed steps per case [20; smoke 2]")
    parser.add_argument("--data", nargs="+", help="training image folders for the pipeline")
    parser.add_argument("--data-seconds", type=float, help="pipeline timing [8; smoke 1]")
    parser.add_argument("--frame", help="LR frame WIDTHxHEIGHT to upscale [1920x1080; smoke 64x48]")
    parser.add_argument("--tile", type=int, help="LR tile side [256; smoke 32]")
    parser.add_argument("--frames", type=int, help="timed frames after a warm-up one [3; smoke 1]")
    parser.add_argument(
        "--peak-tflops",
        action="append",
        default=[],
        metavar="[PRECISION=]TFLOPS",
        help="peak for every precision, or for one (repeat); overrides the table",
    )
    parser.add_argument("--tests-k", default=None, help="pytest -k expression of the tests")
    parser.add_argument("--tests-timeout", type=float, default=240.0)
    parser.add_argument("--budget-s", type=float, default=420.0, help="train cases stop here")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    defaults = {
        "blocks": (16, 1),
        "filters": (64, 16),
        "batch": (16, 2),
        "patch": (96, 32),
        "warmup": (3, 1),
        "steps": (20, 2),
        "data_seconds": (8.0, 1.0),
        "frame": ("1920x1080", "64x48"),
        "tile": (256, 32),
        "frames": (3, 1),
    }
    for key, (full, tiny) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, tiny if smoke else full)
    match = re.fullmatch(r"(\d+)x(\d+)", args.frame)
    if not match:
        parser.error(f"--frame must be WIDTHxHEIGHT, not {args.frame!r}")
    args.frame_size = (int(match[1]), int(match[2]))
    if args.patch % SCALE:
        parser.error(f"--patch must be a multiple of {SCALE}")
    try:
        args.peak_override = parse_peaks(args.peak_tflops)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def parse_peaks(values: list[str]) -> dict[str, float]:
    """``["989"]`` -> every precision; ``["mixed_bfloat16=989", ...]`` -> those precisions."""
    out: dict[str, float] = {}
    for value in values:
        key, sep, number = value.rpartition("=")
        try:
            tflops = float(number)
        except ValueError:
            raise ValueError(f"--peak-tflops {value!r}: not a number") from None
        if not sep:
            out.update(dict.fromkeys(PRECISIONS, tflops))
        elif key in PRECISIONS:
            out[key] = tflops
        else:
            raise ValueError(f"--peak-tflops {value!r}: precision must be one of {PRECISIONS}")
    return out


# --------------------------------------------------------------------------- the device


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    names = re.findall(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return names[0].strip() if names else platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    gpus = []
    for gpu in tf.config.get_visible_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        cap = details.get("compute_capability")
        gpus.append(
            {
                "name": details.get("device_name", gpu.name),
                "compute_capability": list(cap) if cap else None,
            }
        )
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "device": gpus[0]["name"] if gpus else f"CPU ({cpu_name()})",
        "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "auto_precision": precision.resolve("auto"),
    }


def allow_memory_growth() -> None:
    """So the pytest subprocess and this process can share the GPU."""
    for gpu in tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):  # already initialised
            tf.config.experimental.set_memory_growth(gpu, True)


def peak_table(env: dict[str, Any], override: dict[str, float]) -> dict[str, Any]:
    """Peak TFLOP/s per precision, where they come from, and why one is missing."""
    tflops: dict[str, float | None] = dict.fromkeys(PRECISIONS)
    kinds: dict[str, str | None] = dict.fromkeys(PRECISIONS)
    source, note = None, None
    if not env["gpus"]:
        note = "no GPU: a CPU's peak is not tabulated (give --peak-tflops)"
    else:
        name = env["gpus"][0]["name"]
        cap = tuple(env["gpus"][0]["compute_capability"] or (0, 0))
        row = next(((label, p) for pat, label, p in PEAKS if re.search(pat, name)), None)
        if row is None:
            note = f"{name} is not in the peak table (give --peak-tflops)"
        else:
            label, p = row
            source = f"table: {label}"
            tf32 = env["tf32"] and cap >= (8, 0) and p["tf32"] is not None
            tflops["float32"] = p["tf32"] if tf32 else p["fp32"]
            kinds["float32"] = "tf32 dense tensor core" if tf32 else "fp32"
            tflops["mixed_bfloat16"], kinds["mixed_bfloat16"] = p["bf16"], "bf16 dense tensor core"
            tflops["mixed_float16"], kinds["mixed_float16"] = p["fp16"], "fp16 dense tensor core"
    kinds = {key: kind if tflops[key] is not None else None for key, kind in kinds.items()}
    for key, value in override.items():
        tflops[key], kinds[key] = value, "--peak-tflops"
    if override:
        source = "--peak-tflops" if source is None else f"{source}, --peak-tflops"
        if all(tflops[key] is not None for key in PRECISIONS):
            note = None
    return {"source": source, "tflops": tflops, "kind": kinds, "note": note}


# --------------------------------------------------------------------------- FLOPs


def forward_flops(model: Any, height: int, width: int) -> float:
    """FLOPs (multiply + add = 2) of one ``height`` x ``width`` image through ``model``,
    summed over the convolutions and matmuls of its traced graph."""
    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec([1, height, width, 3], tf.float32)).graph
    total = 0.0
    for op in graph.get_operations():
        if op.type not in FLOP_OPS:
            continue
        out = op.outputs[0].shape.as_list()
        if op.type in ("Conv2D", "DepthwiseConv2dNative"):
            total += 2.0 * math.prod(out[:-1]) * math.prod(op.inputs[1].shape.as_list())
        elif op.type == "Conv2DBackpropInput":
            grad = op.inputs[2].shape.as_list()
            total += 2.0 * math.prod(grad[:-1]) * math.prod(op.inputs[1].shape.as_list())
        else:
            a = op.inputs[0].shape.as_list()
            transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
            total += 2.0 * math.prod(out) * (a[-2] if transposed else a[-1])
    return total


# --------------------------------------------------------------------------- sections


@contextlib.contextmanager
def section(result: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
    """Record a section's wall time; an exception becomes ``status: error``."""
    entry: dict[str, Any] = {"status": "ok", "reason": None}
    result[name] = entry
    start = time.perf_counter()
    try:
        yield entry
    except Exception as exc:  # one broken section must not hide the others
        entry.update(status="error", reason=f"{type(exc).__name__}: {exc}"[:2000])
        print(f"[{name}] error: {entry['reason']}", flush=True)
    entry["wall_s"] = round(time.perf_counter() - start, 2)


SMOKE_TESTS = """
import pytest


def test_passes():
    assert 1 + 1 == 2


@pytest.mark.skip(reason="shows a skip in the counts")
def test_skipped():
    pass
"""


def junit_counts(path: Path) -> dict[str, Any]:
    """Counts and failing test ids from pytest's JUnit XML."""
    counts: dict[str, Any] = {"total": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in ET.parse(path).getroot().iter("testcase"):
        counts["total"] += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None:
            counts["failed"] += 1
            failures.append(name)
        elif case.find("error") is not None:
            counts["errors"] += 1
            failures.append(name)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
    counts["passed"] = counts["total"] - counts["failed"] - counts["errors"] - counts["skipped"]
    counts["failures"] = failures
    return counts


def run_tests(entry: dict[str, Any], args: argparse.Namespace) -> None:
    """The GPU-relevant tests in a pytest subprocess; ``--cpu-smoke`` runs a two-test file
    outside the project instead (the same subprocess and JUnit path in about a second)."""
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command.append(f"--junitxml={junit}")
        if args.cpu_smoke and args.tests_k is None:
            (Path(tmp) / "test_smoke.py").write_text(SMOKE_TESTS, encoding="utf-8")
            command += ["--rootdir", tmp, str(Path(tmp) / "test_smoke.py")]
            cwd, entry["selection"] = Path(tmp), "smoke: a two-test file outside the project"
        else:
            command += [*TEST_FILES, "-k", args.tests_k or TEST_K]
            cwd, entry["selection"] = ROOT, f"{' '.join(TEST_FILES)} -k {args.tests_k or TEST_K!r}"
        entry["command"] = [Path(command[0]).name, *command[1:]]
        try:
            proc = subprocess.run(
                command,
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=args.tests_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            entry.update(status="error", reason=f"pytest ran past {args.tests_timeout:.0f} s")
            return
        entry["returncode"] = proc.returncode
        if not junit.exists():
            entry.update(status="error", reason="pytest wrote no JUnit XML")
            entry["output_tail"] = (proc.stdout + proc.stderr)[-3000:]
            return
        entry.update(junit_counts(junit))
        if entry["failures"] or proc.returncode not in (0, 5):
            entry["output_tail"] = proc.stdout[-3000:]
    print(
        f"[tests] {entry['passed']} passed, {entry['failed']} failed, "
        f"{entry['errors']} errors, {entry['skipped']} skipped",
        flush=True,
    )


def write_pngs(folder: Path, count: int, side: int) -> None:
    """Smooth random colour images (PNG), so crops look like photographs, not noise."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.uniform(0, 255, (side // 8, side // 8, 3)).astype(np.uint8)
        image = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
        image.save(folder / f"img{i:03d}.png")


def run_data(entry: dict[str, Any], args: argparse.Namespace, tmp: Path) -> None:
    folders = args.data
    if folders is None and not args.cpu_smoke:
        shared = [SHARED / "t91", SHARED / "bsd200"]
        folders = [str(f) for f in shared if f.is_dir()] or None
    entry["generated"] = folders is None
    if folders is None:
        count, side = (4, 64) if args.cpu_smoke else (64, 384)
        write_pngs(tmp / "pngs", count, side)
        folders = [str(tmp / "pngs")]
    entry["folders"] = folders
    rate, first = pipeline_rate(folders, args.batch, args.patch, args.data_seconds)
    entry.update(
        img_per_s=round(rate, 2),
        first_batch_s=round(first, 3),
        seconds=args.data_seconds,
        batch=args.batch,
        patch=args.patch,
    )
    print(f"[data] {rate:.0f} img/s ({args.patch} px, batch {args.batch})", flush=True)


def run_upscale(entry: dict[str, Any], args: argparse.Namespace, registry: Registry) -> None:
    model_name = args.models[0]
    policy = precision.resolve("auto")
    keras.utils.set_random_seed(0)
    with precision.policy_scope(policy):
        factory = registry.factory("generator", model_name)
        generator = factory(scale=SCALE, blocks=args.blocks, filters=args.filters)
    upscaler = Upscaler.from_generator(generator, tile=args.tile)
    width, height = args.frame_size
    lr = np.random.default_rng(0).uniform(0, 1, (1, height, width, 3)).astype(np.float32)
    start = time.perf_counter()
    sr = upscaler(lr)  # warm-up: traces, measures the overlap, autotunes each tile shape
    warm = time.perf_counter() - start
    times = []
    for _ in range(args.frames):
        start = time.perf_counter()
        sr = upscaler(lr)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    entry.update(
        model=model_name,
        blocks=args.blocks,
        filters=args.filters,
        precision=policy,
        input_shape=list(lr.shape[1:]),
        output_shape=list(sr.shape[1:]),
        scale=upscaler.scale,
        tile=args.tile,
        overlap=upscaler.overlap,
        tiles=len(upscaler.tiles(height, width)),
        frames=len(times),
        warmup_s=round(warm, 3),
        s_per_frame=round(seconds, 4),
        frames_per_s=round(1.0 / seconds, 3),
        lr_mpix_per_s=round(height * width / seconds / 1e6, 3),
        finite=bool(np.isfinite(sr).all()),
    )
    print(
        f"[upscale] {width}x{height} -> {sr.shape[2]}x{sr.shape[1]} in {seconds:.3f} s "
        f"({len(upscaler.tiles(height, width))} tiles of {args.tile}, overlap {upscaler.overlap})",
        flush=True,
    )


def skip_reason(policy: str, env: dict[str, Any]) -> str | None:
    """Why a precision cannot be measured on this device, or ``None``."""
    if policy == "mixed_bfloat16" and env["gpus"]:
        cap = tuple(env["gpus"][0]["compute_capability"] or (0, 0))
        if cap < (8, 0):
            return f"compute capability {cap[0]}.{cap[1]} has no bfloat16 tensor cores"
    return None


def train_case(
    model: str,
    policy: str,
    xla: bool,
    args: argparse.Namespace,
    peaks: dict[str, Any],
    registry: Registry,
) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "experiment": {"name": f"gpu_check_{model}"},
        "data": {"patch": args.patch, "scale": SCALE},
        "generator": {"name": model, "blocks": args.blocks, "filters": args.filters},
        "losses": {"mse": {}},
        "train": {
            "batch_size": args.batch,
            "precision": policy,
            "xla": xla,
            "strategy": "default",
            "steps": 10**6,
        },
    }
    trainer = Trainer(config.from_dict(raw, registry=registry), registry=registry)
    rng = np.random.default_rng(0)
    p = args.patch
    lr = rng.uniform(0, 1, (args.batch, p // SCALE, p // SCALE, 3)).astype(np.float32)
    hr = rng.uniform(-1, 1, (args.batch, p, p, 3)).astype(np.float32)
    trainer.start_data(tf.data.Dataset.from_tensors((lr, hr)).repeat())
    start = time.perf_counter()
    trainer.train_step()  # traces (and compiles, with XLA)
    compile_s = time.perf_counter() - start
    for _ in range(args.warmup):
        trainer.train_step()
    times = []
    losses: dict[str, float] = {}
    for _ in range(args.steps):
        start = time.perf_counter()
        losses = trainer.train_step()  # returns Python floats: the step has finished
        times.append((time.perf_counter() - start) * 1000.0)
    ms = sum(times) / len(times)
    key = (model, args.blocks, args.filters, p // SCALE)
    if key not in FLOPS_CACHE:  # the same for every precision and XLA setting
        FLOPS_CACHE[key] = forward_flops(trainer.generator, p // SCALE, p // SCALE)
    fwd = FLOPS_CACHE[key]
    train_flops = 3.0 * fwd * args.batch
    achieved = train_flops / (ms / 1000.0) / 1e12
    peak = peaks["tflops"].get(policy)
    out = {
        "policy": trainer.policy,
        "loss_scaling": trainer.loss_scaling,
        "ms_per_step": round(ms, 3),
        "ms_median": round(statistics.median(times), 3),
        "img_per_s": round(args.batch * 1000.0 / ms, 3),
        "compile_s": round(compile_s, 3),
        "fwd_gflops_per_image": round(fwd / 1e9, 4),
        "train_gflops_per_step": round(train_flops / 1e9, 4),
        "achieved_tflops": round(achieved, 4),
        "peak_tflops": peak,
        "mfu": round(achieved / peak, 5) if peak else None,
        "mfu_note": None if peak else (peaks["note"] or f"no {policy} peak for this device"),
        "losses_finite": all(math.isfinite(v) for v in losses.values()),
    }
    del trainer
    keras.backend.clear_session()
    gc.collect()
    return out


def run_train(
    result: dict[str, Any],
    args: argparse.Namespace,
    env: dict[str, Any],
    peaks: dict[str, Any],
    started: float,
    registry: Registry,
) -> list[dict[str, Any]]:
    xlas = {"both": (False, True), "off": (False,), "on": (True,)}[args.xla]
    cases: list[dict[str, Any]] = []
    result["train"] = cases
    longest = 0.0
    for xla in xlas:
        for policy in args.precisions:
            for model in args.models:
                case: dict[str, Any] = {
                    "case": f"{model}/{policy}/{'xla' if xla else 'no_xla'}",
                    "model": model,
                    "precision": policy,
                    "xla": xla,
                    "batch": args.batch,
                    "patch": args.patch,
                    "blocks": args.blocks,
                    "filters": args.filters,
                    "status": "ok",
                    "reason": None,
                }
                cases.append(case)
                reason = skip_reason(policy, env)
                elapsed = time.perf_counter() - started
                if reason is None and elapsed + longest > args.budget_s:
                    reason = f"time budget: {elapsed:.0f} s of --budget-s {args.budget_s:.0f} used"
                if reason is not None:
                    case.update(status="skipped", reason=reason)
                    print(f"[train] {case['case']}: skipped ({reason})", flush=True)
                    continue
                start = time.perf_counter()
                try:
                    case.update(train_case(model, policy, xla, args, peaks, registry))
                except Exception as exc:  # an unsupported kernel, out of memory: record it
                    case.update(status="error", reason=f"{type(exc).__name__}: {exc}"[:2000])
                    keras.backend.clear_session()
                    gc.collect()
                case["wall_s"] = round(time.perf_counter() - start, 2)
                longest = max(longest, case["wall_s"])
                print(f"[train] {row(case)}", flush=True)
    return cases


def bottleneck(data: dict[str, Any], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Does the pipeline deliver ``TARGET_RATIO`` times what the fastest step consumes?"""
    out: dict[str, Any] = {"target_ratio": TARGET_RATIO, "data_is_bottleneck": None}
    ran = [c for c in cases if c["status"] == "ok"]
    rate = data.get("img_per_s")
    if not ran or not rate:
        out["reason"] = "no train case ran" if not ran else "the data pipeline was not measured"
        return out
    fastest = max(ran, key=lambda c: c["img_per_s"])
    ratio = rate / fastest["img_per_s"]
    out.update(
        pipeline_img_per_s=rate,
        fastest_case=fastest["case"],
        step_img_per_s=fastest["img_per_s"],
        ratio=round(ratio, 3),
        data_is_bottleneck=ratio < TARGET_RATIO,
        per_case={c["case"]: round(rate / c["img_per_s"], 3) for c in ran},
        reason=None,
    )
    return out


# --------------------------------------------------------------------------- output


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def row(case: dict[str, Any]) -> str:
    if case["status"] != "ok":
        return f"{case['case']:<32} {case['status']}: {case['reason']}"
    mfu = "null" if case["mfu"] is None else f"{100 * case['mfu']:.1f}%"
    return (
        f"{case['case']:<32} {case['ms_per_step']:>10.2f} {case['img_per_s']:>10.1f} "
        f"{case['achieved_tflops']:>9.2f} {mfu:>7} {case['compile_s']:>9.1f}"
    )


def report(result: dict[str, Any]) -> str:
    env, lines = result["environment"], []
    lines.append(f"device: {env['device']}  (TF {env['tensorflow']}, Keras {env['keras']})")
    peaks = result["peak"]
    lines.append(f"peak: {peaks['source'] or 'none'}  {peaks['tflops']}  {peaks['note'] or ''}")
    tests = result.get("tests", {})
    if tests.get("status") == "ok":
        lines.append(
            f"tests: {tests['passed']} passed, {tests['failed']} failed, {tests['errors']} "
            f"errors, {tests['skipped']} skipped {tests['failures'] or ''}"
        )
    else:
        lines.append(f"tests: {tests.get('status')} ({tests.get('reason')})")
    lines.append("")
    lines.append(
        f"{'case':<32} {'ms/step':>10} {'img/s':>10} {'TFLOP/s':>9} {'MFU':>7} {'compile s':>9}"
    )
    lines += [row(c) for c in result.get("train", [])]
    lines.append("")
    data, neck = result.get("data", {}), result.get("bottleneck", {})
    if data.get("status") == "ok":
        lines.append(
            f"data: {data['img_per_s']:.0f} img/s; fastest step takes "
            f"{_fmt(neck.get('step_img_per_s'), '.1f')} img/s ({neck.get('fastest_case')}): "
            f"ratio {_fmt(neck.get('ratio'), '.2f')} (target {TARGET_RATIO:.0f}x) -> "
            f"data is the bottleneck: {neck.get('data_is_bottleneck')}"
        )
    else:
        lines.append(f"data: {data.get('status')} ({data.get('reason')})")
    up = result.get("upscale", {})
    if up.get("status") == "ok":
        lines.append(
            f"upscale: {up['model']} {up['precision']} {up['input_shape']} -> "
            f"{up['output_shape']}: {up['s_per_frame']:.3f} s/frame "
            f"({up['lr_mpix_per_s']:.2f} LR Mpix/s; {up['tiles']} tiles of {up['tile']}, "
            f"overlap {up['overlap']})"
        )
    else:
        lines.append(f"upscale: {up.get('status')} ({up.get('reason')})")
    lines.append(f"wall: {result['wall_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.cpu_smoke:
        # read at the first XLA compile: halves the smoke's compile time
        os.environ.setdefault("XLA_FLAGS", SMOKE_XLA_FLAGS)
        with contextlib.suppress(RuntimeError):  # the smoke runs on the CPU, GPU or not
            tf.config.set_visible_devices([], "GPU")
    allow_memory_growth()
    env = environment()
    mode = "cpu-smoke" if args.cpu_smoke else ("gpu" if env["gpus"] else "cpu")
    peaks = peak_table(env, args.peak_override)
    settings = {
        k: getattr(args, k)
        for k in ("models", "precisions", "xla", "blocks", "filters", "batch", "patch")
        + ("warmup", "steps", "data_seconds", "tile", "frames", "budget_s")
    }
    settings["frame"] = list(args.frame_size)
    settings["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": mode,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": env,
        "settings": settings,
        "peak": peaks,
    }
    print(f"gpu_check: {mode} on {env['device']}", flush=True)
    with section(result, "tests") as entry:
        if args.no_tests:
            entry.update(status="skipped", reason="--no-tests")
        else:
            run_tests(entry, args)
    with tempfile.TemporaryDirectory() as tmp, section(result, "data") as entry:
        run_data(entry, args, Path(tmp))
    registry = build_registry()
    with section(result, "upscale") as entry:
        run_upscale(entry, args, registry)
    cases = run_train(result, args, env, peaks, started, registry)
    result["bottleneck"] = bottleneck(result["data"], cases)
    result["wall_s"] = round(time.perf_counter() - started, 2)
    path = Path(args.json) if args.json else Path(args.out) / "gpu_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("\n" + report(result), flush=True)
    print(f"wrote {path}", flush=True)
    return result


if __name__ == "__main__":
    main()
