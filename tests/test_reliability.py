"""Nothing lost, nothing silent: diverged weights stop the run before anything is written from
them, models with non-finite outputs are refused, and any run directory is a model."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import new_store
from mlflow.tracking import MlflowClient
from PIL import Image
from test_train import tiny

from harness import config
from harness.data.folders import DataError, DataWarning
from harness.deploy import models as inference
from harness.deploy.export import export_saved_model
from harness.errors import HarnessError
from harness.rundir import RunDir, RunDirBusy
from harness.training.loop import NonFiniteLoss, NonFiniteWeights, train


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


class _Poison:
    """A callback that turns one weight of the EMA generator into NaN at a validation: the
    weights diverge while every logged loss stays finite."""

    def __init__(self, model_of, at: int) -> None:
        self.model_of, self.at = model_of, at

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        if step == self.at:
            variable = self.model_of().trainable_variables[0]
            variable.assign(tf.fill(variable.shape, float("nan")))


def test_non_finite_weights_stop_the_run_and_keep_the_last_good_checkpoint(
    tmp_path, store, monkeypatch, registry
):
    from harness.training import step as train_module

    trainers = []
    original = train_module.Trainer.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        trainers.append(self)

    monkeypatch.setattr(train_module.Trainer, "__init__", spy)
    exp = tiny(
        tmp_path,
        adversarial=None,
        train={"steps": 6, "checkpoint_every": 2, "log_every": 1, "ema": 0.5},
        validation={"every": 2},
        tracking={"uri": store, "log_model": True},
    )
    with pytest.raises(NonFiniteWeights, match=r"by step 3 .*last good checkpoint \(step 2\)"):
        train(exp, registry=registry, callbacks=[_Poison(lambda: trainers[0].ema_generator, at=2)])
    state = tf.train.get_checkpoint_state(str(exp.run_dir / "checkpoints"))
    ckpts = state.all_model_checkpoint_paths
    assert [p.rsplit("-", 1)[1] for p in ckpts] == ["2"]
    assert not (exp.run_dir / "generator.keras").exists()
    run = MlflowClient(store).get_run((exp.run_dir / "mlflow_run_id").read_text().strip())
    assert run.info.status == "FAILED" and "NonFiniteWeights" in run.data.tags["error"]
    # the kept checkpoint is usable as a model
    good = inference.load_generator(exp.run_dir, registry=registry)
    assert all(np.all(np.isfinite(w)) for w in good.get_weights())


def test_an_exploding_learning_rate_fails_the_run_instead_of_finishing(tmp_path, store, registry):
    rate = {"schedule": "piecewise", "boundaries": [2], "values": [1e-3, 1e9]}
    exp = tiny(
        tmp_path,
        adversarial=None,
        train={"steps": 8, "learning_rate": rate, "log_every": 1, "checkpoint_every": 2},
        tracking={"uri": store, "log_model": True},
    )
    with pytest.raises((NonFiniteWeights, NonFiniteLoss)):
        train(exp, registry=registry)
    assert not (exp.run_dir / "generator.keras").exists()
    run = MlflowClient(store).get_run((exp.run_dir / "mlflow_run_id").read_text().strip())
    assert run.info.status == "FAILED"


def test_a_model_with_non_finite_outputs_is_refused(tmp_path, registry):
    from harness_models.srresnet import srresnet

    model = srresnet(scale=4, blocks=1, filters=8)
    weights = model.get_weights()
    weights[0] = np.full_like(weights[0], np.nan)
    model.set_weights(weights)
    path = tmp_path / "nan.keras"
    model.save(path)
    with pytest.raises(HarnessError, match="non-finite values"):
        inference.load_upscaler(path, registry=registry)
    with pytest.raises(HarnessError, match="non-finite values"):
        export_saved_model(model, tmp_path / "export")


FINISHED = {"steps": 4, "checkpoint_every": 2}
"""The finished run of :func:`finished`: checkpoints at steps 2 and 4, no EMA."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry) -> Path:
    """A finished tiny MSE run (:data:`FINISHED`); tests copy it to their own folder."""
    exp = tiny(tmp_path_factory.mktemp("finished"), adversarial=None, train=FINISHED)
    train(exp, registry=registry)
    return exp.run_dir


