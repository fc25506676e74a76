"""`harness plugin new`: names, refusals, templates that pass the contracts, and the user's path.

The user's path (scaffold, `pip install -e`, `harness plugins`, `harness show`, the package's own
tests) runs in a throwaway environment layered over this one
(:class:`harness.plugin_api.overlay.OverlayEnv`):
a real editable install that never touches the shared environment.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.plugin_api import contracts, scaffold
from harness.plugin_api.overlay import OverlayEnv
from harness.plugin_api.registry import build_registry

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "experiments" / "quickstart.toml"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("charbonnier", "charbonnier"),
        ("MyLoss", "my_loss"),
        ("my-loss", "my_loss"),
        ("harness-my-loss", "my_loss"),
        ("Edge Loss", "edge_loss"),
        ("HTTPLoss", "http_loss"),
        ("l1_v2", "l1_v2"),
    ],
)
def test_names_are_normalised_to_snake_case(raw: str, name: str) -> None:
    assert scaffold.normalise_name(raw) == name
    names = scaffold.PluginNames(name)
    assert names.module == f"harness_{name}"
    assert names.distribution == "harness-" + name.replace("_", "-")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "letters, digits"),
        ("9lives", "start with a letter"),
        ("a/b", "letters, digits"),
        ("crème", "letters, digits"),
        ("class", "reserved"),
        ("harness", "reserved"),
        ("--", "empty"),
        ("x" * 41, "longer than 40"),
    ],
)
def test_invalid_names_are_refused_with_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(scaffold.ScaffoldError, match=reason):
        scaffold.normalise_name(raw)


def test_cli_writes_the_package_and_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["plugin", "new", "EdgeLoss", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "harness-edge-loss"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "README.md",
        "harness_edge_loss/__init__.py",
        "pyproject.toml",
        "tests/test_edge_loss.py",
    ]
    assert "pip install -e" in result.output and "harness-edge-loss" in result.output
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.harness]\nedge_loss = "harness_edge_loss"' in pyproject
    assert 'name = "harness-edge-loss"' in pyproject

    # Writing again over the now non-empty folder is refused, and nothing is overwritten.
    (root / "README.md").write_text("my notes")
    again = runner.invoke(cli, ["plugin", "new", "edge-loss", "--dest", str(tmp_path)])
    assert again.exit_code == 2
    assert "already exists and is not empty" in again.output
    assert (root / "README.md").read_text() == "my notes"

    bad = runner.invoke(cli, ["plugin", "new", "9lives", "--dest", str(tmp_path)])
    assert bad.exit_code == 2 and "invalid plugin name" in bad.output
    assert not (tmp_path / "harness-9lives").exists()


def test_an_existing_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "harness-ramp").mkdir()
    target = scaffold.write_package("ramp", "schedule", tmp_path)
    assert (target / "harness_ramp" / "__init__.py").is_file()


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(scaffold.ScaffoldError, match="loss, adversarial, generator, schedule"):
        scaffold.write_package("x", "optimizer", tmp_path)


@pytest.mark.parametrize("kind", list(scaffold.SCAFFOLD_KINDS))
def test_each_template_passes_the_project_contracts(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"probe_{kind}"
    root = scaffold.write_package(name, kind, tmp_path)
    monkeypatch.syspath_prepend(str(root))
    module = importlib.import_module(f"harness_{name}")
    try:
        registry = build_registry(extra=[(module, name, f"harness-probe-{kind}")], autoload=False)
        (entry,) = registry.entries()
        assert (entry.kind, entry.name) == (scaffold.SCAFFOLD_KINDS[kind], name)
        params = {"filters": 4, "blocks": 1} if kind == "generator" else None
        contracts.check_entry(entry, params)
    finally:
        sys.modules.pop(f"harness_{name}", None)
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():  # the generated code is lint-clean under the project's rules
        lint = subprocess.run(
            [str(ruff), "check", "--isolated", "--select", "E,F,W,I,B,UP,SIM"]
            + ["--line-length", "100", "."],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout


def _quickstart_with(tmp_path: Path, extra: str) -> Path:
    if not QUICKSTART.is_file():
        pytest.skip(f"{QUICKSTART} is not in this checkout")
    path = tmp_path / "quickstart_with_plugin.toml"
    path.write_text(QUICKSTART.read_text() + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def installed_loss(tmp_path_factory: pytest.TempPathFactory):
    """A scaffolded loss `edge_probe`, installed editable in an overlay environment."""
    tmp = tmp_path_factory.mktemp("scaffold_install")
    result = CliRunner().invoke(cli, ["plugin", "new", "edge-probe", "--dest", str(tmp)])
    assert result.exit_code == 0, result.output
    env = OverlayEnv(tmp / "venv")
    package = tmp / "harness-edge-probe"
    env.pip_install(package)
    return env, package


def _plugins(env: OverlayEnv) -> list[dict[str, str]]:
    return json.loads(env.harness("plugins", "--json").stdout)


@pytest.mark.slow  # pip-installs the scaffold; test_example_plugin covers an installed plugin
def test_installed_scaffold_is_listed_shown_and_tested(installed_loss, tmp_path: Path) -> None:
    env, package = installed_loss
    rows = [r for r in _plugins(env) if r["name"] == "edge_probe"]
    assert rows == [
        {
            "name": "edge_probe",
            "kind": "content_loss",
            "distribution": "harness-edge-probe 0.1.0",
            "plugin": "edge_probe",
        }
    ]
    # The shared environment is untouched: this process cannot see the package.
    with pytest.raises(md.PackageNotFoundError):
        md.distribution("harness-edge-probe")

    experiment = _quickstart_with(tmp_path, "[losses.edge_probe]\nweight = 0.5\n")
    flat = env.harness(
        "show", str(experiment), "--flat", "--set", "losses.edge_probe.delta=0.05"
    ).stdout.splitlines()
    assert "losses.edge_probe.delta = 0.05" in flat
    assert "losses.edge_probe.weight = 0.5" in flat
    typo = env.harness("show", str(experiment), "--set", "losses.edge_probe.detla=0.1", check=False)
    assert typo.returncode == 2 and 'Did you mean "delta"' in typo.stderr

    # The package's own tests (contract checks through the installed entry point) pass.
    own = env.run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(package)], check=False)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "2 passed" in own.stdout

    # The factory's default is the configuration, and the install is editable: an edit to the
    # module is live without reinstalling.
    module = package / "harness_edge_probe" / "__init__.py"
    module.write_text(module.read_text().replace("delta: float = 0.01", "delta: float = 0.03"))
    flat = env.harness("show", str(experiment), "--flat").stdout.splitlines()
    assert "losses.edge_probe.delta = 0.03" in flat


def _has_commands(env: OverlayEnv, *names: str) -> bool:
    help_text = env.harness("--help").stdout
    return all(f"  {name} " in help_text for name in names)


@pytest.mark.slow
def test_scaffolded_loss_trains_sweeps_and_reaches_mlflow(installed_loss, tmp_path: Path) -> None:
    """The new user's path end to end: run a few steps with the new loss, sweep its parameter
    for two trials, and find its loss term and parameter in MLflow."""
    env, _ = installed_loss
    if not _has_commands(env, "run", "sweep"):
        pytest.skip("`harness run` and `harness sweep` are not available in this checkout yet")
    mlflow = pytest.importorskip("mlflow")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    quickstart = _quickstart_with(tmp_path, "[losses.edge_probe]\nweight = 1.0\n")
    experiment = tmp_path / "tiny.toml"
    experiment.write_text(
        f"""extends = "{quickstart.name}"

