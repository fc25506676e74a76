"""``bench/gpu_check.py --cpu-smoke``: every section runs on the CPU at tiny sizes and writes the
JSON the GPU check reports (so the script cannot rot between GPU runs). The fast tier runs one
train case; the slow tier runs the whole model x precision x XLA matrix."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("srresnet", "msrresnet")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def write_pngs(folder: Path, count: int = 4, side: int = 64) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    return folder


def run_smoke(tmp: Path, *options: str) -> dict:
    """``gpu_check.py --cpu-smoke`` with ``options``; its JSON."""
    images = write_pngs(tmp / "images")
    out = tmp / "smoke.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "gpu_check.py"),
            "--cpu-smoke",
            "--json",
            str(out),
            "--data",
            str(images),
            *options,
        ],
        cwd=tmp,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ms/step" in proc.stdout  # the readable table
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """Every section with one train case (srresnet, float32, no XLA)."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    return run_smoke(tmp, "--models", "srresnet", "--precisions", "float32", "--xla", "off")


def check_case(name: str, case: dict) -> None:
    """A timed case: finite step time, consistent rates and FLOPs, null MFU with its reason."""
    assert case["status"] in ("ok", "skipped"), (name, case["reason"])
    if case["status"] == "skipped":
        assert case["reason"], name
        return
    ms = case["ms_per_step"]
    assert math.isfinite(ms) and ms > 0, name
    assert case["img_per_s"] == pytest.approx(case["batch"] * 1000.0 / ms, rel=1e-3)
    assert case["train_gflops_per_step"] == pytest.approx(
        3 * case["batch"] * case["fwd_gflops_per_image"], rel=1e-2
    )
    assert case["losses_finite"], name
    # no GPU in the smoke: no peak, so MFU is null and says why
    assert case["mfu"] is None and case["mfu_note"], name


def test_the_selected_train_case_is_timed(smoke: dict) -> None:
    assert smoke["mode"] == "cpu-smoke"
    assert [c["case"] for c in smoke["train"]] == ["srresnet/float32/no_xla"]
    case = smoke["train"][0]
    assert case["status"] == "ok", case["reason"]
    check_case(case["case"], case)


@pytest.mark.slow
def test_every_train_case_is_present_and_timed(tmp_path) -> None:
    smoke = run_smoke(tmp_path, "--no-tests")
    cases = {c["case"]: c for c in smoke["train"]}
    expected = {f"{m}/{p}/{x}" for m in MODELS for p in PRECISIONS for x in ("no_xla", "xla")}
    assert set(cases) == expected
    for name, case in cases.items():
        check_case(name, case)
    assert all(
        cases[f"{m}/float32/{x}"]["status"] == "ok" for m in MODELS for x in ("no_xla", "xla")
    )


def test_upscale_output_is_four_times_the_frame(smoke: dict) -> None:
    up = smoke["upscale"]
    assert up["status"] == "ok", up["reason"]
    width, height = smoke["settings"]["frame"]
    assert up["input_shape"] == [height, width, 3]
    assert up["output_shape"] == [4 * height, 4 * width, 3]
    assert up["tiles"] > 1 and up["s_per_frame"] > 0 and up["finite"]


def test_data_bottleneck_and_tests_sections(smoke: dict) -> None:
    data = smoke["data"]
    assert data["status"] == "ok", data["reason"]
    assert data["img_per_s"] > 0 and not data["generated"]
    neck = smoke["bottleneck"]
    assert isinstance(neck["data_is_bottleneck"], bool)
    assert neck["ratio"] == pytest.approx(data["img_per_s"] / neck["step_img_per_s"], rel=1e-2)
    assert neck["fastest_case"] in {c["case"] for c in smoke["train"]}
    tests = smoke["tests"]
    assert tests["status"] == "ok", tests["reason"]
    assert (tests["passed"], tests["failed"], tests["skipped"]) == (1, 0, 1)
    assert smoke["peak"]["note"]  # why MFU is null on a CPU
