"""A throwaway virtual environment layered over the running one, for installing plugin packages
in tests without touching the shared environment (:class:`OverlayEnv`).

Plain library code (no pytest), re-exported by :mod:`harness.plugin_api.testing`.
"""

from __future__ import annotations

import os
import subprocess
import sysconfig
import venv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["OverlayEnv"]


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
