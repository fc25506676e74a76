"""Every command, fed bad files, values and model references, ends with one message and a
non-zero exit: never a traceback, never a silent success."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import new_store
from PIL import Image

from harness.cli import cli

TINY_RUN = """\
[experiment]
name = "bad"
runs_dir = "{runs}"
[data]
train = ["skimage"]
patch = 32
[generator]
name = "srresnet"
blocks = 1
filters = 8
[losses.mse]
[train]
steps = 1
batch_size = 2
"""


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    """A folder of bad inputs, one of each kind, by name."""
    root = tmp_path_factory.mktemp("bad")
    out: dict[str, Path] = {"root": root, "store": Path(new_store(root).removeprefix("sqlite:///"))}
    files = {
        "latin1.toml": '[experiment]\nname = "caf\xe9"\n'.encode("latin-1"),
        "utf16.toml": '[experiment]\nname = "x"\n'.encode("utf-16"),
        "binary.toml": bytes(range(256)) * 4,
        "syntax.toml": b"[experiment\nname = 1\n",
        "unknown_loss.toml": b"[losses.vgg45]\n",
        "negative_steps.toml": b"[train]\nsteps = -5\n",
        "zero_scale.toml": b"[data]\nscale = 0\n",
        "nan_lr.toml": b"[train]\nlearning_rate = nan\n",
        "cycle.toml": b'extends = "cycle.toml"\n',
        "junk.keras": bytes(range(256)) * 8,
        "readme.keras": b"# not a model\n",
        "text.png": b"not an image",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
        out[name] = root / name
    out["no_sweep.toml"] = root / "no_sweep.toml"
    out["no_sweep.toml"].write_text(TINY_RUN.format(runs=root / "runs"))
    # a folder whose only image is a truncated JPEG (its header reads, its pixels do not)
    truncated = root / "truncated"
    truncated.mkdir()
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(buf, "JPEG")
    (truncated / "half.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    out["truncated"] = truncated
    out["truncated.jpg"] = truncated / "half.jpg"
    (root / "empty").mkdir()
    out["empty"] = root / "empty"
    # models of the wrong kind: a one-channel network, a scorer of fixed-size images
    grey = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 3)])
    grey.save(root / "grey.keras")
    scorer = keras.Sequential(
        [keras.Input((96, 96, 3)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    scorer.save(root / "scorer.keras")
    out["grey.keras"], out["scorer.keras"] = root / "grey.keras", root / "scorer.keras"
    image = root / "ok.png"
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(image)
    out["ok.png"] = image
    blocker = root / "a_file"
    blocker.write_text("x")
    out["a_file"] = blocker
    return out


def _cases() -> list[tuple[str, list[str]]]:
    """``(id, argv)`` with ``{name}`` placeholders for files of the ``bad`` fixture."""
    toml_cases = [
        "latin1.toml",
        "utf16.toml",
        "binary.toml",
        "syntax.toml",
        "unknown_loss.toml",
        "negative_steps.toml",
        "zero_scale.toml",
        "nan_lr.toml",
        "cycle.toml",
        "missing.toml",
    ]
    cases = []
    for name in toml_cases:
        cases.append((f"show-{name}", ["show", f"{{{name}}}"]))
        cases.append((f"run-{name}", ["run", f"{{{name}}}"]))
    cases += [("sweep-" + n, ["sweep", f"{{{n}}}"]) for n in ("latin1.toml", "no_sweep.toml")]
    cases += [
        ("run-bad-set", ["run", "{no_sweep.toml}", "--set", "train.steps=[1"]),
        ("run-set-unknown-key", ["run", "{no_sweep.toml}", "--set", "train.stepz=3"]),
        ("compare-empty", ["compare", "{empty}"]),
        ("compare-bad-toml", ["compare", "{latin1.toml}"]),
    ]
    models = ["junk.keras", "readme.keras", "grey.keras", "scorer.keras", "missing.keras"]
    models += ["empty", "text.png"]
    for model in models:
        cases.append((f"upscale-{model}", ["upscale", "-m", f"{{{model}}}", "{ok.png}"]))
        cases.append(
            (f"evaluate-{model}", ["evaluate", "--model", f"{{{model}}}", "--data", "{root}"])
        )
        cases.append((f"export-{model}", ["export", f"{{{model}}}", "-o", "{root}/export"]))
        cases.append((f"serve-{model}", ["serve", f"{{{model}}}", "--port", "0"]))
        cases.append((f"report-{model}", ["report", f"{{{model}}}", "--data", "{root}"]))
        cases.append(
            (f"interpolate-{model}", ["interpolate", f"{{{model}}}", "{ok.png}", "-o", "{root}/i"])
        )
    cases += [
        ("upscale-not-an-image", ["upscale", "-m", "bicubic", "{text.png}"]),
        ("upscale-truncated", ["upscale", "-m", "bicubic", "{truncated.jpg}"]),
        ("upscale-output-under-a-file", ["upscale", "{ok.png}", "-o", "{a_file}/x.png"]),
        ("evaluate-truncated-only", ["evaluate", "--data", "{truncated}"]),
        ("evaluate-empty", ["evaluate", "--data", "{empty}"]),
        ("evaluate-missing", ["evaluate", "--data", "{root}/nowhere"]),
        ("evaluate-unknown-metric", ["evaluate", "--data", "{root}", "--metric", "lpipz"]),
        ("evaluate-zero-scale", ["evaluate", "--data", "{root}", "--scale", "0"]),
        ("evaluate-negative-border", ["evaluate", "--data", "{root}", "--border", "-5"]),
        ("evaluate-negative-limit", ["evaluate", "--data", "{root}", "--limit", "-1"]),
        ("data-check-missing", ["data", "check", "{root}/nowhere"]),
        ("data-check-truncated", ["data", "check", "{truncated}"]),
        ("plugin-new-bad-name", ["plugin", "new", "9 lives!", "--dest", "{root}"]),
    ]
    return cases


@pytest.mark.parametrize(("argv"), [c[1] for c in _cases()], ids=[c[0] for c in _cases()])
def test_a_bad_input_gets_one_message_and_a_failing_exit(bad, argv, monkeypatch):
    monkeypatch.chdir(bad["root"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{bad['store']}")
    names = {k: str(v) for k, v in bad.items()}
    names["missing.toml"] = str(bad["root"] / "missing.toml")
    names["missing.keras"] = str(bad["root"] / "missing.keras")
    args = [re.sub(r"\{([^{}]+)\}", lambda m: names[m.group(1)], a) for a in argv]
    result = CliRunner().invoke(cli, args)
    output = result.output
    assert result.exit_code != 0, f"exit 0 for {args}:\n{output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__} escaped for {args}:\n{output}"
    )
    assert "Traceback" not in output
    message = [line for line in output.splitlines() if line.lower().startswith("error")]
    assert message, f"no error line for {args}:\n{output}"
    assert len(message[-1]) > 30  # says what is wrong, not just that something is


def test_the_battery_covers_every_command():
    covered = {argv[0] for _, argv in _cases()}
    quiet = {"plugins"}  # takes no input that can be bad
    assert covered | quiet == set(cli.commands)
    assert json.dumps(sorted(covered))  # the ids are plain names


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("losses.mse.weight=-1", "must be a finite weight >= 0, but is -1.0"),
        ("train.beta1=nan", r"train\] .*must be in \[0, 1\)"),
        ("train.steps=1e12", "beyond any run"),
        ("train.batch_size=1000000000", "HR pixels per batch, over the limit"),
        ("data.patch=4096", "16 x 4096\\^2 = 268,435,456 HR pixels per batch"),
        ("train..steps=3", 'the key "train..steps" has an empty part'),
        (
            'train.learning_rate={schedule="cosine", start=1e-3, end=inf}',
            'schedule "cosine" has end = inf',
        ),
        ("experiment.name=caf\udce9", r"caf\\udce9\" holds bytes that are not UTF-8"),
    ],
    ids=[
        "negative-weight",
        "nan-beta1",
        "1e12-steps",
        "huge-batch",
        "huge-patch",
        "two-dots",
        "infinite-schedule-end",
        "non-utf8",
    ],
)
def test_a_set_value_outside_its_meaning_is_refused_when_read(item, said, registry):
    from harness import config
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match=said):
        config.load(None, [item], registry=registry)


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "degrade", "{root}", "-o", "{a_file}/lr"],
        ["report", "{root}/runs/none", "--data", "{root}", "-o", "{a_file}/report"],
    ],
    ids=["degrade", "report"],
)
def test_an_output_folder_that_cannot_be_written_is_refused_before_the_work(bad, argv):
    names = {k: str(v) for k, v in bad.items()}
    args = [re.sub(r"\{([^{}]+)\}", lambda m: names[m.group(1)], a) for a in argv]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "cannot write there" in result.output


@pytest.mark.parametrize("depth", [5, 70, 900])
def test_json_nested_too_deep_is_called_that_not_ragged(depth):
    from harness.deploy.codecs import RequestError, parse_tensor

    value: list = [0.5]
    for _ in range(depth - 1):
        value = [value]
    with pytest.raises(RequestError, match="nested more than 4 lists deep") as caught:
        parse_tensor(value, "instances")
    assert caught.value.status == 400 and "ragged" not in caught.value.message


@pytest.mark.slow  # the sweep's plan loads Optuna and MLflow
def test_ctrl_c_on_a_sweep_says_what_was_kept_and_how_to_continue(tmp_path, monkeypatch):
    from harness import sweep

    def interrupted(p, echo=print):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep, "run", interrupted)
    file = Path(__file__).parents[1] / "experiments" / "quickstart_sweep.toml"
    result = CliRunner().invoke(cli, ["sweep", str(file), "--storage", "sqlite:///optuna.db"])
    assert result.exit_code == 130, result.output
    assert "keeps every finished trial" in result.output and "To continue: " in result.output
    assert "Aborted!" not in result.output


def test_a_locked_mlflow_database_is_one_error_line(monkeypatch, tmp_path):
    import sqlite3

    from harness.commands import show

    def locked(*args, **kwargs):
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as exc:  # as MLflow's store wraps it
            raise RuntimeError("(sqlite3.OperationalError) database is locked") from exc

    monkeypatch.setattr(show.config, "load", locked)
    result = CliRunner().invoke(cli, ["show"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: the MLflow tracking database is locked")
    assert "Traceback" not in result.output


def test_data_check_flags_an_image_the_other_commands_could_not_hold(tmp_path, no_big_decodes):
    from conftest import write_bomb_png

    write_bomb_png(tmp_path / "scan.png", side=16000)  # 31 KB on disk, 768 MB as RGB
    result = CliRunner().invoke(cli, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "over the limit of 67108864 pixels" in result.output
    assert "scan.png (16000x16000)" in result.output