def copy_of(run_dir: Path, tmp_path: Path, **train_values) -> config.Experiment:
    """The experiment of :func:`finished`'s run (with ``train_values``), its run directory a
    copy of that run's in ``tmp_path``."""
    exp = tiny(tmp_path, adversarial=None, train={**FINISHED, **train_values})
    shutil.copytree(run_dir, exp.run_dir)
    return exp


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_a_run_without_its_final_model_loads_from_its_checkpoint(tmp_path, ema, finished, registry):
    """A run killed before generator.keras is written is still a model reference (EMA weights
    preferred), although TF keys its variables under the optimizer's path."""
    if ema:
        exp = tiny(tmp_path, adversarial=None, train={"steps": 2, "ema": ema})
        train(exp, registry=registry)
    else:
        exp = copy_of(finished, tmp_path)
    final = inference.load_generator(exp.run_dir / "generator.keras", registry=registry)
    (exp.run_dir / "generator.keras").unlink()
    for ref in (exp.run_dir, exp.run_dir / "checkpoints"):
        restored = inference.load_generator(ref, registry=registry)
        for a, b in zip(final.get_weights(), restored.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damaged", [".data-00000-of-00001", ".index"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_older_one(
    tmp_path, damaged, finished, capsys, registry
):
    exp = copy_of(finished, tmp_path)
    latest = exp.run_dir / "checkpoints" / "ckpt-4"
    target = Path(str(latest) + damaged)
    target.write_bytes(target.read_bytes()[: max(1, target.stat().st_size // 3)])
    longer = tiny(tmp_path, adversarial=None, train={**FINISHED, "steps": 6})
    capsys.readouterr()
    assert train(longer, registry=registry).steps == 6
    out = capsys.readouterr().out
    assert "resuming tiny at step 2" in out
    assert "could not read ckpt-4" in out and "resumed from the older ckpt-2" in out


def test_fresh_moves_the_old_checkpoints_aside(tmp_path, finished, capsys, registry):
    exp = copy_of(finished, tmp_path)
    old = sorted(p.name for p in (exp.run_dir / "checkpoints").iterdir())
    train(exp, registry=registry, fresh=True)
    aside = sorted(exp.run_dir.glob("previous-*"))
    assert len(aside) == 1 and sorted(p.name for p in (aside[0] / "checkpoints").iterdir()) == old
    assert (aside[0] / "generator.keras").is_file()
    assert "moved" not in capsys.readouterr().err


@pytest.fixture
def file_size_limit():
    """Lower this process's file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) so that a
    large write fails with EFBIG as a full disk fails with ENOSPC; restored afterwards."""
    resource = pytest.importorskip("resource", reason="RLIMIT_FSIZE is POSIX-only")
    import signal

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(n: int | None) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft if n is None else n, hard))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)


def test_a_full_disk_while_saving_leaves_no_temp_files_and_keeps_the_last_checkpoint(
    tmp_path, store, file_size_limit, registry
):
    from harness.diskwrite import DiskFullError

    # 64 filters: a checkpoint of several MB, over a 3 MB limit the MLflow database stays under
    exp = tiny(
        tmp_path,
        adversarial=None,
        generator={"blocks": 2, "filters": 64},
        train={"steps": 2, "checkpoint_every": 2},
        tracking={"uri": store},
    )
    train(exp, registry=registry)
    ckpt_dir = exp.run_dir / "checkpoints"
    before = sorted(p.name for p in ckpt_dir.iterdir())
    longer = dataclasses.replace(exp, train=dataclasses.replace(exp.train, steps=4))
    file_size_limit(3 * 2**20)
    with pytest.raises(DiskFullError, match=r"checkpoint of step 4 .*step 2 is intact"):
        train(longer, registry=registry)
    file_size_limit(None)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == before  # no *_temp, ckpt-2 untouched
    run_id = (exp.run_dir / "mlflow_run_id").read_text().strip()
    assert MlflowClient(store).get_run(run_id).info.status == "FAILED"
    # room again: resumes from step 2 and finishes
    assert train(longer, registry=registry).steps == 4


