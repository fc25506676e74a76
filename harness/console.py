"""The process's console: TensorFlow's C++ log noise (CUDA probing, oneDNN, CPU features,
absl's preamble, Grappler's remapper) dropped from standard error, for the CLI and the sweep's
trial processes alike, and MLflow's store set-up lines (:func:`quiet_mlflow`). Importing this
module changes nothing; :func:`quiet_tensorflow` and :func:`quiet_mlflow` do.

TensorFlow's C++ code writes to file descriptor 2 directly, at import and while training, so
a filter on Python's ``sys.stderr`` never sees it. :func:`filter_stderr` points descriptor 2 at
a pipe read by a small forked process that drops :data:`TF_NOISE` and passes every other byte
through unchanged; a forked reader, not a thread, so that what a crashing process writes last
(a C++ ``Check failed``, a segfault's trace) still reaches the terminal."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import select
import signal
import sys
import tempfile
import time
from collections.abc import Iterator

_ABSL = rb"\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] "  # absl's header after the level letter
TF_NOISE = re.compile(
    rb"(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IW]" + _ABSL + rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "  # INFO and WARNING
    rb"|To enable the following instructions: "  # the CPU feature line's second half
    rb"|E" + _ABSL + rb"(Unable to register cu(DNN|FFT|BLAS) factory|failed call to cuInit"
    rb"|oneDNN supports DT_\w+ only|remapper failed))"
    rb"[^\n]*(\n|$)"
)
"""TensorFlow's C++ lines that say nothing a user can act on: absl's and TensorFlow's INFO and
WARNING lines (CUDA probing, oneDNN, CPU features), CUDA's factory registrations on a machine
without a GPU, oneDNN's uint8 fallback and Grappler's remapper giving up on a fusion. They may
start mid-line (after a progress bar without its newline); other ``E`` lines are kept."""

_HEAD = re.compile(rb"[EIW]\d{4} \d|WARNING: All|To enable|\d{4}-\d\d-\d\d \d")
"""Where a noise line may begin: a tail that holds this waits for its newline."""
_HOLD_S = 0.3  # a held tail that no newline follows within this is written as it is


def drop_noise(data: bytes) -> bytes:
    """``data`` (whole lines) without its :data:`TF_NOISE` lines; a noise line that began after
    other text on the same line (a progress bar) leaves that text."""
    return TF_NOISE.sub(b"", data)


class NoiseFilter:
    """Drops :data:`TF_NOISE` from a stream of bytes fed in pieces. Text after the last
    newline is passed on at once (a progress bar redraws itself without one) unless it may be
    the start of a noise line, which waits for its newline or :meth:`flush`."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        text = self.pending + data
        cut = text.rfind(b"\n") + 1
        out, rest = drop_noise(text[:cut]), text[cut:]
        head = _HEAD.search(rest)
        if head is None:
            self.pending = b""
            return out + rest
        self.pending = rest[head.start() :]
        return out + rest[: head.start()]

    def flush(self) -> bytes:
        out, self.pending = drop_noise(self.pending), b""
        return out


def _pump(source: int, target: int) -> None:
    """Copy ``source`` to ``target`` through a :class:`NoiseFilter` until end of file."""
    noise = NoiseFilter()
    while True:
        ready, _, _ = select.select([source], [], [], _HOLD_S if noise.pending else None)
        data = os.read(source, 65536) if ready else b""
        out = noise.feed(data) if data else noise.flush()
        with contextlib.suppress(OSError):
            if out:
                os.write(target, out)
        if ready and not data:
            return


_filter: dict[str, int] = {}  # the filter process's pid and the real stderr, once installed


def filter_stderr() -> bool:
    """Send file descriptor 2 through a forked process that drops :data:`TF_NOISE`, and point
    ``sys.stderr`` straight at the real standard error (a terminal stays a terminal for tqdm and
    Click). Returns whether the filter is in place (``False`` without a standard error or
    ``fork``); a second call does nothing. At exit the filter is given 2 s to write the rest."""
    if _filter:
        return True
    if not hasattr(os, "fork"):
        return False
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no standard error at all
        return False
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (real, read_end, write_end):
            os.close(fd)
        return False
    if pid == 0:  # the filter: forwards until every writer is gone; Ctrl-C is for the others
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.close(write_end)
            for fd in (0, 1):  # the caller's pipes must see their end when it exits
                with contextlib.suppress(OSError):
                    os.close(fd)
            _pump(read_end, real)
        except BaseException:  # noqa: BLE001 - nothing to report to: exit
            code = 1
        finally:
            os._exit(code)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=encoding, errors="backslashreplace")
    _filter.update(pid=pid, real=real, pipe=os.fstat(2).st_ino)
    atexit.register(_finish_filter)
    return True


def _finish_filter() -> None:
    """Close this process's end of the pipe and wait (2 s at most: a child process may still
    hold it) until the filter has written what it holds."""
    pid = _filter.get("pid")
    if not pid:
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        if os.fstat(2).st_ino == _filter["pipe"]:  # else someone has restored fd 2 already
            os.dup2(_filter["real"], 2)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            break
        if done:
            break
        time.sleep(0.01)
    _filter.clear()


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the block; afterwards every line of it
    that is not :data:`TF_NOISE` is written to the real stderr (for a block of a process that
    does not filter its whole standard error)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = drop_noise(tmp.read())
            if kept:
                os.write(2, kept)


QUIET_ENV = "HARNESS_QUIET_TENSORFLOW"
"""Set to ``1`` by :func:`quiet_tensorflow`, so the processes a command starts (a sweep's
trials) filter their output as well; ``harness --verbose`` leaves it unset."""


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ noise for the rest of the process: ``TF_CPP_MIN_LOG_LEVEL=2``
    unless the user set a level, and :func:`filter_stderr` for what logs regardless of it
    (absl's start-up lines, the ``E`` lines of :data:`TF_NOISE`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ[QUIET_ENV] = "1"
    filter_stderr()


MLFLOW_NOISE = ("mlflow.store", "alembic")
"""The loggers of MLflow's store set-up: on a new SQLite store, ``mlflow.store.db.utils`` says
"Creating initial MLflow database tables..." and "Updating database tables" (INFO), and the
migrations it runs are alembic's (``Context impl SQLiteImpl.``, ``Running upgrade ...``)."""


def quiet_mlflow() -> None:
    """MLflow's store set-up lines (:data:`MLFLOW_NOISE`) off the console: those loggers at
    WARNING, so a first run starts with the run's own lines; their warnings and errors print.

    MLflow gives its ``mlflow`` logger a console handler at INFO when imported (and sets
    ``alembic`` to WARNING there unless ``MLFLOW_LOGGING_LEVEL`` says otherwise); a level set
    on a logger below ``mlflow`` is left alone by that, so this works before or after the
    import."""
    for name in MLFLOW_NOISE:
        logging.getLogger(name).setLevel(logging.WARNING)


__all__ = [
    "MLFLOW_NOISE",
    "QUIET_ENV",
    "TF_NOISE",
    "NoiseFilter",
    "drop_noise",
    "filter_stderr",
    "filtered_stderr",
    "quiet_mlflow",
    "quiet_tensorflow",
]
