"""``harness run`` through the real CLI: a tiny run logged to MLflow, resume after a stop past
pre-training, a NaN loss that fails the run, and the shipped experiment files."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import new_store, tiny_overrides
from mlflow.tracking import MlflowClient

from harness import config, hookimpl
from harness.cli import cli
from harness.commands.run import quickstart_path
from harness.config import schedules
from harness.plugin_api import registry as plugins
from harness.training.loop import StopTraining, train

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


@pytest.fixture(scope="module")
def module_store(tmp_path_factory) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture
def store(module_store, monkeypatch) -> str:
    """The module's MLflow store, given to the CLI as MLFLOW_TRACKING_URI (creating a store's
    tables takes seconds, so the module shares one)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", module_store)
    return module_store


def run_id_of(tmp_path: Path, name: str = "quickstart") -> str:
    return (tmp_path / "runs" / name / "mlflow_run_id").read_text().strip()


def invoke(args: list[str]):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_tiny_run_through_cli_logs_everything(tmp_path, monkeypatch, store, registry):
    monkeypatch.chdir(tmp_path)
    result = invoke(["run", *tiny_overrides(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "validation PSNR-Y" in result.output and "vs bicubic" in result.output
    client = MlflowClient(store)
    run_id = run_id_of(tmp_path)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.steps"] == "4" and params["generator.name"] == "msrresnet"
    assert params["adversarial.name"] == "modified" and params["losses.mse.weight"] == "1.0"
    assert run.data.tags["harness.source"] == quickstart_path()
    metrics = run.data.metrics
    for key in (
        "loss/mse",
        "loss/d",
        "loss/adversarial",
        "loss/g_total",
        "weight/mse",
        "weight/adversarial",
        "train/img_per_s",
        "train/learning_rate",
        "val/psnr_y",
        "val/ssim_y",
        "val/psnr_rgb",
        "val/bicubic_psnr_y",
    ):
        assert key in metrics, key
    assert [m.step for m in client.get_metric_history(run_id, "loss/mse")] == [1, 2, 3, 4]
    assert [m.step for m in client.get_metric_history(run_id, "loss/d")] == [3, 4]
    assert [m.step for m in client.get_metric_history(run_id, "val/psnr_y")] == [2, 4]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "experiment.toml" in artifacts
    # the sample grids as MLflow's stepped image "samples" (a PNG and a preview per step), the
    # untrained generator's at step 0
    images = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    assert sorted(p.split("+")[2] for p in images) == ["0", "2", "4"]
    # the resolved experiment artifact is itself a loadable experiment with the overrides
    toml = Path(client.download_artifacts(run_id, "experiment.toml", str(tmp_path)))
    assert config.load(toml, registry=registry).train.steps == 4
    # the generator as an MLflow model: loadable and a 4x upscaler, [0, 1] -> [0, 1]
    import mlflow.pyfunc

    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    models = [m for m in models if m.source_run_id == run_id]
    # the final generator, and the best-PSNR one when it is an earlier step
    assert "generator" in [m.name for m in models]
    assert {m.name for m in models} <= {"generator", "best_psnr_y"}
    final = next(m for m in models if m.name == "generator")
    assert run.data.tags["generator_model_uri"] == final.model_uri
    model = mlflow.pyfunc.load_model(final.model_uri)
    sr = np.asarray(model.predict(np.zeros((1, 6, 5, 3), np.float32)))
    assert sr.shape == (1, 24, 20, 3) and sr.min() >= 0 and sr.max() <= 1
    run_dir = tmp_path / "runs" / "quickstart"
    assert (run_dir / "generator.keras").is_file() and (run_dir / "experiment.toml").is_file()


class _StopAt:
    def __init__(self, step: int):
        self.step = step

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        if step >= self.step:
            raise StopTraining(f"stopped at {step}")


@pytest.mark.slow  # a second run; test_reliability resumes runs in the fast tier
def test_resume_continues_the_same_mlflow_run(tmp_path, monkeypatch, store, registry):
    monkeypatch.chdir(tmp_path)
    sets = tiny_overrides(tmp_path, steps=6, pretrain=1)
    sets += ["--set", "tracking.log_model=false"]
    exp = config.load(quickstart_path(), [s for s in sets if s != "--set"], registry=registry)
    with pytest.raises(StopTraining):
        # stops after step 4, with the adversarial term on since step 2
        train(exp, registry=registry, callbacks=[_StopAt(4)])
    run_id = run_id_of(tmp_path)
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "KILLED"
    ckpt = tf.train.latest_checkpoint(str(exp.run_dir / "checkpoints"))
    assert ckpt.endswith("-4")
    saved = dict(tf.train.list_variables(ckpt))
    assert "step/.ATTRIBUTES/VARIABLE_VALUE" in saved
    assert not any(name.startswith("phase/") for name in saved)  # the step says it all

    result = invoke(["run", *sets])
    assert result.exit_code == 0, result.output
    assert "resuming quickstart at step 4 (adversarial weight 0.001)" in result.output
    assert run_id_of(tmp_path) == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "loss/d")]
    assert steps == [2, 3, 4, 5, 6]  # no step repeated, none lost
    assert [m.step for m in client.get_metric_history(run_id, "val/psnr_y")] == [2, 4, 6]

    # --fresh starts over in a new MLflow run
    result = invoke(["run", *sets, "--set", "train.steps=2", "--fresh"])
    assert result.exit_code == 0, result.output
    assert run_id_of(tmp_path) != run_id
    assert "resuming" not in result.output


class NanAtStep2:
    """A content loss that is the MSE at step 1 and NaN from step 2 on."""

    def __init__(self) -> None:
        self.calls = tf.Variable(0, trainable=False)

    def __call__(self, sr, hr):
        self.calls.assign_add(1)
        mse = tf.reduce_mean(tf.square(tf.cast(sr, tf.float32) - hr))
        return tf.where(self.calls >= 2, tf.constant(np.nan, tf.float32), mse)


class _NanPlugin:
    @staticmethod
    @hookimpl
    def harness_register_content_losses():
        return {"nan_at_step_2": NanAtStep2}


@pytest.fixture
def nan_registry():
    return plugins.build_registry(extra=[(_NanPlugin, "nan_test", "tests")])


def test_nan_loss_fails_the_run_naming_step_and_term(tmp_path, monkeypatch, nan_registry, store):
    monkeypatch.chdir(tmp_path)
    sets = tiny_overrides(tmp_path, steps=4, pretrain=4)
    sets += ["--set", "losses.nan={name = 'nan_at_step_2'}", "--set", "train.checkpoint_every=1"]
    result = CliRunner().invoke(cli, ["run", *sets], obj={"registry": nan_registry})
    assert result.exit_code == 2, result.output
    assert 'loss term "nan" is nan at step 2' in result.output
    assert "last good checkpoint (step 1)" in result.output
    run = MlflowClient(store).get_run(run_id_of(tmp_path))
    assert run.info.status == "FAILED"
    assert "step 2" in run.data.tags["error"]
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "runs" / "quickstart" / "checkpoints"))
    assert ckpt.endswith("-1")  # the NaN step wrote nothing


