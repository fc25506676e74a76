"""The example plugin package (examples/harness-charbonnier), installed as a user would.

It is installed editable into a throwaway environment layered over this one
(:class:`harness.plugin_api.overlay.OverlayEnv`), listed by ``harness plugins``, used by an
experiment through
``harness show``, and its own test suite (the project's contract checks among them) is run there.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from harness.plugin_api.overlay import OverlayEnv

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "harness-charbonnier"
NAMES = {
    ("lapsrn_charbonnier", "content_loss"),
    ("relativistic_average", "adversarial_loss"),
    ("sigmoid_rampup", "schedule"),
    ("charbonnier_error", "metric"),
}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> OverlayEnv:
    overlay = OverlayEnv(tmp_path_factory.mktemp("example_plugin") / "venv")
    overlay.pip_install(EXAMPLE)
    return overlay


def test_pyproject_entry_point_names_the_package() -> None:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "harness-charbonnier"
    assert meta["project"]["entry-points"]["harness"] == {"charbonnier": "harness_charbonnier"}
    assert (EXAMPLE / "harness_charbonnier" / "__init__.py").is_file()


def test_installed_example_is_listed_with_its_distribution(env: OverlayEnv) -> None:
    rows = json.loads(env.harness("plugins", "--json").stdout)
    mine = {(r["name"], r["kind"]) for r in rows if r["distribution"].startswith("harness-charb")}
    assert mine == NAMES
    assert {r["distribution"] for r in rows if (r["name"], r["kind"]) in NAMES} == {
        "harness-charbonnier 0.1.0"
    }
    # First-party plugins are still there next to it.
    assert ("mse", "content_loss") in {(r["name"], r["kind"]) for r in rows}


def test_experiment_uses_every_registered_piece(env: OverlayEnv, tmp_path: Path) -> None:
    experiment = tmp_path / "charbonnier.toml"
    experiment.write_text(
        """
[losses.lapsrn_charbonnier]
weight = 1.0

[losses.lapsrn_charbonnier_coarse]
name = "lapsrn_charbonnier"
weight = { schedule = "sigmoid_rampup", end = 0.5, steps = 100 }
eps = 0.01

[adversarial]
name = "relativistic_average"
weight = { schedule = "sigmoid_rampup", end = 1e-3, begin = 10, steps = 40 }
"""
    )
    flat = env.harness(
        "show", str(experiment), "--flat", "--set", "adversarial.label_smoothing=0.1"
    ).stdout.splitlines()
    for line in (
        "losses.lapsrn_charbonnier.name = lapsrn_charbonnier",
        "losses.lapsrn_charbonnier.eps = 0.001",  # the factory's default
        "losses.lapsrn_charbonnier_coarse.name = lapsrn_charbonnier",
        "losses.lapsrn_charbonnier_coarse.eps = 0.01",
        "losses.lapsrn_charbonnier_coarse.weight.schedule = sigmoid_rampup",
        "losses.lapsrn_charbonnier_coarse.weight.end = 0.5",
        "adversarial.name = relativistic_average",
        "adversarial.label_smoothing = 0.1",
        "adversarial.weight.begin = 10",
    ):
        assert line in flat, (line, flat)
    bad = env.harness(
        "show", str(experiment), "--set", "losses.lapsrn_charbonnier.eps=tiny", check=False
    )
    assert bad.returncode == 2
    assert 'key "eps"' in bad.stderr and "must be a number" in bad.stderr


def test_the_example_test_suite_passes_installed(env: OverlayEnv) -> None:
    """The package's own tests, the project's contract checks among them, as its CI runs them."""
    result = env.run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout
