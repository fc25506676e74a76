"""The budget comparison (experiments/budget): every variant fine-tunes the committed MSE base,
and the whole comparison runs CPU-sized through the real CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import new_store, tiny_benchmark_set
from test_compare import CPU_SIZED as COMPARE_SIZED

from harness import config
from harness.cli import cli
from harness.config import schedules
from harness.deploy.models import load_keras_file
from harness.evaluation import compare

ROOT = Path(__file__).resolve().parents[1]
BUDGET = ROOT / "experiments" / "budget"
BASE_FILE = "models/msrresnet16_mse_x4.keras"
GAN_FILE = "models/msrresnet16_lpips_gan_x4.keras"
"""The budget's best recipe (experiments/budget_long/ft_lpips_projected.toml), fine-tuned from
BASE_FILE."""
FINETUNES = {
    "budget_ft_mse",
    "budget_ft_ledig",
    "budget_ft_perpix",
    "budget_ft_lpips_projected",
}

CPU_SIZED = [item for item in COMPARE_SIZED if not item.startswith("discriminator.")]
"""The shipped files made tiny: the same losses and discriminators (at their own sizes: the
projected one has no SRGAN widths), a 1-block generator for 2 steps."""


def test_every_variant_fine_tunes_the_committed_base(registry):
    planned = compare.plan([str(BUDGET)], registry=registry)
    assert {p.exp.experiment.name for p in planned} == FINETUNES  # _base_mse.toml is a base
    for p in planned:
        assert p.exp.generator.init == BASE_FILE
    by_name = {p.exp.experiment.name: p.exp for p in planned}
    assert by_name["budget_ft_mse"].adversarial is None
    assert by_name["budget_ft_lpips_projected"].discriminator.name == "projected"
    assert {c.key for c in by_name["budget_ft_lpips_projected"].losses if c.weight != 0} == {
        "l1",
        "lpips",
    }
    # the committed file is the base's network: every weight fits the planned generator
    exp = planned[0].exp
    factory = registry.factory("generator", exp.generator.name)
    generator = factory(scale=exp.data.scale, **exp.generator.params)
    base = load_keras_file(ROOT / BASE_FILE, registry=registry)
    assert [w.shape for w in base.weights] == [w.shape for w in generator.weights]
    assert not np.allclose(base.get_weights()[0], generator.get_weights()[0])  # trained


def test_the_committed_gan_generator_is_the_long_run_of_the_base(registry):
    exp = config.load(
        ROOT / "experiments" / "budget_long" / "ft_lpips_projected.toml", registry=registry
    )
    assert exp.generator.init == BASE_FILE
    assert exp.discriminator.name == "projected"
    # the three stages the README's table gives: hinge 5e-3, 0.05 from 700, 5e-3 from 1064 with
    # both learning rates decaying to 1e-5 at the last step
    fns = schedules.functions(exp, registry)
    hinge, lr, d_lr = (
        fns[k] for k in (schedules.ADVERSARIAL, "train.learning_rate", "train.d_learning_rate")
    )
    assert [hinge(s) for s in (0, 699, 700, 1063, 1064, exp.train.steps)] == [
        5e-3,
        5e-3,
        0.05,
        0.05,
        5e-3,
        5e-3,
    ]
    for rate in (lr, d_lr):
        assert rate(0) == rate(1064) == pytest.approx(1e-4)
        assert rate(1500) < 1e-4
        assert rate(exp.train.steps) == pytest.approx(1e-5)
    base = load_keras_file(ROOT / BASE_FILE, registry=registry)
    gan = load_keras_file(ROOT / GAN_FILE, registry=registry)
    assert [w.shape for w in gan.weights] == [w.shape for w in base.weights]
    moved = [
        np.abs(g - b).max() for g, b in zip(gan.get_weights(), base.get_weights(), strict=True)
    ]
    assert max(moved) > 1e-3  # trained further than the base
    # and its output differs from the base's
    image = np.random.default_rng(0).uniform(0, 1, (1, 12, 12, 3)).astype("float32")
    a, b = np.asarray(base(image)), np.asarray(gan(image))
    assert a.shape == b.shape == (1, 48, 48, 3)
    assert np.abs(a - b).mean() > 1e-3


def test_the_readme_states_the_committed_models_size_and_checksum():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in (BASE_FILE, GAN_FILE):
        data = (ROOT / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() in readme, name
        assert f"{len(data) / 1e6:.1f} MB" in readme, name


@pytest.mark.slow
def test_the_cpu_sized_budget_comparison_runs_with_replicates(tmp_path, monkeypatch, registry):
    store = new_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    tracking = [f'tracking.uri="{store}"']
    sets = [arg for item in [*CPU_SIZED, *tracking] for arg in ("--set", item)]
    # a tiny base in place of the committed one (whose 16 blocks the tiny runs do not have)
    base = ["run", str(BUDGET / "_base_mse.toml"), *sets]
    done = CliRunner().invoke(cli, base, obj={"registry": registry})
    assert done.exit_code == 0, done.output[-3000:]
    init = tmp_path / "runs" / "budget_base_mse" / "generator.keras"
    sets += ["--set", f'generator.init="{init}"']
    report = ["--data", str(tmp_path / "tinyset"), "-o", str(tmp_path / "report")]
    tiny_benchmark_set(tmp_path / "tinyset")
    args = ["compare", str(BUDGET), *sets, "--seeds", "2", "--metric", "lpips", *report]
    # the seed's claims: every recipe against the start and against Per-Pix (two baselines)
    args += ["--baseline", "generator", "--baseline", "budget_ft_perpix"]
    done = CliRunner().invoke(cli, [*args, "--tracking-uri", store], obj={"registry": registry})
    assert done.exit_code == 0, done.output[-3000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    for name in FINETUNES:  # two seeds each
        assert sum(r.startswith(name) for r in runs) == 2, runs
    tables = json.loads((tmp_path / "report" / "report.json").read_text())
    assert tables["measures"] == ["psnr_y", "ssim_y", "lpips"]
    assert "budget_ft_lpips_projected" in (tmp_path / "report" / "report.md").read_text()
    # the start every fine-tune names (a .keras file, not a run of the comparison) is reported
    # first, and each replicated fine-tune is tested against it as a fixed model
    (start,) = [r for r in tables["runs"] if r["label"] == "generator"]
    assert start["model"] == str(init)
    assert tables["baselines"] == ["generator", "budget_ft_perpix"]
    fixed = [c for c in tables["statistics"] if c["baseline"] == "generator"]
    assert {c["run"] for c in fixed} == FINETUNES
    assert all(c["baseline_fixed"] and c["seeds"] == 2 for c in fixed)
    # between two replicated recipes seeds are the unit (Welch's t over 2 + 2 runs); Per-Pix
    # against the start is tested once, as one of the fine-tunes above
    recipes = [c for c in tables["statistics"] if c["baseline"] == "budget_ft_perpix"]
    assert {c["run"] for c in recipes} == FINETUNES - {"budget_ft_perpix"}
    assert all(c["test"] == "welch" and c["seeds"] == c["baseline_seeds"] == 2 for c in recipes)
    assert not any(c["run"] == "generator" for c in tables["statistics"])
