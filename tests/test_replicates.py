"""Replicates: ``harness compare --seeds N`` plans N runs of each experiment (the shared base
once), and a report groups them as mean and spread (tables) and mean with a band (curves)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import tiny_benchmark_set
from test_compare import CPU_SIZED, SHIPPED

from harness.evaluation import compare
from harness.evaluation.records import RunInfo
from harness.evaluation.replicates import (
    group_curves,
    grouped_tables,
    has_replicates,
    shared_starts,
)


def _run(label, group="", seed="", history=None, init=""):
    return RunInfo(
        ref=label, label=label, group=group, seed=seed, history=history or {}, init_label=init
    )


def test_groups_show_the_mean_and_spread_of_their_runs():
    runs = [_run("base"), _run("ft-seed0", "ft", "0"), _run("ft-seed1", "ft", "1")]
    assert has_replicates(runs) and not has_replicates(runs[:2])
    tables = {
        "Set5": {
            "bicubic": {"psnr_y": 28.0},
            "base": {"psnr_y": 30.0},
            "ft-seed0": {"psnr_y": 29.0},
            "ft-seed1": {"psnr_y": 29.5},
        }
    }
    grouped = grouped_tables(tables, runs)
    assert grouped.means["Set5"]["ft"]["psnr_y"] == pytest.approx(29.25)
    assert grouped.spreads["Set5"]["ft"]["psnr_y"] == pytest.approx(math.sqrt(0.125))
    assert math.isnan(grouped.spreads["Set5"]["base"]["psnr_y"])
    assert grouped.counts == {"bicubic": 1, "base": 1, "ft": 2}
    runs[1].history = {"val/psnr_y": [(1, 20.0), (2, 21.0)]}
    runs[2].history = {"val/psnr_y": [(1, 22.0), (2, 25.0), (3, 26.0)]}
    base, ft = group_curves(runs)
    assert base.label == "base" and not base.band
    assert ft.label == "ft (mean of 2 seeds)"
    assert ft.history["val/psnr_y"] == [(1, 21.0), (2, 23.0)]  # the steps both validated
    assert ft.band["val/psnr_y"] == [(1, 20.0, 22.0), (2, 21.0, 25.0)]


def test_a_fine_tunes_shared_start_is_known_per_group():
    """The start every replicate of a group was fine-tuned from (one run of the report) is a
    fixed model for that group's statistics; a group whose runs start from different runs,
    or from one not reported, has none."""
    runs = [
        _run("base", seed="0"),
        _run("ft-seed0", "ft", "0", init="base"),
        _run("ft-seed1", "ft", "1", init="base"),
        _run("mixed-seed0", "mixed", "0", init="base"),
        _run("mixed-seed1", "mixed", "1", init="ft-seed0"),
        _run("away", seed="0", init="elsewhere (not in this report)"),
        _run("scratch", seed="0"),
    ]
    assert shared_starts(runs) == {"ft": "base"}


def test_seeds_replicate_the_fine_tunes_and_keep_the_base_shared(registry):
    specs = [str(SHIPPED / "ft_srgan.toml"), str(SHIPPED / "base_mse.toml")]
    planned = compare.plan(specs, registry=registry, seeds=3)
    names = [p.exp.experiment.name for p in planned]
    assert names == [
        "compare_base_mse",
        *(f"compare_ft_srgan-seed{s}" for s in range(3)),
    ]
    for seed, p in enumerate(planned[1:]):
        assert p.exp.experiment.seed == seed and p.exp.experiment.group == "compare_ft_srgan"
        assert p.exp.generator.init == "runs/compare_base_mse"  # all from the one base
        assert str(p.run_dir).endswith(f"compare_ft_srgan-seed{seed}")
    assert planned[0].exp.experiment.group == "" and not planned[0].overrides
    one = compare.plan(specs, ["experiment.seeds=2"], registry=registry)
    assert [p.exp.experiment.name for p in one][1:] == [
        "compare_ft_srgan-seed0",
        "compare_ft_srgan-seed1",
    ]


@pytest.mark.slow
def test_compare_with_two_seeds_resumes_and_reports_the_groups(tmp_path, registry):
    """``harness compare --seeds 2``, interrupted once the first replicate is written, then run
    again: finished runs are skipped and the report groups the fine-tune's two seeds."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bench = tiny_benchmark_set(tmp_path / "tinyset")
    specs = [str(SHIPPED / "base_mse.toml"), str(SHIPPED / "ft_srgan.toml")]
    args = [sys.executable, "-m", "harness.cli", "compare", *specs, "--seeds", "2"]
    for item in [*CPU_SIZED, f'tracking.uri="{store}"']:
        args += ["--set", item]
    first = subprocess.Popen(
        [*args, "--no-report"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    written = tmp_path / "runs" / "compare_ft_srgan-seed0" / "generator.keras"
    deadline = time.monotonic() + 600
    while not written.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if first.poll() is None:
        os.killpg(first.pid, signal.SIGINT)  # the comparison stops mid-way
    first.communicate(timeout=120)
    report = ["--data", str(bench), "-o", str(tmp_path / "report"), "--tracking-uri", store]
    again = subprocess.run(
        [*args, *report], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "compare_base_mse: finished, skipped" in again.stdout
    assert "compare_ft_srgan-seed0: finished, skipped" in again.stdout
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| compare_ft_srgan (2 seeds) |" in md and " ± " in md
    assert "### compare_ft_srgan against compare_base_mse" in md
    assert "2 seeds" in md
    import json

    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["grouped"]["runs"]["compare_ft_srgan"] == 2
    assert {r["group"] for r in data["runs"]} == {"compare_base_mse", "compare_ft_srgan"}
    assert {c["seeds"] for c in data["statistics"]} == {2}
    # the fine-tune's two seeds against the start they share: a one-sample t over seeds
    assert {(c["test"], c["baseline_fixed"]) for c in data["statistics"]} == {
        ("one-sample t", True)
    }
    from test_stats import recompute

    from harness.evaluation.per_image import read_csv

    rows, _ = read_csv(tmp_path / "report" / "scores.csv")
    recompute(data["statistics"], rows, list(data["sets"]))


def test_a_groups_interpolation_curve_is_its_runs_mean_alpha_by_alpha():
    from harness.evaluation.interpolation import group_means

    def curve(*points):
        pairs = zip((0.0, 1.0), points, strict=True)
        return {"set5": [{"alpha": a, "psnr_y": p, "lpips": lp} for a, (p, lp) in pairs]}

    curves = {
        "a-seed0": curve((30.0, 0.20), (28.0, 0.10)),
        "a-seed1": curve((30.0, 0.20), (26.0, 0.14)),
        "b": curve((30.0, 0.20), (29.0, 0.18)),
    }
    out = group_means(curves, {"a-seed0": "a", "a-seed1": "a", "b": "b"})
    assert set(out) == {"a", "b"}
    assert out["a"]["set5"][1] == pytest.approx({"alpha": 1.0, "psnr_y": 27.0, "lpips": 0.12})
    assert out["a"]["set5"][0] == pytest.approx({"alpha": 0.0, "psnr_y": 30.0, "lpips": 0.20})
    assert out["b"] == curves["b"]
