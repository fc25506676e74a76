"""The process's console: TensorFlow's C++ start-up lines (CUDA probing, oneDNN, CPU features,
absl's preamble) hidden from what ``import tensorflow`` writes, for the CLI and the sweep's trial
processes alike. Importing this module changes nothing; :func:`quiet_tensorflow` does."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator

TF_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
    rb"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\]"  # absl INFO/WARNING lines
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] "  # TensorFlow's own INFO/WARNING
    rb"|To enable the following instructions: "  # the CPU feature line's second half
    rb"|E\d{4} .*(Unable to register cu(DNN|FFT|BLAS) factory|failed call to cuInit))"
)
"""TensorFlow's C++ start-up lines (CUDA probing, oneDNN, CPU features, absl's preamble),
written while ``import tensorflow`` runs and devices are first listed, where
``TF_CPP_MIN_LOG_LEVEL`` does not reach them."""


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the block; afterwards every line of it
    that is not :data:`TF_NOISE` is written to the real stderr."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().splitlines(True) if not TF_NOISE.match(ln)]
            if kept:
                os.write(2, b"".join(kept))


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` and a first listing of its devices (CUDA's probe,
    which logs an error on a machine without a GPU) inside :func:`filtered_stderr`, then steps
    aside. Listing physical devices does not initialise the runtime, so device settings made
    afterwards still apply."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def quiet_exec_module(module):  # noqa: ANN001, ANN202
            with filtered_stderr():
                exec_module(module)
                with contextlib.suppress(Exception):
                    module.config.list_physical_devices()

        loader.exec_module = quiet_exec_module  # type: ignore[method-assign]
        return spec


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up lines: ``TF_CPP_MIN_LOG_LEVEL=2`` for what it logs once
    running, and :data:`TF_NOISE` lines dropped from what ``import tensorflow`` writes (absl
    writes those before any log level applies). TensorFlow stays unimported until a command
    needs it."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


__all__ = ["TF_NOISE", "filtered_stderr", "quiet_tensorflow"]