def test_embedded_quickstart_is_the_shipped_file():
    assert filecmp.cmp(EXPERIMENTS / "quickstart.toml", quickstart_path(), shallow=False)


def test_shipped_experiments_load_and_follow_their_recipes(registry):
    perpix = config.load(EXPERIMENTS / "perpix.toml", registry=registry)
    assert perpix.data.patch == 96 and perpix.train.batch_size == 16
    assert perpix.train.steps == 35000 and perpix.train.learning_rate == 1e-4
    assert perpix.train.pretrain_steps == 0
    assert [loss.plugin for loss in perpix.losses] == ["mse", "vgg54"]
    assert perpix.adversarial.name == "modified" and perpix.adversarial.weight == 1e-3
    w1, w2 = (schedules.build(loss.weight, registry) for loss in perpix.losses)
    steps = (0, 14999, 15000, 19999, 20000, 34999)  # 0-15k: 10/1, 15k-20k: 10/10, 20k-35k: 1/10
    assert [(w1(s), w2(s)) for s in steps] == [
        (10, 1),
        (10, 1),
        (10, 10),
        (10, 10),
        (1, 10),
        (1, 10),
    ]
    assert perpix.data.train == ("data/div2k",)

    mse = config.load(EXPERIMENTS / "mse.toml", registry=registry)
    assert mse.adversarial is None and [loss.plugin for loss in mse.losses] == ["mse"]

    ledig = config.load(EXPERIMENTS / "srgan_vgg54.toml", registry=registry)
    assert 0 < ledig.train.pretrain_steps < ledig.train.steps
    assert [loss.plugin for loss in ledig.losses] == ["mse", "vgg54"]
    mse_w, vgg_w = (schedules.build(loss.weight, registry) for loss in ledig.losses)
    switch = ledig.train.pretrain_steps
    assert (mse_w(switch - 1), vgg_w(switch - 1)) == (1.0, 0.0)  # MSE pre-training
    assert (mse_w(switch), vgg_w(switch)) == (0.0, 1.0)  # then VGG54 + adversarial
    assert ledig.adversarial.weight == 1e-3

    quick = config.load(EXPERIMENTS / "quickstart.toml", registry=registry)
    assert quick.data.train == ("skimage",) and quick.adversarial is not None

    # the one-CPU-hour quality runs: MSE only, T91 + BSD200, validated on Set5
    for name, generator in (("msrresnet_mse_291.toml", "msrresnet"), ("mse_291.toml", "srresnet")):
        run = config.load(EXPERIMENTS / name, registry=registry)
        assert run.generator.name == generator and run.adversarial is None
        assert [loss.plugin for loss in run.losses] == ["mse"]
        assert run.data.train == ("../shared/data/t91", "../shared/data/bsd200")
        assert run.data.val == ("../shared/data/set5",)
        assert (run.data.patch, run.train.batch_size) == (96, 16)


