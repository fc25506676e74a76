"""The codebase is ruff-clean (lint and format), as CI requires; importing it changes nothing in
the process and pulls in no test framework; plugins use only the host's public names."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (it is in the `test` extra)")
    return [found]


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff_clean(args: list[str]) -> None:
    result = subprocess.run(
        [*_ruff(), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- import hygiene

_IMPORT_EVERYTHING = """
import importlib, os, pkgutil, sys
for library in ("tensorflow", "keras", "mlflow", "optuna"):  # they set variables of their own
    importlib.import_module(library)
import harness
from PIL import Image

pillow_limit = Image.MAX_IMAGE_PIXELS
env = dict(os.environ)
skip = {"harness.plugin_api.testing"}  # the pytest plugin: it imports pytest, nothing imports it
for info in pkgutil.walk_packages(harness.__path__, "harness."):
    if info.name not in skip:
        importlib.import_module(info.name)
assert "pytest" not in sys.modules, "imported pytest"
assert dict(os.environ) == env, "changed the environment"
assert Image.MAX_IMAGE_PIXELS == pillow_limit, "changed Pillow's pixel limit"
print("ok")
"""


def test_importing_the_runtime_package_has_no_side_effects() -> None:
    """Every module of ``harness`` imports without pytest, and without touching the environment
    or Pillow's settings (the CLI makes those in ``configure_process``)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def _host_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every ``harness`` module or name a plugin file imports, and of
    every attribute it reads from one (``weights._x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "harness":
                    found.append((node.lineno, a.name))
                    aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "harness":
            for a in node.names:
                found.append((node.lineno, f"{node.module}.{a.name}"))
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            found.append((node.lineno, f"{aliases[node.value.id]}.{node.attr}"))
    return found


def test_plugins_use_only_public_host_names() -> None:
    """First-party plugins are ordinary plugins: no private module or name of the host."""
    private = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted((ROOT / "plugins").rglob("*.py"))
        for line, name in _host_imports(path)
        if any(part.startswith("_") for part in name.split("."))
    ]
    assert private == []
