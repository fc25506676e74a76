"""A run directory is owned by one process: a second owner is refused with a message naming the
first, and a lock left by a process that is gone is taken over with a warning."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from harness.errors import HarnessError, HarnessWarning
from harness.rundir import RunDir, RunDirBusy

HOLD = (
    "import sys, time\n"
    "from harness.rundir import RunDir\n"
    "with RunDir(sys.argv[1]).owned('harness run'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


def test_a_second_process_is_refused_and_a_dead_owner_is_taken_over(tmp_path):
    run = RunDir(tmp_path / "runs" / "x")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = rf"pid {holder.pid} on host {socket.gethostname()}"
        with pytest.raises(RunDirBusy, match=busy), run.owned():
            pass
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without removing its lock
        holder.wait()
    assert json.loads(run.lock_file.read_text())["pid"] == holder.pid
    taken = "no longer running; taking the run directory over"
    with pytest.warns(HarnessWarning, match=taken), run.owned():
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()
    assert not run.lock_file.exists()
    assert sorted(p.name for p in run.path.iterdir()) == []  # no temporary left either


def test_another_hosts_lock_is_never_taken_over(tmp_path):
    run = RunDir(tmp_path)
    run.lock_file.write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "harness run"}))
    with (
        pytest.raises(RunDirBusy, match=r"pid 1 on host elsewhere.*delete .*run.lock"),
        run.owned(),
    ):
        pass


def test_the_owner_may_enter_again_and_keeps_its_lock(tmp_path):
    run = RunDir(tmp_path)
    with run.owned("harness sweep trial 3"):
        with run.owned():
            pass
        assert "sweep trial 3" in run.lock_file.read_text()
    assert not run.lock_file.exists()


def test_a_read_only_run_directory_is_one_message_before_any_work(tmp_path, monkeypatch):
    def refused(self, owner):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(RunDir, "_create_lock", refused)  # chmod does not stop root
    refusal = "cannot write in the run directory .*Permission denied"
    with pytest.raises(HarnessError, match=refusal), RunDir(tmp_path).owned():
        pass
