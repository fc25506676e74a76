"""Model references parse into one typed value; a run directory's files have one owner."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import references as refs
from harness.references import ModelReferenceError, parse_reference
from harness.rundir import RunDir, kept_name

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def run(tmp_path) -> RunDir:
    """A run directory as `harness run` leaves it (empty files stand in for the models)."""
    run = RunDir(tmp_path / "runs" / "x")
    run.checkpoints.mkdir(parents=True)
    run.experiment_toml.write_text('[experiment]\nname = "x"\n')
    run.run_id_file.write_text(RUN_ID + "\n")
    run.generator.write_bytes(b"")
    run.best("lpips").write_bytes(b"")
    (run.checkpoints / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-3"\nall_model_checkpoint_paths: "ckpt-3"\n'
    )
    (run.checkpoints / "ckpt-3.index").write_bytes(b"")
    return run


def test_a_run_directory_names_its_files(run) -> None:
    assert run.experiment_toml.name == "experiment.toml"
    assert run.run_id_file.name == "mlflow_run_id"
    assert run.generator.name == "generator.keras"
    assert run.discriminator.name == "discriminator.keras"
    assert run.checkpoints.name == "checkpoints"
    assert run.kept_json.name == "kept.json"
    assert run.best("val/lpips") == run.best("lpips") == run.path / "best_lpips.keras"
    assert kept_name("val/psnr_y") == "best_psnr_y"
    assert run.read_run_id() == RUN_ID
    assert run.latest_step() == 3
    assert run.kept_names() == ["best_lpips"]
    assert run.is_run()
    assert [p.name for p in run.model_files()] == [
        "checkpoints",
        "generator.keras",
        "best_lpips.keras",
    ]
    assert RunDir.enclosing(run.checkpoints / "ckpt-3") == run
    assert RunDir.enclosing(run.generator) == run
    assert RunDir(run.path / "nowhere").read_run_id() == ""
    assert RunDir(run.path / "nowhere").latest_step() is None


def test_every_local_form_parses_to_its_kind(run, tmp_path) -> None:
    path = run.path
    cases = {
        str(path): (refs.RUN, path),
        f"{path}@best_lpips": (refs.KEPT, path),
        f"{path}@generator": (refs.KEPT, path),
        str(run.checkpoints): (refs.CHECKPOINT, run.checkpoints),
        str(run.checkpoints / "ckpt-3"): (refs.CHECKPOINT, run.checkpoints / "ckpt-3"),
        str(run.generator): (refs.KERAS, run.generator),
        str(run.experiment_toml): (refs.FILE, run.experiment_toml),
        str(tmp_path / "runs"): (refs.FOLDER, tmp_path / "runs"),
        str(tmp_path / "nowhere"): (refs.MISSING, tmp_path / "nowhere"),
    }
    for text, (kind, where) in cases.items():
        ref = parse_reference(text)
        assert (ref.kind, ref.path, str(ref)) == (kind, where, text), text
        assert not ref.is_mlflow and ref.run_id == ""
    kept = parse_reference(f"{path}@best_lpips")
    assert (kept.name, kept.base, kept.run) == ("best_lpips", str(path), run)
    # a reference inside a run knows its run (and through it the MLflow run id)
    assert parse_reference(str(run.checkpoints / "ckpt-3")).run == run
    assert parse_reference(str(run.generator)).run.read_run_id() == RUN_ID
    # a run that does not exist yet (a comparison's later experiment) still has a path
    later = parse_reference(f"{tmp_path / 'runs' / 'y'}@best_lpips")
    assert later.kind == refs.KEPT and later.run_path == tmp_path / "runs" / "y"


def test_exported_and_mlflow_folders(tmp_path) -> None:
    saved = tmp_path / "export"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    assert parse_reference(saved).kind == refs.SAVED_MODEL
    logged = tmp_path / "logged"
    logged.mkdir()
    (logged / "MLmodel").write_text("flavors: {}\n")
    ref = parse_reference(logged)
    assert (ref.kind, ref.uri, ref.is_mlflow) == (refs.MLFLOW_FOLDER, str(logged), True)


def test_mlflow_forms() -> None:
    bare = parse_reference(RUN_ID)
    assert (bare.kind, bare.run_id, bare.uri) == (
        refs.MLFLOW_RUN,
        RUN_ID,
        f"runs:/{RUN_ID}/generator",
    )
    uri = parse_reference(f"runs:/{RUN_ID}/best_lpips")
    assert (uri.kind, uri.run_id, uri.uri, uri.name) == (
        refs.MLFLOW_RUN,
        RUN_ID,
        f"runs:/{RUN_ID}/best_lpips",
        "best_lpips",
    )
    alias = parse_reference("models:/upscaler@champion")
    assert (alias.kind, alias.name, alias.alias, alias.version) == (
        refs.REGISTERED,
        "upscaler",
        "champion",
        "",
    )
    version = parse_reference("models:/upscaler/3")
    assert (version.kind, version.name, version.version) == (refs.REGISTERED, "upscaler", "3")
    assert parse_reference("models:/m-0123abcd").kind == refs.REGISTERED
    other = parse_reference("mlflow-artifacts:/1/abc/artifacts/generator")
    assert (other.kind, other.uri) == (refs.URI, "mlflow-artifacts:/1/abc/artifacts/generator")
    for ref in (bare, uri, alias, version, other):
        assert ref.is_mlflow and ref.path is None and ref.run is None and ref.run_path is None
    # a registered model's alias is not a kept generator, and a run's id is only its own
    assert alias.run_id == "" and version.run_id == ""


def test_bicubic_only_where_accepted() -> None:
    assert parse_reference("bicubic", bicubic=True).kind == refs.BICUBIC
    assert parse_reference("bicubic").kind == refs.MISSING


def test_a_local_path_named_like_a_run_id_is_a_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / RUN_ID).mkdir()
    assert parse_reference(RUN_ID).kind == refs.FOLDER
    assert parse_reference(RUN_ID.upper()).kind == refs.MISSING  # run ids are lowercase


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("  ", "empty"),
        ("runs:/abc/generator", "32 lowercase hex"),
        (f"runs:/{RUN_ID.upper()}/generator", "32 lowercase hex"),
        (f"runs:/{RUN_ID}x/generator", "32 lowercase hex"),
        ("models:/", "models:/<name>@<alias>"),
        ("models:/upscaler@", "models:/<name>@<alias>"),
        ("models:/upscaler/", "models:/<name>@<alias>"),
    ],
)
def test_a_malformed_reference_is_one_clear_message(text, says) -> None:
    with pytest.raises(ModelReferenceError) as info:
        parse_reference(text)
    message = str(info.value)
    assert f'"{text}"' in message and says in message and "Accepted:" in message
    assert "\n" not in message


def test_a_malformed_reference_on_the_command_line_is_one_error_line(tmp_path) -> None:
    from click.testing import CliRunner

    from harness.cli import cli

    image = tmp_path / "in.png"
    image.write_bytes(b"")
    result = CliRunner().invoke(cli, ["export", "runs:/abc/generator", "-o", str(tmp_path / "o")])
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "32 lowercase hex" in errors[0], result.output


def test_parsing_imports_neither_tensorflow_nor_mlflow() -> None:
    code = (
        "import sys; from harness.references import parse_reference; "
        "parse_reference('runs/x@best_lpips'); parse_reference('models:/a@b'); "
        "print(sorted(m for m in ('tensorflow', 'mlflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
