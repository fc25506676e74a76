"""Multi-worker training: two real ``harness run`` processes on 127.0.0.1 (CPU, tiny model).

Both workers are started with ``--workers 127.0.0.1:P0,127.0.0.1:P1 --worker-index I`` (the
command builds ``TF_CONFIG``), share the run directory (the same path on both, as on a shared
file system) and give each process its own ``TMPDIR``. Worker 0 (the chief) writes the
checkpoints, the final model and the MLflow run; worker 1 saves its checkpoints (collectively,
as ``MultiWorkerMirroredStrategy`` requires) into a temporary folder under its ``TMPDIR``, which
is how the test reads the weights worker 1 ended with: the checkpoint holds the very variables
the process trained, not a copy written for the test.

The generator is ``msrresnet`` (no batch normalisation): with batch norm each replica
normalises by its own half of the batch, so a two-worker run is not the same computation as a
one-process run (the workers still agree with each other).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from harness.commands.run import cluster_config

STEPS = 4
GLOBAL_BATCH = 4  # train.batch_size is the global batch: 2 images per worker
# measured (4 steps, lr 1e-3, weights up to ~0.08): the two workers agree bit for bit; the
# two-worker run and the one-process run with the same global batch differ by at most 7.5e-9
# (float32: the gradients are summed in another order)
TOLERANCE = 1e-6


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def experiment(tmp_path: Path, runs: Path, store: str, **train: object) -> Path:
    values = {"steps": STEPS, "batch_size": GLOBAL_BATCH, "checkpoint_every": 2, **train}
    train_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())
    text = f"""
[experiment]
name = "dist"
runs_dir = "{runs}"
seed = 3

[data]
train = ["skimage"]
val = []
patch = 32

[generator]
name = "msrresnet"
blocks = 1
filters = 8

[losses.mse]
weight = 1.0

[train]
precision = "float32"
quiet = true
log_every = 1
learning_rate = 1e-3
{train_lines}

[validation]
every = 0

[tracking]
uri = "{store}"
log_model = false
"""
    path = tmp_path / f"dist-{runs.name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def env_for(tmp: Path) -> dict[str, str]:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(
        TMPDIR=str(tmp), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1"
    )
    return env


def start_workers(
    tmp_path: Path, toml: Path, *extra: str, own: tuple[list[str], ...] = ([], [])
) -> list[subprocess.Popen]:
    """Two ``harness run`` workers on free local ports; ``own[i]``: worker i's extra args."""
    workers = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    procs = []
    for index in range(2):
        log = open(tmp_path / f"worker{index}.log", "a", encoding="utf-8")  # noqa: SIM115
        cmd = [sys.executable, "-m", "harness.cli", "run", str(toml), "--workers", workers]
        cmd += ["--worker-index", str(index), *extra, *own[index]]
        procs.append(
            subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env_for(tmp_path / f"tmp{index}"),
                cwd=tmp_path,
            )
        )
    return procs


def wait_all(procs: list[subprocess.Popen], tmp_path: Path, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(max(deadline - time.monotonic(), 1)))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"the workers did not finish in {timeout} s:\n{logs(tmp_path)}")
    return codes


def logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
        for p in sorted(tmp_path.glob("worker*.log"))
    )


