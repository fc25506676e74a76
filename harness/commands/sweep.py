"""``harness sweep``: run (or show) an Optuna study over an experiment's dotted keys."""

from __future__ import annotations

import shlex
import sys

import click

from harness.commands._options import overrides_option, registry


@click.command("sweep")
@click.argument("args", metavar="[show] FILE", nargs=-1, required=True)
@click.option(
    "--trials", "-n", type=int, help="Trials in the study in all (default [sweep].trials)."
)
@click.option("--jobs", "-j", type=int, help="Trial processes at once (default [sweep].jobs).")
@click.option(
    "--storage",
    metavar="URL",
    help="Optuna storage (default [sweep].storage, else sqlite:///optuna.db); "
    "postgresql://user@host/db lets workers on many machines share the study.",
)
@click.option("--study", "study_name", metavar="NAME", help="Study name (default [sweep].study).")
@overrides_option("Override a value of FILE (TOML syntax) for every trial. Repeatable.")
@click.option(
    "--preferential",
    is_flag=True,
    help="Rank the trials' sample grids by eye in optuna-dashboard ([sweep] mode = "
    '"preferential"); the sampler learns from the rankings.',
)
@click.option("--show", is_flag=True, help="Print the best trials from the storage and exit.")
@click.option("--top", type=int, default=10, show_default=True, help="Rows --show prints.")
def command(
    args: tuple[str, ...],
    trials: int | None,
    jobs: int | None,
    storage: str | None,
    study_name: str | None,
    overrides: tuple[str, ...],
    preferential: bool,
    show: bool,
    top: int,
) -> None:
    """Run the [sweep] of FILE: each trial trains in its own process, tracked in MLflow.

    Running it again resumes the study (trials count across runs and workers); start it on
    several machines with one --storage postgresql://... to share the work. A trial's
    parameters are applied as --set overrides, so they are checked like any other value.

    \b
      harness sweep experiments/perpix_sweep.toml --trials 40 --jobs 2
      harness sweep --show experiments/perpix_sweep.toml   (or: harness sweep show FILE)
      harness sweep experiments/quickstart_sweep.toml --preferential
      optuna-dashboard sqlite:///optuna.db --artifact-dir runs/<experiment>/<study>/artifacts
    """
    from harness import sweep as sweeps  # Optuna and MLflow: only when this command runs

    if len(args) == 2 and args[0] == "show":
        show, args = True, args[1:]
    if len(args) != 1:
        raise click.UsageError("give one sweep FILE (or: harness sweep show FILE).")
    file = args[0]
    if preferential:
        overrides = (*overrides, 'sweep.mode="preferential"')
    p = sweeps.plan(
        file,
        overrides,
        registry=registry(),
        trials=trials,
        jobs=jobs,
        storage=storage,
        study=study_name,
    )
    if show:
        click.echo(sweeps.show(p, top=top))
        return
    try:
        result = sweeps.run(p, echo=lambda line: click.echo(line, err=False))
    except KeyboardInterrupt:
        again = shlex.join(["harness", *sys.argv[1:]]) if sys.argv[1:] else "the same command"
        click.echo(
            f'interrupted: the study "{p.study_name}" in {sweeps.redact(p.storage_url)} keeps '
            "every finished trial (and its MLflow run); the trials that were running are marked "
            f"interrupted and run again. To continue: {again}",
            err=True,
        )
        raise SystemExit(130) from None
    click.echo(
        f'sweep "{result.study_name}": {len(result.ran)} trials run here; MLflow parent run '
        f"{result.parent_run_id}; sample grids: optuna-dashboard {sweeps.redact(p.storage_url)} "
        f"--artifact-dir {sweeps.artifact_dir(p)}"
    )
    click.echo(sweeps.show(p, top=top))
