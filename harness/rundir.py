"""A run directory's layout: the one place that names the files ``harness run`` writes.

``<experiment.runs_dir>/<experiment.name>/`` holds::

    experiment.toml      the resolved experiment (``harness show`` output)
    mlflow_run_id        the MLflow run id, so a resumed run continues the same MLflow run
    checkpoints/         tf.train.CheckpointManager files
    generator.keras      the final generator
    discriminator.keras  the final discriminator (runs with an [adversarial] table)
    best_<metric>.keras  a kept generator: the best by a validation metric
    kept.json            step and value of each kept generator
    run.lock             held (flock) by the process that owns the folder; names it (pid, host)

:class:`RunDir` is a frozen value over the folder's path; it reads small files (the run id,
the checkpoint state) but imports neither TensorFlow nor MLflow, so every wing may use it.
:func:`checkpoint_readable` and :func:`intact_checkpoint` are the one rule for a checkpoint
that cannot be read (truncated, zero-length, corrupt): it is skipped for the next older one, by
a resumed run and by every command that loads a model alike; they import TensorFlow when
called.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, HarnessWarning

EXPERIMENT_FILE = "experiment.toml"
RUN_ID_FILE = "mlflow_run_id"
CHECKPOINTS = "checkpoints"
GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
KEPT_FILE = "kept.json"
LOCK_FILE = "run.lock"
CONSOLE_LOG = "console.log"
"""The run's messages (validations, kept models, resumes), appended to by each attempt and
logged as the MLflow artifact of that name."""
KEPT_PREFIX = "best_"
MODEL_SUFFIX = ".keras"
FINAL = "generator"
"""The kept-generator name of the final generator (``runs/x@generator`` is ``runs/x``)."""

_CHECKPOINT_STATE = "checkpoint"  # the CheckpointManager's state file in checkpoints/
_LATEST = re.compile(r'^model_checkpoint_path:\s*"[^"]*?(\d+)"', re.M)


def kept_name(metric: str) -> str:
    """The kept generator of a validation metric: ``val/lpips`` or ``lpips`` -> ``best_lpips``."""
    return KEPT_PREFIX + metric.removeprefix("val/")


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory (they need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def experiment_toml(self) -> Path:
        return self.path / EXPERIMENT_FILE

    @property
    def run_id_file(self) -> Path:
        return self.path / RUN_ID_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def generator(self) -> Path:
        return self.path / GENERATOR_FILE

    @property
    def discriminator(self) -> Path:
        return self.path / DISCRIMINATOR_FILE

    @property
    def kept_json(self) -> Path:
        return self.path / KEPT_FILE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @contextlib.contextmanager
    def owned(self, command: str = "harness run") -> Iterator[None]:
        """Own the folder for the block: one process trains (or resumes) a run directory at a
        time. Raises :class:`RunDirBusy` naming the owner; a stale lock (its process, on this
        host, is gone) is taken over with a warning. The lock is removed on leaving.

        The ownership itself is the kernel's: an exclusive ``flock`` on ``run.lock``, which the
        kernel releases when its process ends however it ends, so of several processes that
        find the same stale lock exactly one takes it over. The pid and host written in the
        file only name the owner in the refusal (and hold off a live owner that took the
        folder without a kernel lock)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HarnessError(
                f"cannot create the run directory {self.path} ({exc.strerror or exc}): make "
                "its folder writable, or point experiment.runs_dir elsewhere."
            ) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command}
        me["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
        fd = self._acquire(me)
        if fd is not None:
            _HELD[fd] = self
        try:
            yield
        finally:
            if fd is not None and _HELD.pop(fd, None) is not None:  # unless released already
                self._release(fd)

    def _acquire(self, me: dict) -> int | None:
        """Take the lock for ``me``: the open, locked lock file, or ``None`` when this process
        holds it already (a sweep trial owns its folder while clearing it, then trains in it)."""
        for _ in range(3):
            try:
                fd = self._open_lock()
            except OSError as exc:  # read-only, full, not a folder: say so before any work
                raise self._unwritable(exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held: by this process (another descriptor) or another
                owner = _owner(fd, wait=True)
                os.close(fd)
                if owner.get("pid") == me["pid"] and owner.get("host") == me["host"]:
                    return None
                raise self._busy(owner) from None
            if not self._same_file(fd):  # its owner removed it as we opened it: open again
                os.close(fd)
                continue
            try:
                self._take_over(fd, me)
            except BaseException:
                os.close(fd)  # the kernel lock goes with the descriptor
                raise
            return fd
        raise RunDirBusy(f"could not take {self.lock_file}: other processes keep taking it.")

    def _take_over(self, fd: int, me: dict) -> None:
        """With the kernel lock held, check what the file says and write ``me`` into it."""
        owner = _owner(fd)
        if owner and (owner.get("pid"), owner.get("host")) != (me["pid"], me["host"]):
            if not _stale(owner):  # another host's lock, or a live owner without a kernel lock
                raise self._busy(owner)
            warnings.warn(
                f"{self.lock_file} was left by {_owner_text(owner)}, which is no longer "
                "running; taking the run directory over.",
                HarnessWarning,
                stacklevel=5,
            )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode("utf-8"), 0)
        except OSError as exc:  # a full disk
            raise self._unwritable(exc) from None

    def _release(self, fd: int) -> None:
        """Remove the lock file while still holding it, then let the lock go: a process that
        opened the removed file meanwhile finds it is no longer ``run.lock`` and opens again."""
        try:
            if self._same_file(fd):
                self.lock_file.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def _open_lock(self) -> int:
        """Open (create) ``run.lock`` without emptying it: its inode is what is locked, so the
        file is never replaced while it exists."""
        return os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _same_file(self, fd: int) -> bool:
        """Whether ``fd`` is still the file named ``run.lock``."""
        try:
            named = os.stat(self.lock_file)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)

    def _busy(self, owner: dict) -> RunDirBusy:
        return RunDirBusy(
            f"run directory {self.path} is in use by {_owner_text(owner)}: wait for it "
            "to end (or stop it), or give this run another experiment.name or runs_dir. "
            f"If that process is gone, delete {self.lock_file}."
        )

    def _unwritable(self, exc: OSError) -> HarnessError:
        return HarnessError(
            f"cannot write in the run directory {self.path} ({exc.strerror or exc}): "
            "make it writable, or point experiment.runs_dir elsewhere."
        )

    def kept(self, name: str) -> Path:
        """The file of the kept generator ``name`` (``best_lpips``; ``generator``: the final)."""
        return self.path / f"{name}{MODEL_SUFFIX}"

    def best(self, metric: str) -> Path:
        """``best_<metric>.keras``: the generator kept as the best by ``metric``."""
        return self.kept(kept_name(metric))

    def kept_names(self) -> list[str]:
        """The kept generators present (``best_lpips``, ...), sorted."""
        return sorted(p.stem for p in self.path.glob(f"{KEPT_PREFIX}*{MODEL_SUFFIX}"))

    def model_files(self) -> list[Path]:
        """What a run trained (``--fresh`` moves these aside): checkpoints, the final models,
        the kept generators and their record; those present."""
        fixed = [self.checkpoints, self.generator, self.discriminator, self.kept_json]
        return [p for p in fixed if p.exists()] + [self.kept(n) for n in self.kept_names()]

    def read_run_id(self) -> str:
        """The MLflow run id the run logged to ("" when it has none)."""
        try:
            return self.run_id_file.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, read from the checkpoint state file (``None``
        when there is none)."""
        try:
            text = (self.checkpoints / _CHECKPOINT_STATE).read_text(encoding="utf-8")
        except OSError:
            return None
        match = _LATEST.search(text)
        return int(match.group(1)) if match else None

    def is_run(self) -> bool:
        """Whether the folder is a run directory: it holds an experiment, a run id, a final
        generator or checkpoints."""
        return (
            self.experiment_toml.is_file()
            or self.run_id_file.is_file()
            or self.generator.is_file()
            or self.checkpoints.is_dir()
        )

    @classmethod
    def enclosing(cls, path: str | Path) -> RunDir | None:
        """The run directory ``path`` is or lies in (``runs/x``, ``runs/x/generator.keras``,
        ``runs/x/checkpoints/ckpt-3``), or ``None``."""
        path = Path(path).expanduser()
        for candidate in (path, *path.parents):
            run = cls(candidate)
            if candidate.is_dir() and run.is_run():
                return run
            if candidate == Path(candidate.anchor) or str(candidate) in ("", "."):
                break
        return None


def checkpoint_readable(prefix: str | Path) -> bool:
    """Whether every variable of checkpoint ``prefix`` can be read (not truncated or corrupt)."""
    import tensorflow as tf  # heavy: only reading a checkpoint's variables needs it

    try:
        reader = tf.train.load_checkpoint(str(prefix))
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception:  # DataLossError, NotFoundError, OutOfRangeError, IndexError, ...
        return False
    return True


def intact_checkpoint(directory: str | Path) -> tuple[str | None, list[str]]:
    """The newest readable checkpoint of the CheckpointManager folder ``directory`` and the
    names of the newer ones skipped as unreadable (``None`` when none can be read)."""
    import tensorflow as tf  # heavy: the checkpoint state and variables are TensorFlow's

    state = tf.train.get_checkpoint_state(str(directory))
    prefixes = list(state.all_model_checkpoint_paths) if state else []
    if state and state.model_checkpoint_path and state.model_checkpoint_path not in prefixes:
        prefixes.append(state.model_checkpoint_path)
    skipped = []
    for prefix in reversed(prefixes):  # newest first
        path = Path(directory) / prefix if not Path(prefix).is_absolute() else Path(prefix)
        if checkpoint_readable(path):
            return str(path), skipped
        skipped.append(path.name)
    return None, skipped


_HELD: dict[int, RunDir] = {}
"""The lock files this process holds (descriptor -> run directory); whoever pops one releases it."""


def release_owned() -> None:
    """Release every run directory this process owns now: for a process about to end at once
    (``os._exit`` skips the ``owned`` blocks' own clean-up; the kernel would let the locks go,
    but their files would stay behind to be taken over with a warning)."""
    for fd in list(_HELD):
        run = _HELD.pop(fd, None)
        if run is not None:
            run._release(fd)


class RunDirBusy(HarnessError):
    """Another process owns the run directory (its ``run.lock`` names it)."""


def _owner(fd: int, wait: bool = False) -> dict:
    """The owner written in the open lock file ``fd`` (``{}`` when it is empty). With ``wait``
    (the file is locked by another process), give an owner that has just taken the kernel lock
    a moment to write its name over the empty file or the dead owner's name it found."""
    owner: dict | None = None
    for _ in range(100 if wait else 1):
        raw = os.pread(fd, 4096, 0)
        try:
            owner = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except ValueError:  # half written, or not a lock of ours
            owner = None
        if not isinstance(owner, dict):
            owner = None
        elif not wait or (owner and not _stale(owner)):
            return owner
        time.sleep(0.01)
    return owner or {"pid": 0, "host": "", "command": "an unreadable lock"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _stale(owner: dict) -> bool:
    """A lock of this host whose process is gone (another host's lock cannot be checked)."""
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    return not _alive(pid)


def _owner_text(owner: dict) -> str:
    what = owner.get("command") or "a process"
    text = f"{what} (pid {owner.get('pid', '?')} on host {owner.get('host') or '?'}"
    return text + (f", started {owner['started']})" if owner.get("started") else ")")


__all__ = [
    "CONSOLE_LOG",
    "CHECKPOINTS",
    "DISCRIMINATOR_FILE",
    "EXPERIMENT_FILE",
    "FINAL",
    "GENERATOR_FILE",
    "KEPT_FILE",
    "KEPT_PREFIX",
    "LOCK_FILE",
    "MODEL_SUFFIX",
    "RUN_ID_FILE",
    "RunDir",
    "checkpoint_readable",
    "intact_checkpoint",
    "release_owned",
    "RunDirBusy",
    "kept_name",
]
