"""``harness data download`` against a local HTTP server; ``harness data check``."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import cli
from harness.data import datasets, fetch


def _png(seed: int, size=(24, 20)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3)).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _selfexsr_zip() -> bytes:
    """An archive laid out like the SelfExSR releases (HR and LR per scale)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(1, 4):
            zf.writestr(f"Set5/image_SRF_4/img_00{i}_SRF_4_HR.png", _png(i))
            zf.writestr(f"Set5/image_SRF_4/img_00{i}_SRF_4_LR.png", _png(10 + i, (6, 5)))
            zf.writestr(f"Set5/image_SRF_2/img_00{i}_SRF_2_HR.png", _png(20 + i))
    return buf.getvalue()


class Server:
    """Serves ``files`` on 127.0.0.1; honours ``Range`` unless told not to; records requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges = True
        self.cut_after: int | None = None  # send only this many body bytes, then hang up
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                outer.requests.append((name, self.headers.get("Range")))
                if name not in outer.files:
                    self.send_error(404)
                    return
                body = outer.files[name]
                start = 0
                rng = self.headers.get("Range")
                if rng and outer.ranges:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if outer.cut_after is not None:
                    part = part[: outer.cut_after]
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    srv = Server()
    monkeypatch.setenv(datasets.MIRROR_ENV, srv.base)
    yield srv
    srv.close()


ARCHIVE = datasets.get("set5").archive


def _leftovers(dest: Path) -> list[str]:
    """Anything in ``dest`` besides finished data sets and the archive store."""
    return sorted(
        p.name for p in dest.iterdir() if p.name.startswith(".") and p.name != ".downloads"
    )


def test_download_verifies_extracts_and_renames(server, tmp_path):
    body = _selfexsr_zip()
    server.files[ARCHIVE] = body
    digest = hashlib.sha256(body).hexdigest()
    folder = datasets.download("set5", tmp_path, sha256=digest)
    assert folder == tmp_path / "set5"
    assert sorted(p.name for p in folder.iterdir()) == [
        "img_001_SRF_4.png",
        "img_002_SRF_4.png",
        "img_003_SRF_4.png",
    ]
    assert (folder / "img_002_SRF_4.png").read_bytes() == _png(2)
    assert _leftovers(tmp_path) == []
    assert not list((tmp_path / ".downloads").glob("*.part"))
    # a re-run does nothing; --force rebuilds from the kept archive without fetching again
    n = len(server.requests)
    datasets.download("set5", tmp_path, sha256=digest)
    datasets.download("set5", tmp_path, sha256=digest, force=True)
    assert len(server.requests) == n and len(list(folder.iterdir())) == 3


def test_wrong_checksum_is_an_error_and_leaves_nothing(server, tmp_path):
    server.files[ARCHIVE] = _selfexsr_zip()
    with pytest.raises(datasets.DownloadError, match="expected 0000.*run the command again"):
        datasets.download("set5", tmp_path, sha256="0" * 64)
    assert not (tmp_path / "set5").exists()
    assert not (tmp_path / ".downloads" / ARCHIVE).exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_archive_is_an_error_and_leaves_nothing_extracted(server, tmp_path, damage):
    body = _selfexsr_zip()
    server.files[ARCHIVE] = body[: len(body) // 2] if damage == "truncated" else b"x" * 5000
    with pytest.raises(datasets.DownloadError, match="corrupt or truncated"):
        datasets.download("set5", tmp_path)  # no digest known: the archive itself is checked
    assert not (tmp_path / "set5").exists()
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / ".downloads" / ARCHIVE).exists()  # a re-run fetches afresh


def test_interrupted_download_resumes_with_range(server, tmp_path):
    body = _selfexsr_zip()
    server.files[ARCHIVE] = body
    server.cut_after = 1000  # the connection breaks after 1000 bytes
    with pytest.raises(datasets.DownloadError, match="run the same command again to resume"):
        datasets.download("set5", tmp_path)
    part = tmp_path / ".downloads" / (ARCHIVE + ".part")
    assert part.stat().st_size == 1000
    assert not (tmp_path / "set5").exists()
    server.cut_after = None
    datasets.download("set5", tmp_path, sha256=hashlib.sha256(body).hexdigest())
    assert server.requests[-1] == (ARCHIVE, "bytes=1000-")
    assert len(list((tmp_path / "set5").iterdir())) == 3 and not part.exists()


def test_server_without_range_support_restarts(server, tmp_path):
    body = _selfexsr_zip()
    server.files[ARCHIVE] = body
    server.ranges = False
    downloads = tmp_path / ".downloads"
    downloads.mkdir(parents=True)
    (downloads / (ARCHIVE + ".part")).write_bytes(b"stale bytes from elsewhere")
    datasets.download("set5", tmp_path, sha256=hashlib.sha256(body).hexdigest())
    assert (downloads / ARCHIVE).read_bytes() == body


def test_tar_archive_by_url_and_missing_members(server, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for i in range(2):
            data = _png(i)
            info = tarfile.TarInfo(f"DIV2K_train_HR/{i:04d}.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    server.files["div2k.tar.gz"] = buf.getvalue()
    folder = datasets.download("div2k", tmp_path, url=f"{server.base}/div2k.tar.gz")
    assert sorted(p.name for p in folder.iterdir()) == ["0000.png", "0001.png"]
    server.files[ARCHIVE] = buf.getvalue()  # the wrong archive for set5
    with pytest.raises(datasets.DownloadError, match="no files matching"):
        datasets.download("set5", tmp_path)
    assert not (tmp_path / "set5").exists() and _leftovers(tmp_path) == []


def test_unreachable_host_and_unknown_name(tmp_path, monkeypatch):
    monkeypatch.setenv(datasets.MIRROR_ENV, "http://127.0.0.1:9")  # discard port: refused
    with pytest.raises(datasets.DownloadError, match="cannot reach .*HARNESS_DATA_MIRROR"):
        datasets.download("set14", tmp_path)
    with pytest.raises(datasets.DownloadError, match="unknown data set .*set5"):
        datasets.get("set6")


def test_every_known_dataset_has_a_url_and_pattern():
    assert {"div2k", "set5", "set14", "bsd100", "urban100"} <= set(datasets.DATASETS)
    for ds in datasets.DATASETS.values():
        assert ds.url.startswith("https://") and ds.members and ds.archive


def test_cli_download_and_check(server, tmp_path):
    server.files[ARCHIVE] = _selfexsr_zip()
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "download", "set5", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "sha256" in result.output and "3 images" in result.output
    folder = tmp_path / "set5"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "grey.png")
    result = runner.invoke(cli, ["data", "check", str(folder), "--min-side", "8"])
    assert result.exit_code == 0, result.output
    assert "problems: none" in result.output
    result = runner.invoke(cli, ["data", "check", str(folder), "--min-side", "16"])
    assert result.exit_code == 1, result.output  # a listed problem fails the check
    assert "4 images" in result.output and "RGB 3" in result.output and "L 1" in result.output
    assert "smaller than 16 px: grey.png (10x10)" in result.output
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    result = runner.invoke(cli, ["data", "check", str(folder)])
    assert result.exit_code == 1 and "unreadable broken.jpg" in result.output
    result = runner.invoke(cli, ["data", "download", "set5", "set14", "--url", "http://x"])
    assert result.exit_code == 2 and "apply to one data set" in result.output


def test_cli_check_reports_an_image_over_the_pixel_limit_unread(tmp_path, bomb_png, no_big_decodes):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "fine.png").write_bytes(_png(1, (100, 100)))
    (folder / "bomb.png").write_bytes(bomb_png.read_bytes())
    result = CliRunner().invoke(cli, ["data", "check", str(folder), "--min-side", "16"])
    assert result.exit_code == 1, result.output
    assert "2 images" in result.output and "problems: 1" in result.output
    assert "over the limit of 67108864 pixels" in result.output
    assert "HARNESS_MAX_IMAGE_PIXELS=N): bomb.png (20000x20000)" in result.output


# --------------------------------------------------------------------------- the one fetcher


def test_fetch_checks_the_digest_before_the_file_is_in_place(server, tmp_path):
    body = b"weights" * 1000
    server.files["w.h5"] = body
    target = tmp_path / "models" / "w.h5"
    md5 = hashlib.md5(body).hexdigest()
    with pytest.raises(fetch.DownloadError, match="has md5 .*expected 0{32}.*deleted"):
        fetch.cached(f"{server.base}/w.h5", target, digest="0" * 32, algorithm="md5")
    assert sorted(p.name for p in target.parent.iterdir()) == []  # no file, no .part
    seen = []
    path = fetch.cached(
        f"{server.base}/w.h5",
        target,
        digest=md5,
        algorithm="md5",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == target and target.read_bytes() == body
    assert seen[-1] == (len(body), len(body))
    n = len(server.requests)
    assert fetch.cached(f"{server.base}/w.h5", target, digest=md5, algorithm="md5") == target
    assert len(server.requests) == n  # already in place: nothing fetched
    target.write_bytes(b"damaged")
    fetch.cached(f"{server.base}/w.h5", target, digest=md5, algorithm="md5")
    assert target.read_bytes() == body and len(server.requests) == n + 1


def test_one_file_digest_everywhere(tmp_path):
    from harness.data import weights

    path = tmp_path / "f"
    path.write_bytes(b"abc" * 100_000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert fetch.sha256(path) == fetch.file_digest(path) == weights.sha256(path) == expected
    assert fetch.file_digest(path, "md5") == hashlib.md5(path.read_bytes()).hexdigest()
