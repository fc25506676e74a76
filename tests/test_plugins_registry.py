"""The plugin registry: entry points, provenance, clashes, unknown names, broken plugins, switches.

Installed-package cases run in a throwaway environment layered over this one
(:class:`harness.plugin_api.overlay.OverlayEnv`), so the shared environment never sees the test
packages.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import types
import warnings
from pathlib import Path

import pytest
from harness_adversarial import tfgan

from harness import hookimpl
from harness.errors import PluginError
from harness.plugin_api import registry as plugins
from harness.plugin_api.overlay import OverlayEnv
from harness.plugin_api.registry import (
    DISABLE_ENV,
    NO_AUTOLOAD_ENV,
    build_registry,
    name_problem,
)


def _plugin(**hooks: object) -> types.SimpleNamespace:
    """A plugin object whose hooks return the given mappings."""
    ns = types.SimpleNamespace()
    for hook, mapping in hooks.items():
        setattr(ns, hook, hookimpl(lambda mapping=mapping: mapping))
    return ns


def _schedule(value: float = 1.0):
    return lambda step: value


# --------------------------------------------------------------------------- in process


def test_same_name_from_two_plugins_is_an_error_naming_both() -> None:
    a = _plugin(harness_register_schedules={"ramp": _schedule})
    b = _plugin(harness_register_schedules={"ramp": _schedule})
    with pytest.raises(PluginError) as info:
        build_registry(extra=[(a, "alpha", "harness-alpha"), (b, "beta", "harness-beta")])
    message = str(info.value)
    for part in ('"ramp"', '"alpha"', "harness-alpha", '"beta"', "harness-beta", DISABLE_ENV):
        assert part in message


@pytest.mark.parametrize("name", ["Ramp", "my.ramp", "2ramp", "ramp-up", ""])
def test_names_must_be_snake_case(name: str) -> None:
    p = _plugin(harness_register_schedules={name: _schedule})
    with pytest.raises(PluginError, match="snake_case") as info:
        build_registry(extra=[(p, "p", "harness-p")], autoload=False)
    assert f'"{name}"' in str(info.value) and "harness-p" in str(info.value)


@pytest.mark.parametrize("name", ["ramp", "l1_v2", "a__b", "ramp_", "r2d2_x", "Ramp", "2ramp"])
def test_registry_and_scaffold_apply_one_name_rule(name: str) -> None:
    from harness.plugin_api import scaffold

    valid = not name_problem(name)
    p = _plugin(harness_register_schedules={name: _schedule})
    if valid:
        assert build_registry(extra=[(p, "p", "x")], autoload=False).names("schedule") == [name]
        assert scaffold.normalise_name(name) == name
    else:
        with pytest.raises(PluginError, match="snake_case"):
            build_registry(extra=[(p, "p", "x")], autoload=False)
        assert name in ("a__b", "ramp_", "Ramp", "2ramp")


def test_pytest_plugin_is_declared_and_gives_its_fixtures(pytester: pytest.Pytester) -> None:
    """``harness.plugin_api.testing`` is the ``pytest11`` entry point of the distribution (named
    after its module, so ``-p`` with the module name is the same plugin, not a second one).
    The inner pytest runs in this process (pytester), with the plugins it loads itself."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {
        "harness.plugin_api.testing": "harness.plugin_api.testing"
    }
    pytester.makepyfile(
        test_uses_fixtures="from harness import hookimpl\n"
        "from harness.plugin_api.testing import assert_plugin_contracts\n\n"
        "class Mine:\n"
        "    @hookimpl\n"
        "    def harness_register_schedules():\n"
        "        return {'flat': lambda value=1.0: lambda step: value}\n\n"
        "def test_hermetic(hermetic_registry):\n"
        "    registry = hermetic_registry([(Mine, 'mine', 'harness-mine')])\n"
        "    assert registry.names('schedule') == ['flat']\n"
        "    assert_plugin_contracts('harness-mine', registry=registry)\n\n"
        "def test_installed(harness_registry):\n"
        "    assert 'mse' in harness_registry.names('content_loss')\n"
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-p", "harness.plugin_api.testing")
    result.assert_outcomes(passed=2)


def test_tfgan_loader_leaves_importlib_working() -> None:
    import importlib.util

    tfgan.losses_impl()
    spec = importlib.util.find_spec("tensorflow_gan")
    assert spec is not None and spec.submodule_search_locations


def test_same_name_in_two_kinds_is_allowed() -> None:
    p = _plugin(
        harness_register_schedules={"charb": _schedule},
        harness_register_metrics={"charb": lambda: lambda sr, hr: 0.0},
    )
    registry = build_registry(extra=[(p, "p", "harness-p")], autoload=False)
    assert registry.names("schedule") == ["charb"] == registry.names("metric")


def test_unknown_name_lists_the_known_ones_with_provenance() -> None:
    p = _plugin(harness_register_schedules={"cosine_ramp": _schedule, "step_down": _schedule})
    registry = build_registry(extra=[(p, "mine", "harness-mine")], autoload=False)
    with pytest.raises(PluginError) as info:
        registry.get("schedule", "cosine_rmap", where="[train] (x.toml)")
    message = str(info.value)
    assert 'unknown schedule "cosine_rmap" in [train] (x.toml)' in message
    assert 'Did you mean "cosine_ramp"?' in message
    assert (
        "cosine_ramp (from harness-mine)" in message and "step_down (from harness-mine)" in message
    )
    assert "harness plugins" in message


def test_entries_carry_provenance() -> None:
    p = _plugin(harness_register_content_losses={"l9": lambda: lambda sr, hr: 0.0})
    registry = build_registry(extra=[(p, "nine", "harness-nine")], autoload=False)
    (entry,) = registry.entries()
    assert (entry.kind, entry.name, entry.plugin, entry.distribution) == (
        "content_loss",
        "l9",
        "nine",
        "harness-nine",
    )


def test_misspelt_hook_is_an_error() -> None:
    p = types.SimpleNamespace(harness_register_loss=hookimpl(lambda: {"x": _schedule}))
    with pytest.raises(PluginError, match="harness_register_content_losses"):
        build_registry(extra=[(p, "typo", "harness-typo")], autoload=False)


def test_hook_returning_a_non_mapping_or_non_callable_is_an_error() -> None:
    p = _plugin(harness_register_schedules=["ramp"])
    with pytest.raises(PluginError, match="must return a mapping"):
        build_registry(extra=[(p, "listy", "harness-listy")], autoload=False)
    q = _plugin(harness_register_schedules={"ramp": 3.0})
    with pytest.raises(PluginError, match='schedule "ramp" with a float, which is not callable'):
        build_registry(extra=[(q, "floaty", "harness-floaty")], autoload=False)


def test_autoload_off_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_registry().entries(), "the first-party plugins are installed"
    monkeypatch.setenv(NO_AUTOLOAD_ENV, "1")
    assert build_registry().entries() == []
    p = _plugin(harness_register_schedules={"only": _schedule})
    assert [e.name for e in build_registry(extra=[(p, "only", "x")]).entries()] == ["only"]


def test_disable_by_entry_point_or_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    full = build_registry()
    assert full.names("schedule")
    monkeypatch.setenv(DISABLE_ENV, "schedules")
    partial = build_registry()
    assert partial.names("schedule") == []
    assert partial.names("content_loss") == full.names("content_loss")
    monkeypatch.setenv(DISABLE_ENV, "srgan-harness")
    assert build_registry().entries() == []


def test_unknown_disabled_names_are_warned_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "_WARNED_UNKNOWN", set())
    monkeypatch.setenv(DISABLE_ENV, "schedules,shedules")
    with pytest.warns(plugins.PluginWarning) as caught:
        registry = build_registry()
    assert registry.names("schedule") == []  # the right name still works
    (message,) = [str(w.message) for w in caught]
    assert f'{DISABLE_ENV} names "shedules", which matches no installed plugin' in message
    known = message.split("Known plugin names (entry points and distributions): ")[1]
    assert "schedules" in known and "srgan-harness" in known and "losses" in known
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_registry()  # once: the same name is not warned about again
    p = _plugin(harness_register_schedules={"only": _schedule})
    monkeypatch.setenv(DISABLE_ENV, "mine")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plugin given in extra is a known name too
        assert build_registry(extra=[(p, "mine", "x")], autoload=False).entries() == []


