"""TensorFlow's oneDNN CPU kernels: importing harness turns them on unless the user chose, and a
run says so when TensorFlow loaded first with them off."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

import harness
from harness.training import precision

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="TensorFlow's oneDNN default and its switch are those of x86-64 Linux builds",
)

PROBE = """
import json, sys
order = sys.argv[1]
if order == "tf-first":
    import tensorflow
import harness
from harness.training import precision
print(json.dumps({"on": precision.onednn_enabled(), "advice": precision.onednn_advice()}))
"""


def probe(order: str, value: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != harness.ONEDNN_ENV}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if value is not None:
        env[harness.ONEDNN_ENV] = value
    out = subprocess.run(
        [sys.executable, "-c", PROBE, order],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_importing_harness_first_turns_onednn_on_and_a_users_choice_is_kept():
    assert probe("harness-first", None) == {"on": True, "advice": None}
    # the user's "0" wins, and is not warned about
    assert probe("harness-first", "0") == {"on": False, "advice": None}


def test_tensorflow_loaded_first_keeps_its_default_and_the_run_is_told_why():
    seen = probe("tf-first", None)
    # TensorFlow's own default: on for CPUs with AVX-512 VNNI/BF16 or AMX, off elsewhere
    if seen["on"]:
        assert seen["advice"] is None
    else:
        assert "oneDNN CPU kernels are off" in seen["advice"]
        assert f"export {harness.ONEDNN_ENV}=1" in seen["advice"]


def test_this_test_process_runs_with_onednn():
    # tests import harness (conftest) before TensorFlow: CLI subprocesses and in-process
    # computations use the same kernels
    assert os.environ[harness.ONEDNN_ENV] in ("1", "true", "True")
    assert precision.onednn_enabled()
