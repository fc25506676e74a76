"""What a training run records in MLflow, read back through the client: the sample grids as a
stepped image, system metrics, the run's context (description, user, source, git commit), the
data folders as dataset inputs, the bicubic references beside each validation; what ``harness
run`` prints at the end; and TensorFlow's start-up lines hidden by the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import new_store
from mlflow.tracking import MlflowClient

from harness import cli as cli_module
from harness import console
from harness.cli import cli
from harness.commands.run import quickstart_path
from harness.run_context import git_commit, run_url, ui_command

ROOT = Path(__file__).resolve().parents[1]


def tiny(tmp_path: Path, steps: int = 4, **extra: str) -> list[str]:
    sets = {
        "experiment.runs_dir": f'"{tmp_path / "runs"}"',
        "experiment.description": '"a tiny run for the MLflow conventions"',
        "data.patch": "32",
        "data.val_limit": "1",
        "data.val_max_side": "32",
        "generator.blocks": "1",
        "generator.filters": "8",
        "discriminator.filters": "8",
        "discriminator.dense": "16",
        "train.steps": str(steps),
        "train.pretrain_steps": str(steps),
        "train.batch_size": "2",
        "train.log_every": "1",
        "train.checkpoint_every": "100",
        "validation.every": "2",
        "validation.samples": "1",
        "tracking.log_model": "false",
        **extra,
    }
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


def test_a_run_records_the_mlflow_3_conventions(tmp_path, monkeypatch, store):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    # the experiment file in this git checkout is the run's source
    result = CliRunner().invoke(cli, ["run", *tiny(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    client = MlflowClient(store)
    run_id = (tmp_path / "runs" / "quickstart" / "mlflow_run_id").read_text().strip()
    run = client.get_run(run_id)

    # the sample grids: MLflow's stepped image "samples", at step 0 (the untrained generator,
    # so the chart opens on a picture) and at each validation
    pngs = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    assert sorted((p.split("/")[1].split("+")[0], int(p.split("+")[2])) for p in pngs) == [
        ("samples", 0),
        ("samples", 2),
        ("samples", 4),
    ]
    assert not [a for a in client.list_artifacts(run_id) if a.path == "samples"]

    # system metrics, even for a run shorter than a few samples
    system = [k for k in run.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system
    assert "system/system_memory_usage_megabytes" in system

    # the run's context
    tags = run.data.tags
    assert tags["mlflow.note.content"] == "a tiny run for the MLflow conventions"
    assert tags["mlflow.user"]
    assert tags["mlflow.source.name"] == str(Path(quickstart_path()).resolve())
    commit = git_commit(quickstart_path())
    if commit:
        assert tags["mlflow.source.git.commit"] == commit
    else:
        assert "mlflow.source.git.commit" not in tags
    experiment = client.get_experiment(run.info.experiment_id)
    assert tags["onednn"] == "True"  # importing harness turned it on: see test_onednn.py
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "experiment quickstart (x4" in experiment.tags["mlflow.note.content"]
    # what the run said, as the artifact console.log
    said = Path(client.download_artifacts(run_id, "console.log", str(tmp_path))).read_text()
    assert "step 2: validation PSNR-Y" in said and "bicubic on the validation set" in said

    # the data folders as dataset inputs (the quickstart trains and validates on skimage)
    inputs = run.inputs.dataset_inputs
    contexts = sorted(
        next(t.value for t in i.tags if t.key == "mlflow.data.context") for i in inputs
    )
    assert contexts == ["training", "validation"]
    for i in inputs:
        assert i.dataset.name == "skimage" and len(i.dataset.digest) == 16
        assert json.loads(i.dataset.profile)["num_images"] == 7
        assert json.loads(i.dataset.source)["uri"].endswith("skimage/data")

    # the bicubic reference at step 0 and beside every validation, a flat line
    bicubic = client.get_metric_history(run_id, "val/bicubic_psnr_y")
    psnr = client.get_metric_history(run_id, "val/psnr_y")
    assert [m.step for m in bicubic] == [0, *(m.step for m in psnr)] == [0, 2, 4]
    assert len({m.value for m in bicubic}) == 1

    # the end of `harness run`: how to open the UI and the run's page in the training view
    assert f"MLflow UI: mlflow ui --backend-store-uri {store}" in result.output
    url = f"#/experiments/{run.info.experiment_id}/runs/{run_id}?workflowType=machine_learning"
    assert f"run page: http://127.0.0.1:5000/{url}" in result.output


def test_system_metrics_switch_off(tmp_path, monkeypatch, store):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    args = tiny(tmp_path, steps=1, **{"tracking.system_metrics": "false"})
    result = CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run_id = (tmp_path / "runs" / "quickstart" / "mlflow_run_id").read_text().strip()
    metrics = MlflowClient(store).get_run(run_id).data.metrics
    assert "val/psnr_y" in metrics
    assert not [k for k in metrics if k.startswith("system/")]


def test_ui_command_and_run_url():
    assert ui_command("sqlite:///mlflow.db") == "mlflow ui --backend-store-uri sqlite:///mlflow.db"
    assert ui_command("sqlite:////a b/mlflow.db") == (
        "mlflow ui --backend-store-uri 'sqlite:////a b/mlflow.db'"
    )
    assert ui_command("http://tracking:5000") == ""  # a server serves its own UI
    assert run_url("http://tracking:5000/", "3", "abc") == (
        "http://tracking:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )


def test_git_commit_outside_a_checkout_is_empty(tmp_path):
    (tmp_path / "x.toml").write_text("")
    assert git_commit(tmp_path / "x.toml") == ""


# --------------------------------------------------------------------------- TensorFlow noise


def test_verbose_is_read_before_the_subcommand():
    assert cli_module.wants_verbose(["--verbose", "plugins"])
    assert not cli_module.wants_verbose(["plugins", "--verbose"])
    assert not cli_module.wants_verbose(["run", "x.toml"])
    assert not cli_module.wants_verbose([])


def test_tensorflow_start_up_lines_are_dropped_and_the_rest_kept(capfd):
    lines = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        b"I0000 00:00:1796197203.726247   27564 cudart_stub.cc:31] Could not find cuda drivers on"
        b" your machine, GPU will not be used.",
        b"I0000 00:00:1796197225.050901   27823 cpu_feature_guard.cc:227] This TensorFlow binary",
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild ...",
        b"2026-01-01 10:00:00.000000: I tensorflow/core/util/port.cc:153] oneDNN custom"
        b" operations are on.",
        b"E0000 00:00:1.5 1 cuda_fft.cc:467] Unable to register cuFFT factory: already registered",
        b"E0000 00:00:1.5 1 some_op.cc:12] a real error",
        b"Traceback (most recent call last):",
    ]
    with console.filtered_stderr():
        os.write(2, b"\n".join(lines) + b"\n")
    err = capfd.readouterr().err
    assert (
        err == "E0000 00:00:1.5 1 some_op.cc:12] a real error\nTraceback (most recent call last):\n"
    )


def _harness(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_harness_plugins_prints_no_tensorflow_start_up_lines():
    quiet = _harness("plugins")
    assert quiet.returncode == 0, quiet.stderr
    noise = [ln for ln in quiet.stderr.splitlines() if console.TF_NOISE.match(ln.encode())]
    assert not noise
    for marker in ("absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "oneDNN"):
        assert marker not in quiet.stderr
    assert "mse" in quiet.stdout  # the command itself ran


def test_verbose_leaves_tensorflow_alone_and_a_users_log_level_is_kept(monkeypatch):
    calls = []
    monkeypatch.setattr(cli_module, "quiet_tensorflow", lambda: calls.append("quiet"))
    monkeypatch.setattr(cli_module.warnings, "showwarning", cli_module.warnings.showwarning)
    cli_module.configure_process(verbose=True)
    assert calls == []
    cli_module.configure_process()
    assert calls == ["quiet"]  # whatever TF_CPP_MIN_LOG_LEVEL says: absl ignores it
    monkeypatch.setattr(console, "filter_stderr", lambda: True)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.delenv(console.QUIET_ENV, raising=False)
    console.quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and os.environ[console.QUIET_ENV] == "1"