def test_tfgan_losses_are_the_installed_package() -> None:
    module = tfgan.losses_impl()
    # The installed distribution's files (importlib.util.find_spec cannot be used once the
    # loader has put its bare package modules, which have no __spec__, in sys.modules).
    root = Path(md.distribution("tensorflow-gan").locate_file("tensorflow_gan")).resolve()
    assert (root / "python" / "losses" / "losses_impl.py").is_file()
    for fn in (module.minimax_discriminator_loss, module.least_squares_generator_loss):
        assert fn.__module__ == "tensorflow_gan.python.losses.losses_impl"
        assert Path(fn.__code__.co_filename).resolve().is_relative_to(root)
    assert Path(module.__file__).resolve() == root / "python" / "losses" / "losses_impl.py"
    import tensorflow as tf

    value = module.minimax_discriminator_loss(tf.constant([[1.0]]), tf.constant([[-1.0]]))
    assert bool(tf.math.is_finite(value))


# --------------------------------------------------------------------------- installed packages


def _write_package(root: Path, dist: str, module: str, body: str) -> Path:
    """A minimal plugin distribution: pyproject with the entry point, one module."""
    pkg = root / dist
    (pkg / module).mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "2.3.4"

[project.entry-points.harness]
{module.removeprefix("harness_")} = "{module}"
"""
    )
    (pkg / module / "__init__.py").write_text(body)
    return pkg


GOOD = """
from harness import hookimpl

