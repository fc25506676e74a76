"""TensorFlow's C++ log noise and MLflow's store set-up lines kept off the console: the stream
filter, the forked process that applies it to file descriptor 2, and a real ``harness run`` on a
new MLflow store whose console has none of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import tiny_overrides

from harness.console import NoiseFilter, drop_noise

ROOT = Path(__file__).resolve().parents[1]
ONEDNN = (
    b"E0000 00:00:1796590854.001998    7537 util.cc:131] oneDNN supports DT_UINT8 only on "
    b"platforms with AVX-512. Falling back to the default Eigen-based implementation if present.\n"
)
REMAPPER = (
    b"E0000 00:00:1796590856.951231    7537 meta_optimizer.cc:967] remapper failed: "
    b"INVALID_ARGUMENT: Mutation::Apply error: fanout 'gradient_tape/x/LeakyReluGrad' exist for "
    b"missing node 'x/BiasAdd'.\n"
)
BAR = b"\rtrain:   0%|          | 0/4 [00:00<?, ?step/s]"
ABSL_LINE = re.compile(r"^[EWI]0000 ", re.MULTILINE)
MLFLOW_SETUP = ("Creating initial MLflow database tables", "Updating database tables", "alembic")
"""What MLflow and alembic print while a new SQLite store's tables are made."""


def test_noise_glued_to_a_progress_bar_is_dropped_and_the_bar_kept():
    real = b"E0000 00:00:1.5 1 some_op.cc:12] a real error\n"
    assert drop_noise(BAR + ONEDNN + REMAPPER + real) == BAR + real


def test_filter_passes_a_bar_at_once_and_holds_a_noise_line_until_its_end():
    noise = NoiseFilter()
    assert noise.feed(BAR) == BAR  # no newline, no noise: a redraw is shown now
    half = len(ONEDNN) // 2
    assert noise.feed(BAR + ONEDNN[:half]) == BAR
    assert noise.feed(ONEDNN[half:] + b"Traceback (most recent") == b"Traceback (most recent"
    assert noise.feed(b" call last):\n") == b" call last):\n"
    assert noise.feed(b"E0000 00:00:1.5 1 x.cc:1] cut short") == b""
    assert noise.flush() == b"E0000 00:00:1.5 1 x.cc:1] cut short"


def test_the_filter_process_drops_noise_from_fd_2_and_keeps_a_crashs_last_words():
    code = textwrap.dedent(
        f"""
        import os, sys
        from harness.console import filter_stderr
        assert filter_stderr()
        os.write(2, {BAR + ONEDNN!r} + b"C++ says this\\n")
        print("python says this", file=sys.stderr, flush=True)
        os.write(2, {REMAPPER!r} + b"F0000 00:00:1.5 1 x.cc:1] Check failed: last words\\n")
        os.abort()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])},
    )
    err = out.stderr.decode()
    assert out.returncode != 0  # aborted
    assert "C++ says this" in err and "python says this" in err
    assert "Check failed: last words" in err
    assert "oneDNN" not in err and "remapper" not in err


@pytest.mark.slow
def test_harness_run_prints_no_tensorflow_log_lines(tmp_path):
    """The default console of a real (tiny) run, with and without a user's log level."""
    args = tiny_overrides(tmp_path, steps=2, pretrain=1)
    args += ["--set", "tracking.log_model=false", "--set", "tracking.system_metrics=false"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "done: 2 steps" in out.stdout
    assert not ABSL_LINE.findall(out.stderr), out.stderr
    for marker in ("oneDNN", "remapper", "absl::InitializeLog", "cuda", "cpu_feature_guard"):
        assert marker not in out.stderr
    for marker in MLFLOW_SETUP:  # the store was new: its tables were made by this run
        assert marker not in out.stdout + out.stderr, out.stderr


NEW_STORE = """
import sys
from harness.cli import configure_process
configure_process(verbose=sys.argv[1] == "verbose")
from harness.tracking.store import client
client(sys.argv[2]).search_experiments()
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "verbose"])
def test_mlflow_store_set_up_lines_print_only_with_verbose(tmp_path, verbose):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mode = "verbose" if verbose else "default"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_LOGGING_LEVEL"}
    out = subprocess.run(
        [sys.executable, "-c", NEW_STORE, mode, uri],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert (tmp_path / "mlflow.db").is_file()
    console = out.stdout + out.stderr
    assert ("Creating initial MLflow database tables" in console) is verbose, console
    assert ("Updating database tables" in console) is verbose, console
