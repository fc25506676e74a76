"""``harness compare``: the shipped loss comparison, CPU-sized, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import new_store, tiny_benchmark_set
from mlflow.tracking import MlflowClient

from harness.cli import cli
from harness.errors import HarnessError
from harness.evaluation import compare
from harness.measures.scoring import evaluate

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "experiments" / "compare"

CPU_SIZED = [
    'data.train=["skimage"]',
    'data.val=["skimage"]',
    "data.val_limit=1",
    "data.val_max_side=48",
    "data.patch=32",
    "generator.blocks=1",
    "generator.filters=8",
    "discriminator.filters=8",
    "discriminator.dense=16",
    "train.steps=2",
    "train.batch_size=2",
    'train.precision="float32"',
    "validation.every=1",
    "validation.samples=1",
    "tracking.log_model=false",
]
"""The shipped comparison made tiny: same files, same losses, a 1-block model for 2 steps."""


def test_the_shipped_comparison_orders_the_base_first(registry):
    planned = compare.plan([str(SHIPPED)], registry=registry)
    names = [p.exp.experiment.name for p in planned]
    assert names[0] == "compare_base_mse"
    assert set(names) == {
        "compare_base_mse",
        "compare_ft_mse",
        "compare_ft_srgan",
        "compare_ft_perpix",
        "compare_ft_lsgan",
    }
    for p in planned[1:]:
        assert p.exp.generator.init == "runs/compare_base_mse"
        assert p.exp.train.steps == 600 and p.exp.generator == planned[0].exp.generator.__class__(
            planned[0].exp.generator.name, planned[0].exp.generator.params, p.exp.generator.init
        )
    losses = {
        p.exp.experiment.name: {c.key for c in p.exp.losses if c.weight != 0} for p in planned
    }
    assert losses["compare_ft_srgan"] == {"vgg54"}
    assert losses["compare_ft_perpix"] == {"mse", "vgg54"}
    adversarial = {p.exp.experiment.name: p.exp.adversarial for p in planned}
    assert adversarial["compare_ft_mse"] is None and adversarial["compare_base_mse"] is None
    assert adversarial["compare_ft_lsgan"].name == "least_squares"
    assert adversarial["compare_ft_srgan"].name == "modified"


def test_a_cycle_of_init_sources_is_refused(tmp_path, registry):
    for a, b in (("a", "b"), ("b", "a")):
        (tmp_path / f"{a}.toml").write_text(
            f'[experiment]\nname = "{a}"\n[generator]\ninit = "runs/{b}"\n'
        )
    with pytest.raises(HarnessError, match="cycle"):
        compare.plan([str(tmp_path)], registry=registry)


def run_compare(
    tmp_path: Path, monkeypatch, registry, specs: list[str], finetunes: list[str]
) -> None:
    """``harness compare specs`` CPU-sized: the base, then ``finetunes`` from its generator, the
    report over all of them, and a second call that trains nothing. The command runs in this
    process (each experiment still trains in a ``harness run`` process of its own)."""
    store = new_store(tmp_path)
    bench = tiny_benchmark_set(tmp_path / "tinyset")
    monkeypatch.chdir(tmp_path)
    args = ["compare", *specs]
    for item in [*CPU_SIZED, f'tracking.uri="{store}"']:
        args += ["--set", item]
    report = ["--data", str(bench), "-o", str(tmp_path / "report"), "--tracking-uri", store]
    report += ["--metric", "lpips"]  # the default set (with DISTS) is test_report's
    done = CliRunner().invoke(cli, [*args, *report], obj={"registry": registry})
    assert done.exit_code == 0, done.output[-3000:]
    runs = tmp_path / "runs"
    base_id = (runs / "compare_base_mse" / "mlflow_run_id").read_text().strip()
    client = MlflowClient(store)
    for name in finetunes:
        run = client.get_run((runs / name / "mlflow_run_id").read_text().strip())
        assert run.info.status == "FINISHED"
        assert run.data.tags["harness.init.generator_run"] == base_id
        kept = json.loads((runs / name / "kept.json").read_text())
        assert {"best_psnr_y", "best_lpips"} <= set(kept)
        assert "val/lpips" in run.data.metrics
    adversarial = client.get_run((runs / "compare_ft_srgan" / "mlflow_run_id").read_text().strip())
    assert (
        "loss/adversarial" in adversarial.data.metrics and "loss/vgg54" in adversarial.data.metrics
    )
    # the report: every variant against bicubic, numbers equal to a direct evaluation
    tables = json.loads((tmp_path / "report" / "report.json").read_text())
    assert tables["measures"] == ["psnr_y", "ssim_y", "lpips"]  # --metric reaches the report
    text = (tmp_path / "report" / "report.md").read_text()
    for name in ("compare_base_mse", *finetunes):
        assert name in text
    from harness.data.pipeline import load_folder
    from harness.deploy import models as inference

    upscaler = inference.load_upscaler(runs / "compare_ft_srgan", registry=registry)
    direct = evaluate(upscaler, load_folder(str(bench), 4), 4).means()
    row = tables["tables"]["tinyset"]["compare_ft_srgan"]
    assert row["psnr_y"] == pytest.approx(direct["psnr_y"], abs=1e-9)
    assert row["ssim_y"] == pytest.approx(direct["ssim_y"], abs=1e-9)
    assert set(tables["tables"]["tinyset"]) == {"bicubic", "compare_base_mse", *finetunes}
    for figure in ("curves.png", "perception_distortion.png"):
        assert (tmp_path / "report" / figure).stat().st_size > 1000
    assert list((tmp_path / "report").glob("crops_tinyset_*.png"))
    # a second call trains nothing: every run is finished
    again = CliRunner().invoke(cli, [*args, "--no-report"], obj={"registry": registry})
    assert again.exit_code == 0, again.output[-2000:]
    assert again.output.count("finished, skipped") == 1 + len(finetunes)


def test_a_two_experiment_comparison_trains_the_fine_tune_from_the_base(
    tmp_path, monkeypatch, registry
):
    # given fine-tune first: the comparison still trains the base before it
    specs = [str(SHIPPED / "ft_srgan.toml"), str(SHIPPED / "base_mse.toml")]
    run_compare(tmp_path, monkeypatch, registry, specs, ["compare_ft_srgan"])


@pytest.mark.slow
def test_the_cpu_sized_comparison_trains_every_variant_from_the_base(
    tmp_path, monkeypatch, registry
):
    finetunes = ["compare_ft_mse", "compare_ft_srgan", "compare_ft_perpix", "compare_ft_lsgan"]
    run_compare(tmp_path, monkeypatch, registry, [str(SHIPPED)], finetunes)