[experiment]
name = "edge_probe_e2e"
runs_dir = "{tmp_path / "runs"}"

[data]
patch = 32
augment = false
val_limit = 1
val_max_side = 64

[generator]
blocks = 1
filters = 8

[discriminator]
filters = 8
dense = 16

[train]
steps = 3
pretrain_steps = 2
batch_size = 2
log_every = 1
checkpoint_every = 100
quiet = true

[validation]
every = 3
samples = 1

[tracking]
uri = "{store}"
log_model = false
"""
    )
    env.harness("run", str(experiment), "--set", "losses.edge_probe.delta=0.02", cwd=tmp_path)

    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'extends = "{experiment.name}"\n\n'
        "[sweep]\n"
        'study = "edge_probe_delta"\n'
        f'storage = "sqlite:///{tmp_path / "optuna.db"}"\n'
        'sampler = "random"\n'
        'pruner = "none"\n'
        "trials = 2\n\n"
        '[sweep.params."losses.edge_probe.delta"]\n'
        'type = "float"\nlow = 0.001\nhigh = 0.5\nlog = true\n'
    )
    env.harness("sweep", str(sweep), cwd=tmp_path)

    client = mlflow.MlflowClient(tracking_uri=store)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    trained = [r for r in runs if "loss/edge_probe" in r.data.metrics]
    assert len(trained) >= 3, [(r.info.run_name, sorted(r.data.metrics)) for r in runs]
    deltas = {r.data.params.get("losses.edge_probe.delta") for r in trained}
    assert "0.02" in deltas and len(deltas) >= 3  # the run's value and two sampled ones
