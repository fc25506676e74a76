"""Every file the harness writes: whole or not at all, and a full disk is one message.

:func:`atomic` is the one way to write a file: the writer fills a temporary name beside the
target (same folder, so the rename cannot cross file systems; same suffix, so writers that pick
a format by suffix still do), and only a complete file is renamed into place. Any failure
removes the temporary and leaves the old file untouched. :func:`write_text`,
:func:`write_bytes` and :func:`write_json` (always valid JSON: no ``NaN`` or ``Infinity``) are
built on it. Checkpoint folders, which TensorFlow writes and swaps itself, use :func:`writing`.

When the disk (or a quota, or a file-size limit) runs out, :class:`DiskFullError` says what was
being written, where, and how much room is left.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
            else:  # a bare name lies in the folder; a path with folders is taken as given
                _remove(folder / p if len(Path(p).parts) == 1 else Path(p))
        free = free_mib(folder)
        room = f"{free:.1f} MiB free there" if free is not None else "free space unknown"
        raise DiskFullError(
            f"out of disk space while writing {what} to {where} ({room}). Nothing partial was "
            f"left behind{'; ' + kept if kept else ''}. Free some space (or point the output "
            "elsewhere) and run the same command again."
        ) from None


def temporary(target: Path) -> Path:
    """The temporary name :func:`atomic` writes ``target`` under: hidden, beside it, with its
    suffix (``out.png`` -> ``.out.png.<pid>.tmp.png``)."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")


@contextmanager
def atomic(target: str | Path, what: str = "", kept: str = "") -> Iterator[Path]:
    """Write ``target`` whole or not at all: the block writes the yielded temporary path; when
    it ends without error the temporary replaces ``target`` (a folder written into an existing
    empty folder fills it: :func:`_replace_folder`). On any error (or Ctrl-C) the
    temporary is removed and ``target`` keeps its old content; out of room, the error is
    :class:`DiskFullError` naming ``what`` (default: the file's name)."""
    target = Path(target)
    tmp = temporary(target)
    try:
        with writing(what or str(target.name), target, kept=kept):
            yield tmp
            if tmp.is_dir():
                _replace_folder(tmp, target)
            else:
                os.replace(tmp, target)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def _replace_folder(tmp: Path, target: Path) -> None:
    """Put a folder written whole into place (an old one is removed only after).

    An existing empty folder is kept and receives the new entries, one rename each: its
    permissions, the links to it and a shell inside it keep working (a swap would leave a
    shell in a deleted folder). Sub-folders go first, so a reader that waits for a file (a
    SavedModel's ``saved_model.pb``) finds the rest in place."""
    if target.is_dir() and not any(target.iterdir()):
        _move_entries(tmp, target)
        return
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old.exists():
            os.replace(old, target)
        raise
    _remove(old)


def _move_entries(tmp: Path, target: Path) -> None:
    """Move ``tmp``'s entries into the empty folder ``target``; on failure, move them back."""
    moved: list[str] = []
    try:
        for entry in sorted(tmp.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            os.replace(entry, target / entry.name)
            moved.append(entry.name)
    except BaseException:
        for name in reversed(moved):
            os.replace(target / name, tmp / name)
        raise
    tmp.rmdir()


def writable_folder(folder: str | Path, option: str) -> Path:
    """Create ``folder`` and check that a file can be written in it, before any work whose
    results go there; :class:`~harness.errors.HarnessError` names ``option`` otherwise."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temporary(folder / "write-check")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(
            f"{option} {folder}: cannot write there ({exc.strerror or exc}); give a folder you "
            "can write in."
        ) from None
    return folder


def write_bytes(target: str | Path, data: bytes, what: str = "") -> None:
    """Write ``data`` to ``target`` atomically (:func:`atomic`)."""
    with atomic(target, what) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str, what: str = "") -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically (:func:`atomic`)."""
    write_bytes(target, text.encode("utf-8"), what)


def write_json(
    target: str | Path, value: Any, what: str = "", indent: int | None = 2, null: bool = False
) -> None:
    """Write ``value`` as standard JSON atomically. JSON has no NaN or infinity: with ``null``
    such a number is written as ``null``, else it raises ``ValueError``."""
    if null:
        value = _finite_or_null(value)
    text = json.dumps(value, indent=indent, allow_nan=False)
    write_text(target, text + "\n", what)


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value


__all__ = [
    "DiskFullError",
    "atomic",
    "free_mib",
    "is_disk_full",
    "temporary",
    "write_bytes",
    "write_json",
    "writable_folder",
    "write_text",
    "writing",
]