def probe_ramp(length: int = 10):
    return lambda step: min(step / length, 1.0)

@hookimpl
def harness_register_schedules():
    return {"probe_ramp": probe_ramp}
"""

BROKEN = """
raise RuntimeError("this plugin is broken on purpose")
"""


def _listed(env: OverlayEnv, **extra_env: str) -> dict[str, str]:
    rows = json.loads(env.harness("plugins", "--json", env=extra_env).stdout)
    return {r["name"]: r["distribution"] for r in rows}


@pytest.mark.slow  # pip-installs two packages; test_example_plugin covers an installed one
def test_installed_packages_appear_fail_clearly_are_disabled_and_uninstall(
    tmp_path: Path,
) -> None:
    env = OverlayEnv(tmp_path / "venv")
    env.pip_install(_write_package(tmp_path, "harness-probe-good", "harness_probe_good", GOOD))
    listed = _listed(env)
    assert listed["probe_ramp"] == "harness-probe-good 2.3.4"
    assert listed["mse"].startswith("srgan-harness ")

    env.pip_install(_write_package(tmp_path, "harness-probe-bad", "harness_probe_bad", BROKEN))
    failed = env.harness("plugins", check=False)
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    for part in (
        'plugin entry point "probe_bad = harness_probe_bad"',
        "harness-probe-bad 2.3.4",
        "RuntimeError: this plugin is broken on purpose",
        f"{DISABLE_ENV}=probe_bad",
    ):
        assert part in failed.stderr, failed.stderr
    assert "probe_ramp" in _listed(env, **{DISABLE_ENV: "probe_bad"})
    assert "probe_ramp" in _listed(env, **{DISABLE_ENV: "harness-probe-bad"})
    assert _listed(env, **{DISABLE_ENV: "probe_bad", NO_AUTOLOAD_ENV: "1"}) == {}

    env.pip_uninstall("harness-probe-bad")
    env.pip_uninstall("harness-probe-good")
    listed = _listed(env)
    assert "probe_ramp" not in listed and "mse" in listed
