"""The public super-resolution data sets: where each archive lives, and getting one into
``<dest>/<name>``.

Safe to interrupt and re-run: the archive is downloaded by :func:`harness.data.fetch.download`
(resumable, checked against its size and sha256), extracted into a temporary folder next to the
destination and only then moved into place with one atomic rename. A corrupt or truncated archive
is an error and leaves no half-extracted folder behind.

``HARNESS_DATA_MIRROR=http://host/path`` fetches every archive from ``<mirror>/<archive name>``
instead of its original host (an internal mirror, or a local server in tests).
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.data import fetch
from harness.data.fetch import DownloadError, Progress
from harness.data.images import is_image_file

MIRROR_ENV = "HARNESS_DATA_MIRROR"

__all__ = ["DATASETS", "Dataset", "DownloadError", "download", "extract", "get", "source_url"]


@dataclass(frozen=True)
class Dataset:
    """One downloadable data set: where the archive lives and which members are the HR images.

    ``sha256`` is ``None`` where the archive's digest is not published; the download then prints
    the digest it computed so it can be pinned with ``--sha256``.
    """

    name: str
    url: str
    members: str  # fnmatch pattern of the HR image files inside the archive
    sha256: str | None = None
    size: int | None = None  # bytes, when known
    description: str = ""

    @property
    def archive(self) -> str:
        return PurePosixPath(self.url.split("?", 1)[0]).name


_SELFEXSR = "https://uofi.box.com/shared/static/"
DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "div2k",
            "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
            "*DIV2K_train_HR/*.png",
            description="DIV2K training HR, 800 2K images (Agustsson & Timofte 2017), about 3.5 GB",
        ),
        Dataset(
            "div2k_valid",
            "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
            "*DIV2K_valid_HR/*.png",
            description="DIV2K validation HR, 100 2K images, about 450 MB",
        ),
        Dataset(
            "set5",
            _SELFEXSR + "kfahv87nfe8ax910l85dksyl2q212voc.zip",
            "*image_SRF_4/*_HR.png",
            description="Set5 (Bevilacqua et al. 2012), from Huang et al.'s SelfExSR release",
        ),
        Dataset(
            "set14",
            _SELFEXSR + "igsnfieh4lz68l926l8xbklwsnnk8we9.zip",
            "*image_SRF_4/*_HR.png",
            description="Set14 (Zeyde et al. 2010), from the SelfExSR release, about 86 MB",
        ),
        Dataset(
            "bsd100",
            _SELFEXSR + "qgctsplb8txrksm9to9x01zfa4m61ngq.zip",
            "*image_SRF_4/*_HR.png",
            description="BSD100 (Martin et al. 2001), from the SelfExSR release, about 568 MB",
        ),
        Dataset(
            "urban100",
            _SELFEXSR + "65upg43jjd0a4cwsiqgl6o6ixube6klm.zip",
            "*image_SRF_4/*_HR.png",
            description="Urban100 (Huang et al. 2015), from the SelfExSR release, about 1.1 GB",
        ),
    )
}
"""The known data sets. No archive digest is published by these hosts, so none is pinned here."""


def get(name: str) -> Dataset:
    """The :class:`Dataset` called ``name``; an unknown name lists the known ones."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise DownloadError(f'unknown data set "{name}". Known: {", ".join(DATASETS)}.') from None


def source_url(ds: Dataset, url: str | None = None) -> str:
    """Where to fetch ``ds``: ``url``, else ``$HARNESS_DATA_MIRROR/<archive>``, else its host."""
    if url:
        return url
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return mirror.rstrip("/") + "/" + ds.archive
    return ds.url


def _safe_members_zip(archive: zipfile.ZipFile, dest: Path) -> None:
    root = dest.resolve()
    for info in archive.infolist():
        out = (dest / info.filename).resolve()
        if root != out and root not in out.parents:
            raise DownloadError(f"archive member {info.filename} points outside the archive.")
    archive.extractall(dest)


def extract(archive: Path, dest: Path) -> None:
    """Extract a zip or tar archive into ``dest``; a damaged archive is a :class:`DownloadError`."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise DownloadError(f"archive {archive} is corrupt (member {bad}).")
                _safe_members_zip(zf, dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
        else:
            raise DownloadError(
                f"{archive} is not a readable zip or tar archive: corrupt or truncated."
            )
    except DownloadError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise DownloadError(f"archive {archive} is corrupt or truncated: {exc}.") from None


def _collect(tree: Path, pattern: str, out: Path) -> int:
    """Move the image files of ``tree`` matching ``pattern`` (relative posix paths) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if path.is_file() and is_image_file(path) and fnmatch.fnmatch(rel, pattern):
            name = path.name.replace("_HR.", ".")
            if (out / name).exists():
                name = rel.replace("/", "_")
            path.replace(out / name)
            count += 1
    return count


def download(
    name: str,
    dest: str | os.PathLike[str] = "data",
    url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Fetch, verify and extract data set ``name`` into ``<dest>/<name>``; returns that folder.

    An existing ``<dest>/<name>`` is kept (nothing fetched) unless ``force``. Archives stay in
    ``<dest>/.downloads`` so a re-run does not fetch again.
    """
    ds = get(name)
    dest = Path(dest).expanduser()
    final = dest / ds.name
    if final.exists() and not force:
        log(f"{final} already exists; nothing to do (--force replaces it).")
        return final
    expected = (sha256 or ds.sha256 or "").lower() or None
    where = source_url(ds, url)
    downloads = dest / ".downloads"
    archive = downloads / ds.archive
    if archive.exists() and expected and fetch.sha256(archive) != expected:
        archive.unlink()  # a stale or damaged earlier download: fetch again
    if not archive.exists():
        log(f"fetching {where}")
        hint = f"Check the network, or point {MIRROR_ENV} or --url at a copy of the archive."
        fetch.download(where, archive, digest=expected, progress=progress, hint=hint)
    if not expected:
        digest = fetch.sha256(archive)
        log(f"sha256 {digest} (no published digest to check against; pin it with --sha256)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{ds.name}-", dir=dest))
    try:
        try:
            extract(archive, tmp / "tree")
        except DownloadError:
            archive.unlink(missing_ok=True)  # a damaged archive must not be reused by a re-run
            raise
        count = _collect(tmp / "tree", ds.members, tmp / ds.name)
        if count == 0:
            raise DownloadError(
                f"{ds.archive} holds no files matching {ds.members}: not the expected archive "
                f"for {ds.name}."
            )
        if final.exists():
            shutil.rmtree(final)
        (tmp / ds.name).replace(final)
        log(f"{count} images in {final}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
