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
    def refused(self):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(RunDir, "_open_lock", refused)  # chmod does not stop root
    refusal = "cannot write in the run directory .*Permission denied"
    with pytest.raises(HarnessError, match=refusal), RunDir(tmp_path).owned():
        pass


TEXT = {"stdout": subprocess.PIPE, "text": True}
TRY = (
    "import sys\n"
    "from harness.rundir import RunDir, RunDirBusy\n"
    "try:\n"
    "    with RunDir(sys.argv[1]).owned('harness run'):\n"
    "        print('won')\n"
    "except RunDirBusy as exc:\n"
    "    print('busy', exc)\n"
)
RACE = (  # rounds of: ready, wait for go<k>, try to own the folder, hold it until done<k>
    "import pathlib, sys, time\n"
    "from harness.rundir import RunDir, RunDirBusy\n"
    "folder = pathlib.Path(sys.argv[1])\n"
    "for k in range(int(sys.argv[2])):\n"
    "    go, done = folder.parent / f'go{k}', folder.parent / f'done{k}'\n"
    "    print('ready', flush=True)\n"
    "    while not go.exists():\n"
    "        time.sleep(0.001)\n"
    "    try:\n"
    "        with RunDir(folder).owned('harness run'):\n"
    "            print('won', flush=True)\n"
    "            while not done.exists():\n"
    "                time.sleep(0.005)\n"
    "    except RunDirBusy as exc:\n"
    "        print('busy', exc, flush=True)\n"
    "    while not done.exists():\n"
    "        time.sleep(0.005)\n"
)


def test_of_processes_racing_for_one_stale_lock_exactly_one_wins(tmp_path):
    run, rounds = RunDir(tmp_path / "x"), 8
    run.path.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **TEXT)
    dead = {"pid": int(gone.stdout), "host": socket.gethostname(), "command": "harness run"}
    command = [sys.executable, "-W", "ignore", "-c", RACE, str(run.path), str(rounds)]
    racers = [subprocess.Popen(command, **TEXT) for _ in range(6)]
    try:
        for k in range(rounds):
            assert all(r.stdout.readline().strip() == "ready" for r in racers)
            assert not run.lock_file.exists()  # the last round's winner removed its lock
            run.lock_file.write_text(json.dumps(dead))  # left by a process that is gone
            (tmp_path / f"go{k}").touch()  # all start at once
            results = {r.pid: r.stdout.readline().strip() for r in racers}
            winners = [pid for pid, line in results.items() if line == "won"]
            assert len(winners) == 1, (k, results)
            named = f"in use by harness run (pid {winners[0]} on host {socket.gethostname()}"
            assert all(named in line for line in results.values() if line != "won"), results
            (tmp_path / f"done{k}").touch()
    finally:
        for k in range(rounds):
            (tmp_path / f"done{k}").touch()
        for r in racers:
            try:
                r.wait(timeout=10)
            except subprocess.TimeoutExpired:  # waiting for a round the failure cut short
                r.kill()
                r.wait()
    assert not run.lock_file.exists()


def test_a_lock_removed_by_its_owner_as_another_opens_it_is_opened_again(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    opened = RunDir._open_lock

    def owner_ends_meanwhile(self):
        fd = opened(self)
        if not hasattr(owner_ends_meanwhile, "once"):  # the old owner removes its file now
            owner_ends_meanwhile.once = True
            self.lock_file.unlink()
        return fd

    monkeypatch.setattr(RunDir, "_open_lock", owner_ends_meanwhile)
    with run.owned():
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()
        other = subprocess.run([sys.executable, "-c", TRY, str(run.path)], **TEXT)
        assert f"in use by harness run (pid {os.getpid()}" in other.stdout  # the file is held
