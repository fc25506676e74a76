"""Test helpers for plugin authors: run the project's own contract checks in your CI.

In a plugin package's tests (after ``pip install -e .``)::

    from harness.plugin_api.testing import assert_plugin_contracts

    def test_contracts():
        assert_plugin_contracts("harness-myloss")

Or load this module as a pytest plugin (``pytest_plugins = ["harness.plugin_api.testing"]`` in a
``conftest.py``) for the fixtures ``harness_registry`` (the installed plugins, built afresh) and
``hermetic_registry`` (an empty-autoload registry factory, for tests that register plugin objects
directly).

The checks are :mod:`harness.plugin_api.contracts`, the same ones the project runs over its whole
registry:
each loss gives a finite float32 scalar with gradients (also on ``bfloat16`` inputs and inside
``tf.function``), each generator upscales by ``scale`` and survives a ``.keras`` round trip,
each schedule is finite at every step, and so on.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
import venv
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.plugin_api import contracts
from harness.plugin_api.registry import Entry, Registry, build_registry

__all__ = [
    "OverlayEnv",
    "assert_plugin_contracts",
    "distribution_entries",
    "harness_registry",
    "hermetic_registry",
]


def _normalise(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


def distribution_entries(distribution: str, registry: Registry | None = None) -> list[Entry]:
    """Every registry entry that ``distribution`` provides (names compared as pip does)."""
    registry = registry or build_registry()
    wanted = _normalise(distribution)
    return [e for e in registry.entries() if _normalise(e.distribution) == wanted]


def assert_plugin_contracts(
    distribution: str,
    *,
    registry: Registry | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Entry]:
    """Check every plugin ``distribution`` registers; return the entries checked.

    The registry is built afresh from the installed entry points (so a package installed during
    the test session is seen), unless ``registry`` is given. ``params`` maps ``"<kind>:<name>"``
    or ``"<name>"`` to factory parameters that make a check cheap (a factory may instead carry a
    ``contract_params`` dict). A distribution that registers nothing fails, with the list of
    distributions that do: the usual cause is a package not installed or a missing
    ``[project.entry-points.harness]`` table.
    """
    registry = registry or build_registry()
    try:
        return contracts.check_distribution(distribution, registry=registry, params=params)
    except contracts.ContractError as exc:
        raise AssertionError(str(exc)) from exc


@pytest.fixture
def harness_registry() -> Registry:
    """The registry of every installed, enabled plugin, built for this test."""
    return build_registry()


@pytest.fixture
def hermetic_registry() -> Callable[[Iterable[tuple[object, str, str]]], Registry]:
    """``make(plugins)`` -> a registry of only ``(module_or_object, plugin_name, dist)`` triples.

    No entry point is loaded, so the test sees exactly the plugins it names.
    """

    def make(plugins: Iterable[tuple[object, str, str]]) -> Registry:
        return build_registry(extra=list(plugins), autoload=False)

    return make


class OverlayEnv:
    """A throwaway virtual environment layered over the running one, to install plugins into.

    It sees every package of the running environment (srgan-harness, TensorFlow, ...) through a
    ``.pth`` file, while ``pip install`` writes only into its own folder: installing and
    uninstalling a test plugin never touches the shared environment, other processes using it
    never see the plugin, and nothing is left behind if the test is killed. Creating one takes
    well under a second (no pip is copied in).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(self.root)
        bindir = "Scripts" if os.name == "nt" else "bin"
        self.python = self.root / bindir / ("python.exe" if os.name == "nt" else "python")
        purelib = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        parent = sysconfig.get_paths()["purelib"]
        # addsitedir (not a bare path) so the parent's own .pth files (editable installs) apply.
        Path(purelib, "_harness_overlay_parent.pth").write_text(
            f"import site; site.addsitedir({parent!r})\n", encoding="utf-8"
        )

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for subprocesses: offline pip, quiet TensorFlow, plus ``extra``."""
        env = {
            **os.environ,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INDEX": "1",
            "PIP_NO_INPUT": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "VIRTUAL_ENV": str(self.root),
            "PATH": f"{self.python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("PYTHONHOME", None)
        env.update(extra or {})
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """``python args...`` in this environment; with ``check`` a failure shows its output."""
        result = subprocess.run(
            [str(self.python), *args],
            env=self.env(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"`python {' '.join(args)}` exited {result.returncode}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
            )
        return result

    def harness(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """The ``harness`` command line, run in this environment."""
        return self.run(["-m", "harness.cli", *args], **kwargs)

    def pip_install(self, package: str | Path, editable: bool = True) -> None:
        """``pip install --no-deps --no-build-isolation [-e] package``: offline, in seconds."""
        flags = ["-e"] if editable else []
        self.run(
            [
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                *flags,
                str(package),
            ]
        )

    def pip_uninstall(self, distribution: str) -> None:
        self.run(["-m", "pip", "uninstall", "-q", "-y", distribution])
