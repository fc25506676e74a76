"""SIGINT/SIGTERM handling, one implementation for the trainer and the sweep worker.

- :func:`signals_to_flag`: the training loop's way. A first SIGINT or SIGTERM only sets a flag
  (and says so); the loop saves a checkpoint and stops after the current step. A second one
  stops the process at once, even while the main thread is inside one long TensorFlow call.
- :func:`handling`: SIGINT and SIGTERM call a given handler inside a block (the sweep worker's
  stops its trial processes and raises :class:`KeyboardInterrupt`), the old handlers back after.

Both do nothing outside the main thread (Python delivers signals there only).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handling(handler: Callable[[int, Any], Any]) -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM call ``handler``; the old handlers come back after.
    Outside the main thread nothing changes."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


ABORT_WAIT_S = 10.0
"""How long a second signal waits for the ``abort`` clean-up (the MLflow run's end) before the
process ends regardless."""


@contextlib.contextmanager
def signals_to_flag(
    flag: dict[str, int],
    say: Callable[[str], None] = print,
    abort: Callable[[int], None] | None = None,
) -> Iterator[None]:
    """Inside the block, a first SIGINT or SIGTERM sets ``flag["signal"]`` and ``say``s that
    the run stops after the current step; a second one says it stops now, calls ``abort`` with
    the signal (for what must not be left behind: the MLflow run's state, the run directory's
    lock; given :data:`ABORT_WAIT_S` at most) and ends the process at once with status
    128 + the signal (130 for SIGINT, 143 for SIGTERM).

    Python runs a signal handler only between bytecodes of the main thread, never while that
    thread waits in C++ (a training step is one TensorFlow call, minutes long with a huge
    batch). CPython's C-level handler writes the signal's number to the ``set_wakeup_fd`` file
    descriptor as the signal arrives, so a thread reading its other end hears each signal at
    once; TensorFlow releases the GIL while it computes, so that thread runs meanwhile."""
    if not _main_thread():
        yield
        return
    heard, wakeup = socket.socketpair()
    wakeup.setblocking(False)  # set_wakeup_fd's requirement: the C handler must never block
    watcher = threading.Thread(
        target=_watch, args=(heard, flag, say, abort), name="harness-signals", daemon=True
    )
    watcher.start()
    previous_fd = signal.set_wakeup_fd(wakeup.fileno(), warn_on_full_buffer=False)
    try:
        with handling(lambda signum, frame: flag.setdefault("signal", signum)):
            yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        wakeup.close()  # the watcher reads the end of the stream and ends
        watcher.join(timeout=ABORT_WAIT_S)
        heard.close()


def _watch(
    heard: socket.socket,
    flag: dict[str, int],
    say: Callable[[str], None],
    abort: Callable[[int], None] | None,
) -> None:
    """Read the signal numbers CPython writes to the wakeup descriptor, until it is closed. The
    Python-level handler sets ``flag`` too (at once, when the main thread runs Python), but
    only this thread counts the signals."""
    count = 0
    while True:
        try:
            data = heard.recv(64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum not in (signal.SIGINT, signal.SIGTERM):
                continue  # another signal with a Python handler (SIGALRM, ...): not ours
            name = signal.Signals(signum).name
            count += 1
            if count == 1:
                flag.setdefault("signal", signum)
                _say(
                    say,
                    f"{name}: stopping after the current step (a checkpoint is saved); "
                    "press Ctrl-C again to stop at once.",
                )
                continue
            _say(say, f"{name} again: stopping now, without finishing the step.")
            _abort_now(signum, abort)


def _say(say: Callable[[str], None], text: str) -> None:
    with contextlib.suppress(Exception):  # a closed console must not stop the signal's work
        say(text)


def _abort_now(signum: int, abort: Callable[[int], None] | None) -> None:
    """Run ``abort`` (in a thread, waited for :data:`ABORT_WAIT_S`), then end the process."""
    if abort is not None:
        failed: list[BaseException] = []

        def clean_up() -> None:
            try:
                abort(signum)
            except BaseException as exc:  # noqa: BLE001 - said below; the process ends anyway
                failed.append(exc)

        worker = threading.Thread(target=clean_up, name="harness-abort", daemon=True)
        worker.start()
        worker.join(ABORT_WAIT_S)
        if worker.is_alive() or failed:
            why = f"{type(failed[0]).__name__}: {failed[0]}" if failed else "it took too long"
            print(f"warning: the run was not closed cleanly ({why})", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(128 + signum)  # at once: the main thread may be inside TensorFlow's C++ code


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler: raise ``KeyboardInterrupt`` naming the signal."""
    raise KeyboardInterrupt(f"signal {signum}")


__all__ = ["ABORT_WAIT_S", "handling", "raise_interrupt", "signals_to_flag"]
