"""The ``harness`` command line.

Subcommands live in :mod:`harness.commands`, one module each, each exposing ``command``; the
CLI adds the ones named in :data:`COMMANDS`.
A :class:`~harness.errors.HarnessError` is printed as one line (``error: ...``) with exit code 2,
never as a traceback; a :class:`~harness.errors.HarnessWarning` as one ``warning: ...`` line.
Process-wide settings (TensorFlow's start-up messages hidden unless ``--verbose``, Pillow's pixel
limit, how warnings print) are made by :func:`configure_process`, which :func:`main` calls;
importing this module changes nothing.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

import click

from harness import __version__
from harness.commands import (
    compare,
    data,
    evaluate,
    export,
    plugin,
    plugins,
    report,
    run,
    serve,
    show,
    sweep,
    upscale,
)
from harness.errors import HarnessError, HarnessWarning

COMMANDS = (
    compare,
    data,
    evaluate,
    export,
    plugin,
    plugins,
    report,
    run,
    serve,
    show,
    sweep,
    upscale,
)
"""The modules whose ``command`` the CLI adds (a new subcommand is added here)."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="harness")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's C++ start-up messages (oneDNN, CUDA, XLA), hidden by default.",
)
def cli(verbose: bool) -> None:
    """Train, sweep, evaluate and serve GAN super-resolution models.

    Losses, generators, discriminators and schedules are plugins (entry-point group "harness");
    an experiment is a TOML file naming them. Start with:

    \b
      harness plugins                          what is installed
      harness show experiments/quickstart.toml the resolved experiment
    """


for _module in COMMANDS:
    cli.add_command(_module.command)


_show_warning = warnings.showwarning


def _show_harness_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
    """The harness's own warnings as ``warning: ...`` (they name the file or setting already);
    any other warning as Python prints it."""
    if isinstance(category, type) and issubclass(category, HarnessWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


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
def _filtered_stderr() -> Iterator[None]:
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
    which logs an error on a machine without a GPU) inside :func:`_filtered_stderr`, then steps
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
            with _filtered_stderr():
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


def wants_verbose(argv: list[str]) -> bool:
    """Whether ``--verbose`` is among the options before the subcommand (read before Click
    parses them, since TensorFlow's logging is settled before any command runs)."""
    for arg in argv:
        if arg == "--verbose":
            return True
        if arg == "--" or not arg.startswith("-"):
            return False
    return False


def configure_process(verbose: bool = False) -> None:
    """The process-wide settings of a command line run, made before any command imports
    TensorFlow: its start-up messages hidden (:func:`quiet_tensorflow`) unless
    ``verbose`` or the user set ``TF_CPP_MIN_LOG_LEVEL``, the harness's own image pixel limit in
    place of Pillow's (:func:`harness.data.images.use_own_pixel_limit`) and warnings printed as
    one ``warning: ...`` line."""
    from harness.data.images import use_own_pixel_limit

    if not verbose and "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        quiet_tensorflow()
    use_own_pixel_limit()
    warnings.showwarning = _show_harness_warning


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    configure_process(wants_verbose(sys.argv[1:] if argv is None else argv))
    try:
        cli.main(args=argv, prog_name="harness", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    except HarnessError as exc:  # raised outside a subcommand (e.g. while loading)
        click.echo(f"error: {exc}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
