"""Every file is written whole or not at all: a writer failing half-way (a full disk, an error,
Ctrl-C) leaves the old file as it was and no temporary beside it."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest

from harness import diskwrite
from harness.data import video
from harness.data.images import encode_png, read_image
from harness.deploy.upscaling import save_image


def _half_then_full(self: Path, data: bytes) -> int:
    """A ``Path.write_bytes`` on a disk that fills up half-way through the file."""
    with open(self, "wb") as f:
        f.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_writer_failing_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "kept.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), diskwrite.atomic(target) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError("the writer broke")
    with pytest.raises(KeyboardInterrupt), diskwrite.atomic(target) as tmp:
        tmp.write_text("new, half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["kept.json"]
    diskwrite.write_text(target, "new")
    assert target.read_text() == "new"
    assert _listing(tmp_path) == ["kept.json"]


def test_upscaling_onto_an_existing_png_on_a_full_disk_keeps_the_old_png(tmp_path, monkeypatch):
    old = np.full((4, 4, 3), 7, np.uint8)
    target = tmp_path / "out.png"
    target.write_bytes(encode_png(old))
    monkeypatch.setattr(Path, "write_bytes", _half_then_full)
    with pytest.raises(diskwrite.DiskFullError, match="out of disk space while writing the image"):
        save_image(target, np.zeros((8, 8, 3), np.uint8))
    monkeypatch.undo()
    assert (read_image(target) == old).all()
    assert _listing(tmp_path) == ["out.png"]


def test_a_model_save_on_a_full_disk_under_a_relative_runs_dir_leaves_no_temporary(
    tmp_path, monkeypatch
):
    from harness.training.checkpoints import _save_model

    class FillsTheDisk:
        def save(self, path):
            Path(path).write_bytes(b"PK partial zip")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.chdir(tmp_path)
    run = Path("runs") / "quickstart"  # the default runs_dir is relative
    run.mkdir(parents=True)
    with pytest.raises(diskwrite.DiskFullError, match="Nothing partial was left"):
        _save_model(FillsTheDisk(), run / "generator.keras", "the final generator", "")
    assert _listing(run) == []


def test_a_video_that_fails_half_way_keeps_the_old_video_and_no_temporary(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the old video")
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(video.VideoError), video.VideoWriter(target, 5) as out:
        out.write(frame)
        out.write(np.zeros((8, 8, 3), np.uint8))  # another size: refused
    assert target.read_bytes() == b"the old video"
    assert _listing(tmp_path) == ["out.mp4"]
    with video.VideoWriter(target, 5) as out:
        for _ in range(3):
            out.write(frame)
    assert video.probe(target).frames == 3
    assert _listing(tmp_path) == ["out.mp4"]


def test_json_is_always_standard(tmp_path):
    target = tmp_path / "r.json"
    with pytest.raises(ValueError):
        diskwrite.write_json(target, {"psnr": float("inf")})
    assert not target.exists() and _listing(tmp_path) == []
    diskwrite.write_json(target, {"psnr": float("inf"), "ssim": [float("nan"), 0.5]}, null=True)
    assert json.loads(target.read_text()) == {"psnr": None, "ssim": [None, 0.5]}


def test_a_full_disk_while_writing_a_video_is_one_error_and_leaves_nothing(tmp_path):
    class FullDisk:
        """The container as it behaves when the disk fills: every write fails."""

        def __init__(self, container):
            self.container = container

        def mux(self, packet):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            self.container.close()

    target = tmp_path / "out.mp4"
    frame = np.zeros((16, 16, 3), np.uint8)
    full = r"out of disk space while writing .*video to .*out\.mp4"
    with pytest.raises(diskwrite.DiskFullError, match=full), video.VideoWriter(target, 5) as out:
        out.write(frame)
        out._container = FullDisk(out._container)
        for _ in range(3):  # the encoder holds frames back; the rest is written at the end
            out.write(frame)
    assert _listing(tmp_path) == []


def test_a_folder_is_put_in_place_whole_or_not_at_all(tmp_path):
    target = tmp_path / "export"
    with diskwrite.atomic(target) as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("first")
    assert (target / "saved_model.pb").read_text() == "first"
    with pytest.raises(RuntimeError), diskwrite.atomic(target) as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("half")
        raise RuntimeError("interrupted export")
    assert (target / "saved_model.pb").read_text() == "first"
    with diskwrite.atomic(target) as tmp:
        tmp.mkdir()
        (tmp / "saved_model.pb").write_text("second")
    assert (target / "saved_model.pb").read_text() == "second"
    assert _listing(tmp_path) == ["export"]
