"""The ``harness`` command line.

Subcommands live in :mod:`harness.commands`, one module each, each exposing ``command``; the
CLI adds the ones named in :data:`COMMANDS`.
A :class:`~harness.errors.HarnessError` is printed as one line (``error: ...``) with exit code 2,
never as a traceback; a :class:`~harness.errors.HarnessWarning` as one ``warning: ...`` line.
Process-wide settings (TensorFlow's start-up messages and MLflow's store set-up lines hidden
unless ``--verbose``, Pillow's pixel limit, how warnings print) are made by
:func:`configure_process`, which :func:`main` calls; importing this module changes nothing.
"""

from __future__ import annotations

import sys
import warnings

import click

from harness import __version__
from harness.commands import (
    compare,
    data,
    evaluate,
    export,
    interpolate,
    plugin,
    plugins,
    report,
    run,
    serve,
    show,
    sweep,
    upscale,
)
from harness.console import quiet_mlflow, quiet_tensorflow
from harness.data.images import use_own_pixel_limit
from harness.errors import HarnessError, HarnessWarning

COMMANDS = (
    compare,
    data,
    evaluate,
    export,
    interpolate,
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
        except Exception as exc:
            if not _database_locked(exc):
                raise
            click.echo(
                "error: the MLflow tracking database is locked by another process (SQLite "
                "allows one writer at a time, and that one held it too long). Nothing is lost: "
                "run the command again once the other run writes less (or finishes); for "
                "several runs at once use an MLflow server: `mlflow server --backend-store-uri "
                "sqlite:///mlflow.db` and MLFLOW_TRACKING_URI=http://127.0.0.1:5000.",
                err=True,
            )
            ctx.exit(2)


def _database_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked", however MLflow or SQLAlchemy wrapped it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if "database is locked" in str(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="harness")
@click.option(
    "--verbose",
    is_flag=True,
    help="Show TensorFlow's C++ log lines (oneDNN, CUDA, XLA, Grappler) and MLflow's store "
    "set-up lines (creating and updating its database tables), hidden by default.",
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
    TensorFlow: its C++ log noise hidden (:func:`quiet_tensorflow`, which keeps a
    ``TF_CPP_MIN_LOG_LEVEL`` the user set) and MLflow's store set-up lines
    (:func:`quiet_mlflow`) unless ``verbose``, the harness's own image pixel
    limit in place of Pillow's (:func:`harness.data.images.use_own_pixel_limit`) and warnings
    printed as one ``warning: ...`` line."""

    if not verbose:
        quiet_tensorflow()
        quiet_mlflow()
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
