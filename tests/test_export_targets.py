"""Where ``harness export`` writes: a new path, an empty folder (SavedModel) or a folder to put
``model.onnx`` in (ONNX). Whatever else exists at ``-o`` is refused in one ``error:`` line
naming the path and the fix, and is left as it was; a failed export leaves nothing behind.
The model is one trained under mixed_bfloat16, the CPU default."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import SavedGenerator, save_generator

from harness import diskwrite
from harness.cli import cli
from harness.deploy import export
from harness.deploy.onnx import onnx_session
from harness.deploy.precision import BFLOAT16
from harness.deploy.upscaler import Upscaler


@pytest.fixture(scope="module")
def bf16(tmp_path_factory, registry) -> SavedGenerator:
    return save_generator(tmp_path_factory.mktemp("bf16"), registry, "mixed_bfloat16")


def run_export(bf16: SavedGenerator, *args: str | Path):
    return CliRunner().invoke(cli, ["export", str(bf16.path), *map(str, args)])


def listing(folder: Path) -> dict[str, object]:
    """Every entry under ``folder`` (hidden ones too): a file's bytes, a link's target, a
    folder's inode and mode."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[name] = (path.stat().st_ino, path.stat().st_mode)
        else:
            found[name] = path.read_bytes()
    return found


def sr(fmt: str, target: Path, lr: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        return onnx_session(target).run(["sr"], {"lr": lr})[0]
    return tf.saved_model.load(str(target)).signatures["serving_default"](lr=lr)["sr"].numpy()


def lr_image() -> np.ndarray:
    return np.random.default_rng(5).uniform(0, 1, (1, 9, 11, 3)).astype(np.float32)


def one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def _file(path: Path) -> None:
    path.write_text("keep me\n")


def _folder_with_a_file(path: Path) -> None:
    path.mkdir()
    (path / "keep.txt").write_text("keep me\n")


def _dangling_link(path: Path) -> None:
    path.symlink_to("gone")


def _folder_holding_model_onnx(path: Path) -> None:
    path.mkdir()
    _file(path / export.ONNX_FILE)


ONNX = ("--format", "onnx")
TAKEN = {
    # case: (the name given as -o, what is there, more options, words of the message)
    "savedmodel-folder-with-files": ("there", _folder_with_a_file, (), "not empty"),
    "savedmodel-file": ("there", _file, (), "is a file"),
    "savedmodel-version-under-a-file": ("there", _file, ("--version", "1"), "not a folder"),
    "savedmodel-dangling-link": ("there", _dangling_link, (), "does not exist"),
    "onnx-file": ("there.onnx", _file, ONNX, "exists"),
    "onnx-folder-named-onnx": ("there.onnx", Path.mkdir, ONNX, "is a folder"),
    "onnx-folder-holding-model-onnx": ("there", _folder_holding_model_onnx, ONNX, "exists"),
    "onnx-under-a-file": ("there", _file, ONNX, "not a folder"),
}


@pytest.mark.parametrize("case", TAKEN)
def test_a_taken_target_is_refused_in_one_line_and_left_as_it_was(bf16, tmp_path, case) -> None:
    name, make, options, words = TAKEN[case]
    there = tmp_path / name
    make(there)
    before = listing(tmp_path)
    result = run_export(bf16, "-o", there, *options)
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert str(there) in line and words in line and "remove" in line, line
    assert listing(tmp_path) == before


@pytest.mark.parametrize("fmt", ["onnx", "savedmodel"])
@pytest.mark.parametrize("given", ["path", "dot"])
def test_an_empty_folder_takes_the_export_and_keeps_its_identity(
    bf16, tmp_path, monkeypatch, fmt, given
) -> None:
    """An empty folder given as -o (or as ".", the shell's own folder) receives the export
    (a SavedModel's files; ONNX's model.onnx); the folder itself stays, mode and all."""
    folder = tmp_path / "models" / "srgan" / "1"
    folder.mkdir(parents=True)
    folder.chmod(0o750)
    identity = (folder.stat().st_ino, folder.stat().st_mode)
    if given == "dot":
        monkeypatch.chdir(folder)
    result = run_export(bf16, "-o", "." if given == "dot" else folder, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert (folder.stat().st_ino, folder.stat().st_mode) == identity
    target = folder / export.ONNX_FILE if fmt == "onnx" else folder
    names = {p.name for p in folder.iterdir()}
    assert names == {"model.onnx"} if fmt == "onnx" else {"saved_model.pb", "variables"} <= names
    lr = lr_image()
    np.testing.assert_allclose(
        sr(fmt, target, lr), Upscaler.from_generator(bf16.float32)(lr), atol=1e-5
    )
    assert {p.name for p in tmp_path.rglob(".*")} == set()  # no temporary left anywhere


def test_onnx_goes_beside_what_a_folder_holds(bf16, tmp_path) -> None:
    """A Triton model folder already holds config.pbtxt: model.onnx is added, nothing else."""
    folder = tmp_path / "srgan"
    _folder_with_a_file(folder)
    before = listing(tmp_path)
    result = run_export(bf16, "-o", folder, "--format", "onnx")
    assert result.exit_code == 0, result.output
    after = listing(tmp_path)
    assert set(after) - set(before) == {"srgan/model.onnx"}
    assert {k: after[k] for k in before} == before


def test_a_failed_check_leaves_the_empty_folder_empty_and_made_folders_gone(
    bf16, tmp_path, monkeypatch
) -> None:
    """A bfloat16 SavedModel checked at zero tolerance fails its real check: the empty folder
    given stays empty (same folder), and folders the export made for a new path are removed."""
    monkeypatch.setitem(export.TOLERANCE, BFLOAT16, 0.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    before = listing(tmp_path)
    for output in (["-o", empty], ["-o", tmp_path / "new" / "srgan", "--version", 1]):
        result = run_export(bf16, *output, "--precision", "bfloat16")
        assert result.exit_code == 2, result.output
        line = one_error_line(result.output)
        assert "differs from TensorFlow float32" in line and "not kept" in line, line
        assert listing(tmp_path) == before


@pytest.mark.slow
def test_what_appears_at_the_target_during_the_export_is_kept(bf16, tmp_path, monkeypatch):
    """Another program fills the empty -o folder while the export runs: the export is refused
    before its rename, and the other program's file is untouched."""
    folder = tmp_path / "out"
    folder.mkdir()
    check = export.check_saved_model

    def check_while_another_writes(*args, **kwargs):
        (folder / "theirs.txt").write_text("theirs")
        return check(*args, **kwargs)

    monkeypatch.setattr(export, "check_saved_model", check_while_another_writes)
    result = run_export(bf16, "-o", folder)
    assert result.exit_code == 2, result.output
    assert "not empty" in one_error_line(result.output)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "theirs.txt"]
    assert (folder / "theirs.txt").read_text() == "theirs"


def test_an_empty_folder_is_filled_whole_or_left_empty(tmp_path, monkeypatch) -> None:
    """The empty folder receives the written folder's entries (sub-folders first); when a move
    fails, those already moved go back and the folder is empty again."""
    target = tmp_path / "export"
    target.mkdir()

    def write(tmp: Path) -> None:
        (tmp / "variables").mkdir(parents=True)
        (tmp / "variables" / "variables.index").write_text("index")
        (tmp / "saved_model.pb").write_text("graph")

    replace, moved = os.replace, []

    def replace_then_fail(src, dst) -> None:
        if Path(dst).parent == target and moved:
            raise OSError(28, "No space left on device")
        replace(src, dst)
        moved.append(Path(dst).name)

    monkeypatch.setattr(os, "replace", replace_then_fail)
    with pytest.raises(diskwrite.DiskFullError), diskwrite.atomic(target) as tmp:
        write(tmp)
    assert moved == ["variables", "variables"]  # moved in, then back
    assert list(target.iterdir()) == [] and sorted(tmp_path.iterdir()) == [target]
    monkeypatch.setattr(os, "replace", replace)
    with diskwrite.atomic(target) as tmp:
        write(tmp)
    assert sorted(p.name for p in target.iterdir()) == ["saved_model.pb", "variables"]
    assert sorted(tmp_path.iterdir()) == [target]
