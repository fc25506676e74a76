"""Writing files that may not fit: a full disk becomes one message, and nothing half-written stays.

Checkpoints, models and upscaled images are written inside :func:`writing`. When the disk (or a
quota, or a file-size limit) runs out, the partial files are removed, what was already on disk
is left as it was, and :class:`DiskFullError` says what was being written, where, and how much
room is left.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import HarnessError

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "file too large")


class DiskFullError(HarnessError):
    """A write ran out of disk space; nothing partial was left behind."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an ``OSError``, or a TensorFlow error carrying one) means "out of room"."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    text = str(exc).lower()
    return any(t in text for t in _FULL_TEXTS)


def free_mib(path: Path) -> float | None:
    """Free space of the file system holding ``path`` (or its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free / 2**20
            except OSError:
                return None
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def writing(what: str, where: Path, partial: Iterable[Path] = (), kept: str = "") -> Iterator[None]:
    """Run a write of ``what`` into ``where``; out of room, remove ``partial`` (paths or glob
    patterns relative to ``where``'s folder) and raise :class:`DiskFullError`.

    ``kept`` says what is still usable (e.g. "the checkpoint of step 400 is intact").
    """
    partial = list(partial)
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        folder = where if where.is_dir() else where.parent
        for p in partial:
            if any(ch in str(p) for ch in "*?["):
                for match in folder.glob(str(p)):
                    _remove(match)
            else:
                _remove(p if p.is_absolute() else folder / p)
        free = free_mib(folder)
        room = f"{free:.1f} MiB free there" if free is not None else "free space unknown"
        raise DiskFullError(
            f"out of disk space while writing {what} to {where} ({room}). Nothing partial was "
            f"left behind{'; ' + kept if kept else ''}. Free some space (or point the output "
            "elsewhere) and run the same command again."
        ) from None


__all__ = ["DiskFullError", "free_mib", "is_disk_full", "writing"]
