"""SIGINT/SIGTERM handling, one implementation for the trainer and the sweep worker.

- :func:`signals_to_flag`: the training loop's way. A first SIGINT or SIGTERM only sets a flag;
  the loop saves a checkpoint and stops at the next step. A second one stops at once.
- :func:`term_as_interrupt`: a sweep worker's way. SIGTERM raises :class:`KeyboardInterrupt`,
  so the same cleanup as Ctrl-C stops its trial processes.

Both do nothing outside the main thread (Python delivers signals there only).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_to_flag(flag: dict[str, int]) -> Iterator[None]:
    """SIGINT/SIGTERM set ``flag["signal"]``; a second signal raises ``KeyboardInterrupt``."""
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.get("signal"):  # a second signal: stop now
            raise KeyboardInterrupt
        flag["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler: raise ``KeyboardInterrupt`` naming the signal."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def term_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` inside the block; the old handler comes back after."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = ["raise_interrupt", "signals_to_flag", "term_as_interrupt"]