def _checkpoint_step(ckpt_dir: Path) -> int:
    ckpt = tf.train.latest_checkpoint(str(ckpt_dir))
    if ckpt is None:
        return 0
    return int(tf.train.load_variable(ckpt, "step/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.slow
def test_sigkill_loses_at_most_one_checkpoint_interval(tmp_path, store):
    """A training process killed with SIGKILL resumes from its last checkpoint, in the same run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    every, total = 3, 40
    sets = tiny_overrides(tmp_path, steps=total, pretrain=total)  # content only: fast steps
    sets += ["--set", f"train.checkpoint_every={every}", "--set", "validation.every=0"]
    sets += ["--set", "tracking.log_model=false", "--set", "train.log_every=1"]
    args = [sys.executable, "-m", "harness.cli", "run", *sets, "--quiet"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    ckpt_dir = tmp_path / "runs" / "quickstart" / "checkpoints"
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while _checkpoint_step(ckpt_dir) < 2 * every:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no second checkpoint within 240 s"
            time.sleep(0.2)
        time.sleep(0.3)  # kill somewhere inside the next interval, possibly mid-write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = run_id_of(tmp_path)
    client = MlflowClient(store)
    logged = max(m.step for m in client.get_metric_history(run_id, "loss/g_total"))
    saved = _checkpoint_step(ckpt_dir)
    assert saved % every == 0 and saved >= 2 * every
    assert logged - saved <= every  # at most one interval of work lost

    args.remove("--quiet")
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming quickstart at step {saved}" in result.stdout + result.stderr
    assert run_id_of(tmp_path) == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss/g_total"))
    # the killed process logged 1..logged; the resumed one redid saved+1.. and went on to the
    # end, logging only the steps the run did not have yet: one point per step
    assert steps == list(range(1, total + 1))


def test_quiet_run_prints_plain_log_lines(tmp_path, monkeypatch, store):
    monkeypatch.chdir(tmp_path)
    sets = tiny_overrides(tmp_path, steps=2, pretrain=1) + ["--set", "tracking.log_model=false"]
    result = invoke(["run", *sets, "--quiet"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # the adversarial weight is 0 while pre-training: no discriminator loss then
    assert any(line.startswith("step 1/2 adversarial=0 g_total=") for line in lines)
    assert not any(line.startswith("step 1/2") and " d=" in line for line in lines)
    assert any(line.startswith("step 2/2 adversarial=0.001 g_total=") for line in lines)
    assert any(line.startswith("step 2/2") and " d=" in line for line in lines)
    assert "step/s" not in result.output  # no progress bar
    assert "done: 2 steps" in result.output