def checkpoint_values(checkpoint: str) -> dict[str, np.ndarray]:
    """Every variable of a checkpoint (networks, optimizer slots, step, data RNG)."""
    reader = tf.train.load_checkpoint(checkpoint)
    names = set(reader.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    return {name: reader.get_tensor(name) for name in names}


def generator_weights(checkpoint: str) -> dict[str, np.ndarray]:
    """The generator's trainable weights: the object graph reaches them first through the
    generator optimizer (``g_optimizer/_trainable_variables/<i>``)."""
    return {
        name: value
        for name, value in checkpoint_values(checkpoint).items()
        if name.startswith("g_optimizer/_trainable_variables/")
    }


def worker_checkpoint(tmp: Path, step: int) -> str:
    """Worker 1's checkpoint of ``step`` in its temporary folder (one folder per start)."""
    found = [
        path
        for folder in tmp.glob("harness-worker-ckpt-*")
        if (path := tf.train.latest_checkpoint(str(folder))) and path.endswith(f"ckpt-{step}")
    ]
    assert len(found) == 1, (step, sorted(tmp.iterdir()))
    return found[0]


@pytest.fixture
def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.mark.slow
def test_two_workers_agree_and_match_one_process(tmp_path, store):
    runs = tmp_path / "runs"
    toml = experiment(tmp_path, runs, store)
    procs = start_workers(tmp_path, toml)
    single = subprocess.Popen(  # the one-process reference, same global batch, seed and data
        [sys.executable, "-m", "harness.cli", "run", str(toml), "--set", 'train.strategy="default"']
        + ["--set", f'experiment.runs_dir="{tmp_path / "single"}"']
        # its own store: two processes creating one SQLite store's tables at once collide
        + ["--set", f'tracking.uri="sqlite:///{tmp_path / "single.db"}"'],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env_for(tmp_path / "tmp-single"),
        cwd=tmp_path,
    )
    assert wait_all(procs, tmp_path, 150) == [0, 0], logs(tmp_path)
    out, _ = single.communicate(timeout=150)
    assert single.returncode == 0, out[-3000:]

    run_dir = runs / "dist"
    chief_ckpt = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    assert chief_ckpt is not None and chief_ckpt.endswith(f"ckpt-{STEPS}")
    assert (run_dir / "generator.keras").is_file()
    # only the chief wrote into the run directory and the MLflow store
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints",
        "console.log",
        "experiment.toml",
        "generator.keras",
        "mlflow_run_id",
    ]
    assert not list((tmp_path / "tmp0").glob("harness-worker-ckpt-*"))
    client = MlflowClient(store)
    runs_found = client.search_runs(
        [client.get_experiment_by_name("dist").experiment_id], filter_string=""
    )
    by_dir = {r.info.run_id: r for r in runs_found}
    chief_run = by_dir[(run_dir / "mlflow_run_id").read_text().strip()]
    assert chief_run.info.status == "FINISHED"
    assert chief_run.data.tags["replicas"] == "2"
    assert len(runs_found) == 1  # the chief's; none from worker 1
    history = client.get_metric_history(chief_run.info.run_id, "loss/mse")
    assert [m.step for m in history] == list(range(1, STEPS + 1))

    # synchronous all-reduce: the workers hold the same weights, optimizer state and step
    chief_all = checkpoint_values(chief_ckpt)
    other_all = checkpoint_values(worker_checkpoint(tmp_path / "tmp1", STEPS))
    assert chief_all.keys() == other_all.keys()
    for name in chief_all:
        np.testing.assert_array_equal(chief_all[name], other_all[name], err_msg=name)
    chief = generator_weights(chief_ckpt)
    assert len(chief) >= 4

    single_ckpt = tf.train.latest_checkpoint(str(tmp_path / "single" / "dist" / "checkpoints"))
    reference = generator_weights(single_ckpt)
    assert reference.keys() == chief.keys()
    diff = max(float(np.max(np.abs(chief[n] - reference[n]))) for n in chief)
    moved = max(float(np.max(np.abs(reference[n]))) for n in chief)
    print(f"max |two workers - one process| = {diff:.3g} (largest weight {moved:.3g})")
    assert diff <= TOLERANCE


