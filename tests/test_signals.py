"""Ctrl-C and SIGTERM during training, through the real CLI in a process of its own: the first
signal says the run stops after the current step, a second one stops it at once, even while
the main thread waits inside one long TensorFlow call, with the MLflow run KILLED and the run
directory's lock released."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import new_store, tiny_overrides
from mlflow.tracking import MlflowClient

from harness.rundir import RunDir

SLOW_STEP = """
import sys
import tensorflow as tf
from harness.cli import main
from harness.training.step import Trainer


@tf.function
def long_call():  # one TensorFlow call that runs for hours: the main thread waits in C++
    x = tf.random.normal([64, 64])
    body = lambda i, x: (i + 1, tf.tanh(tf.matmul(x, x) * 1e-2))
    return tf.while_loop(lambda i, x: i < 2**31 - 1, body, (0, x))[1]


def slow_step(self, step=Trainer.train_step):
    if self.step == 0:
        print("inside a long TensorFlow call", flush=True)
        long_call()
    return step(self)


Trainer.train_step = slow_step
sys.exit(main(sys.argv[1:]))
"""


def _lines(process: subprocess.Popen) -> queue.Queue:
    """The process's output lines, read by a thread (so that a test can wait with a deadline)."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for(lines: queue.Queue, text: str, seen: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            raise AssertionError(f"the run ended before {text!r}:\n" + "".join(seen))
        seen.append(line)
        if text in line:
            return


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_second_signal_stops_a_step_inside_a_long_tensorflow_call(tmp_path, signum):
    store = new_store(tmp_path / "mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", SLOW_STEP, "run", "--quiet", *tiny_overrides(tmp_path)]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = _lines(process)
        _wait_for(lines, "inside a long TensorFlow call", seen)
        process.send_signal(signum)
        name = signum.name
        _wait_for(lines, f"{name}: stopping after the current step", seen, timeout=30)
        assert "Ctrl-C again to stop at once" in seen[-1]
        time.sleep(1)
        assert process.poll() is None  # the step goes on: the first signal only asks
        process.send_signal(signum)
        code = process.wait(timeout=30)  # before: never, until the call returned
        seen += [line for line in iter(lines.get, None)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(seen)
    assert code == 128 + signum, output  # 130 for SIGINT, 143 for SIGTERM
    assert f"{name} again: stopping now, without finishing the step." in output
    run = RunDir(tmp_path / "runs" / "quickstart")
    status = MlflowClient(store).get_run(run.read_run_id()).info
    assert status.status == "KILLED"
    assert not run.lock_file.exists()
    assert not run.checkpoints.exists()  # nothing of the step was saved
