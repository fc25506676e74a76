"""SIGINT/SIGTERM handling, one implementation for the trainer and the sweep worker.

- :func:`signals_to_flag`: the training loop's way. A first SIGINT or SIGTERM only sets a flag;
  the loop saves a checkpoint and stops at the next step. A second one stops at once.
- :func:`handling`: SIGINT and SIGTERM call a given handler inside a block (the sweep worker's
  stops its trial processes and raises :class:`KeyboardInterrupt`), the old handlers back after.

Both do nothing outside the main thread (Python delivers signals there only).
"""

from __future__ import annotations

import contextlib
import signal
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


@contextlib.contextmanager
def signals_to_flag(flag: dict[str, int]) -> Iterator[None]:
    """SIGINT/SIGTERM set ``flag["signal"]``; a second signal raises ``KeyboardInterrupt``."""

    def handler(signum: int, frame: Any) -> None:
        if flag.get("signal"):  # a second signal: stop now
            raise KeyboardInterrupt
        flag["signal"] = signum

    with handling(handler):
        yield


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler: raise ``KeyboardInterrupt`` naming the signal."""
    raise KeyboardInterrupt(f"signal {signum}")


__all__ = ["handling", "raise_interrupt", "signals_to_flag"]