@pytest.mark.slow
def test_killed_worker_resumes_from_the_chief_checkpoint(tmp_path, store):
    runs = tmp_path / "runs"
    steps = 24
    toml = experiment(tmp_path, runs, store, steps=steps, checkpoint_every=2)
    ckpts = runs / "dist" / "checkpoints"
    procs = start_workers(tmp_path, toml)
    deadline = time.monotonic() + 90
    while tf.train.latest_checkpoint(str(ckpts)) is None:
        assert time.monotonic() < deadline, logs(tmp_path)
        assert all(p.poll() is None for p in procs), logs(tmp_path)
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)  # a lost machine: no checkpoint, no goodbye
    procs[1].wait(10)
    try:  # the chief fails in (or waits forever on) its next collective: bound it
        procs[0].wait(30)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].wait(10)
    chief_log = (tmp_path / "worker0.log").read_text(errors="replace")
    if procs[0].returncode != -signal.SIGKILL:  # it noticed: an error line saying what to do
        assert procs[0].returncode == 2, chief_log[-3000:]
        assert "error: lost contact with another worker" in chief_log, chief_log[-3000:]
        assert "start them all again" in chief_log
    saved = int(tf.train.latest_checkpoint(str(ckpts)).rsplit("-", 1)[1])
    assert 0 < saved < steps, "the run finished before the worker was killed: raise steps"
    run_id = (runs / "dist" / "mlflow_run_id").read_text().strip()

    procs = start_workers(tmp_path, toml)
    assert wait_all(procs, tmp_path, 120) == [0, 0], logs(tmp_path)
    for index in range(2):  # both workers resumed from the chief's checkpoint
        text = (tmp_path / f"worker{index}.log").read_text(errors="replace")
        assert text.count(f"resuming dist at step {saved}") == 1, logs(tmp_path)
    latest = tf.train.latest_checkpoint(str(ckpts))
    assert latest.endswith(f"ckpt-{steps}")
    assert (runs / "dist" / "mlflow_run_id").read_text().strip() == run_id  # the same run
    chief = checkpoint_values(latest)
    other = checkpoint_values(worker_checkpoint(tmp_path / "tmp1", steps))
    assert chief.keys() == other.keys()
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)


@pytest.mark.slow
def test_a_worker_without_the_chief_checkpoint_stops_instead_of_deadlocking(tmp_path, store):
    runs = tmp_path / "runs"
    toml = experiment(tmp_path, runs, store, steps=2)
    first = subprocess.run(  # the chief's checkpoint (step 2), written by a one-process run
        [sys.executable, "-m", "harness.cli", "run", str(toml)]
        + ["--set", 'train.strategy="default"'],
        capture_output=True,
        text=True,
        env=env_for(tmp_path / "tmp-single"),
        cwd=tmp_path,
        timeout=120,
    )
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    # worker 1 looks elsewhere, as on a machine that does not share the run directory
    other = f'experiment.runs_dir="{tmp_path / "elsewhere"}"'
    procs = start_workers(tmp_path, toml, "--set", "train.steps=4", own=([], ["--set", other]))
    assert wait_all(procs, tmp_path, 120) == [2, 2], logs(tmp_path)
    for index, step in ((0, 2), (1, 0)):
        text = (tmp_path / f"worker{index}.log").read_text(errors="replace")
        assert f"error: this worker starts at step {step} but the workers' mean is 1" in text


# ----------------------------------------------------------------- options (no TensorFlow run)


def test_cluster_config_builds_tf_config():
    assert cluster_config(None, None) is None
    assert cluster_config(1, "node1:2222, node2:2222,[::1]:3333") == {
        "cluster": {"worker": ["node1:2222", "node2:2222", "[::1]:3333"]},
        "task": {"type": "worker", "index": 1},
    }


@pytest.mark.parametrize(
    ("index", "workers", "option", "words"),
    [
        (0, None, "--workers", "--worker-index needs --workers"),
        (None, "a:1,b:1", "--worker-index", "--workers needs --worker-index"),
        (2, "a:1,b:1", "--worker-index", "out of range for 2 worker(s): use 0 to 1"),
        (0, "a:1,b", "--workers", '"b" is not a host:port address'),
        (0, "a:1,b:99999", "--workers", '"b:99999" is not a host:port address'),
        (0, "a:1,,b:2", "--workers", '"" is not a host:port address'),
        (0, "a b:1", "--workers", "is not a host:port address"),
        (0, "a:1,a:1", "--workers", "lists an address twice"),
    ],
)
def test_cluster_config_errors(index, workers, option, words):
    with pytest.raises(click.BadParameter) as info:
        cluster_config(index, workers)
    assert info.value.param_hint == option
    assert words in info.value.message


def test_run_options_error_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from harness.cli import cli

    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["run", "--workers", "127.0.0.1:1,127.0.0.1:2"])
    assert result.exit_code == 2
    assert "Invalid value for --worker-index: --workers needs --worker-index" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["run", "--worker-index", "-1", "--workers", "a:1"])
    assert result.exit_code == 2 and "--worker-index" in result.output
    assert "TF_CONFIG" not in os.environ
