"""The structure docs/architecture.md states holds: wings import downward, no module circles,
plugins stay off the host's upper wings (import-linter, contracts in pyproject.toml); no host
module over 450 lines; an import inside a function says why it is not at the module header."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 450


def test_import_contracts_hold() -> None:
    """``lint-imports`` over the contracts in pyproject.toml (the same command a developer runs);
    it fails naming the import and its line when a new upward import or circle appears."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command as c; c()",
            "--no-cache",
            "--config",
            str(ROOT / "pyproject.toml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and "KEPT" in done.stdout


def _host_modules() -> list[Path]:
    return sorted((ROOT / "harness").rglob("*.py"))


def test_no_host_module_is_over_450_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _host_modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def _reason_above(lines: list[str], index: int) -> bool:
    """Whether a comment line opens the run of import lines that ends at ``lines[index]``."""
    for above in reversed(lines[:index]):
        text = above.strip()
        if text.startswith("#"):
            return True
        if not text.startswith(("import ", "from ")):
            return False
    return False


def _unexplained_local_imports(source: str) -> list[tuple[int, str]]:
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import | ast.ImportFrom):
                line = lines[sub.lineno - 1]
                if "#" not in line and not _reason_above(lines, sub.lineno - 1):
                    found.append((sub.lineno, line.strip()))
    return sorted(set(found))


def test_imports_inside_functions_say_why() -> None:
    """An import stays inside a function only for a heavy or optional dependency, with its
    reason as a comment on the line (or the line above); every other import is at the top."""
    missing = [
        f"{p.relative_to(ROOT)}:{n}: {text}"
        for p in _host_modules()
        for n, text in _unexplained_local_imports(p.read_text(encoding="utf-8"))
    ]
    assert not missing, "imports inside functions without a reason:\n" + "\n".join(missing)


def test_the_local_import_check_finds_an_unexplained_import() -> None:
    """The check above is not vacuous: it flags a bare local import and accepts a reasoned one."""
    source = (
        "def f():\n    import json\n\n"
        "def g():\n    import tensorflow as tf  # heavy: only training needs it\n\n"
        "def h():\n    # MLflow: only when logging\n    import mlflow\n    import mlflow.pyfunc\n"
    )
    assert _unexplained_local_imports(source) == [(2, "import json")]