def test_training_on_only_undecodable_images_is_one_clear_error(tmp_path, registry):
    folder = tmp_path / "truncated"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(buf, "JPEG")
        (folder / f"{i}.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    exp = tiny(tmp_path, adversarial=None, data={"train": [str(folder)]})
    with pytest.warns(Warning, match="truncated"), pytest.raises(DataError, match="decoded"):
        train(exp, registry=registry)


def test_a_patch_larger_than_every_image_is_one_error_before_anything_is_built(
    tmp_path, store, registry, monkeypatch
):
    from click.testing import CliRunner

    from harness.cli import cli
    from harness.training import step as train_module

    folder = tmp_path / "small"
    folder.mkdir()
    for i, (h, w) in enumerate([(48, 64), (40, 40)]):
        Image.fromarray(np.full((h, w, 3), 100 + i, np.uint8)).save(folder / f"{i}.png")

    def built(self, *args, **kwargs):  # the networks for the patch: GBs for a 4096 px one
        raise AssertionError("the networks were built")

    monkeypatch.setattr(train_module.Trainer, "__init__", built)
    client = MlflowClient(store)
    runs = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    exp = tiny(
        tmp_path,
        data={"train": [str(folder)], "patch": 1024},
        train={"batch_size": 1},
        tracking={"uri": store},
    )
    refused = r"data.patch = 1024 is larger than every training image: the largest, small/0.png"
    with pytest.raises(DataError, match=refused + r" \(64x48\), gives at most a 48 px patch"):
        train(exp, registry=registry)
    assert not exp.run_dir.exists()  # no lock, no file
    assert len(client.search_runs([e.experiment_id for e in client.search_experiments()])) == runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    sets = {"data.train": f'["{folder}"]', "data.patch": "4096", "train.batch_size": "1"}
    args = [item for key, value in sets.items() for item in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(cli, ["run", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: data.patch = 4096"), result.output
    assert "--set data.patch=48" in lines[0]


def test_a_truncated_jpeg_in_an_evaluation_folder_is_skipped_with_a_warning(tmp_path):
    from harness.data.pipeline import load_folder

    folder = tmp_path / "eval"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), np.uint8)).save(buf, "JPEG")
        data = buf.getvalue()
        (folder / f"{name}.jpg").write_bytes(data if name == "a" else data[: len(data) // 2])
    with pytest.warns(DataWarning, match=r"skipped 1 of 2 .*b\.jpg"):
        images = load_folder(str(folder), 4)
    assert [name for name, _ in images] == ["a"]


def test_steps_replayed_after_a_resume_are_not_logged_twice(tmp_path, store, capsys, registry):
    exp = tiny(
        tmp_path,
        adversarial=None,
        train={"steps": 3, "checkpoint_every": 2, "log_every": 1},
        tracking={"uri": store},
    )
    train(exp, registry=registry)
    # as if killed after logging step 3 and before its checkpoint: only ckpt-2 is left
    ckpt_dir = exp.run_dir / "checkpoints"
    for path in ckpt_dir.glob("ckpt-3.*"):
        path.unlink()
    state = (ckpt_dir / "checkpoint").read_text().splitlines()
    timestamps = [line for line in state if line.startswith("all_model_checkpoint_timestamps")]
    kept = [line for line in state if "ckpt-3" not in line and line != timestamps[-1]]
    (ckpt_dir / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n' + "\n".join(kept))
    longer = dataclasses.replace(exp, train=dataclasses.replace(exp.train, steps=4))
    capsys.readouterr()
    assert train(longer, registry=registry).steps == 4
    assert "at step 2" in capsys.readouterr().out
    run_id = (exp.run_dir / "mlflow_run_id").read_text().strip()
    history = MlflowClient(store).get_metric_history(run_id, "loss/mse")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]


def test_a_run_directory_in_use_is_refused_before_anything_is_written(tmp_path, store, registry):
    exp = tiny(tmp_path, adversarial=None, tracking={"uri": store})
    exp.run_dir.mkdir(parents=True)
    owner = {"pid": os.getppid(), "host": socket.gethostname(), "command": "harness run"}
    RunDir(exp.run_dir).lock_file.write_text(json.dumps(owner))
    with pytest.raises(RunDirBusy, match=f"in use by harness run \\(pid {os.getppid()}"):
        train(exp, registry=registry)
    assert sorted(p.name for p in exp.run_dir.iterdir()) == ["run.lock"]


@pytest.mark.slow
def test_a_refused_resume_leaves_the_finished_run_finished(tmp_path, store, registry, monkeypatch):
    exp = tiny(tmp_path, adversarial=None, train={"steps": 1}, tracking={"uri": store})
    run_id = train(exp, registry=registry).run_id
    changed = tiny(
        tmp_path,
        adversarial=None,
        generator={"filters": 16},
        train={"steps": 2},
        tracking={"uri": store},
    )
    with pytest.raises(HarnessError, match="generator"):
        train(changed, registry=registry)
    run = MlflowClient(store).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "error" not in run.data.tags
    assert not RunDir(exp.run_dir).lock_file.exists()

    from harness.training import loop

    def read_only(path, text, what=""):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(loop.diskwrite, "write_text", read_only)
    with pytest.raises(PermissionError):  # a run directory that cannot be written
        train(
            dataclasses.replace(exp, train=dataclasses.replace(exp.train, steps=2)),
            registry=registry,
        )
    assert MlflowClient(store).get_run(run_id).info.status == "FINISHED"


CTRL_C_WHILE_READING = """
import signal, sys
# a process started from a terminal: SIGINT neither ignored nor blocked, whatever the process
# that started this one had (a child inherits both); what it inherited is said for a failure
print("inherited SIGINT", signal.getsignal(signal.SIGINT),
      "blocked", sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])), file=sys.stderr)
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
from harness import config
from harness.plugin_api.registry import build_registry
from harness.training import step
from harness.training.loop import train

def interrupted(self, dataset=None):
    signal.raise_signal(signal.SIGINT)  # as a user pressing Ctrl-C while the data loads

step.Trainer.start_data = interrupted
registry = build_registry()
try:
    train(config.load(sys.argv[1], registry=registry), registry=registry)
except KeyboardInterrupt:
    sys.exit(42)
"""


@pytest.mark.slow
def test_ctrl_c_while_the_data_is_read_stops_at_once(tmp_path, store):
    # in a process of its own, as a run is: the signal handlers of this test process are
    # whatever the tests before it left
    exp = tiny(tmp_path, adversarial=None, tracking={"uri": store})
    file = tmp_path / "exp.toml"
    file.write_text(exp.to_toml(), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_READING, str(file)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 42, done.stdout[-2000:] + done.stderr[-2000:]
    assert "stopping after the current step" not in done.stdout  # at once, not after a step
    assert not RunDir(exp.run_dir).checkpoints.exists()  # no step trained, none saved
    run_id = RunDir(exp.run_dir).read_run_id()
    assert MlflowClient(store).get_run(run_id).info.status == "KILLED"
    assert not RunDir(exp.run_dir).lock_file.exists()
