"""``harness run``: train an experiment, resuming its checkpoint when there is one."""

from __future__ import annotations

from importlib import resources

import click

from harness import config
from harness.commands._options import overrides_option, registry


def quickstart_path() -> str:
    """The quickstart experiment shipped inside the package (runs offline on a CPU)."""
    return str(resources.files("harness") / "experiments" / "quickstart.toml")


@click.command("run")
@click.argument("experiment", required=False, type=click.Path(dir_okay=False))
@overrides_option()
@click.option(
    "--quiet",
    is_flag=True,
    help="No progress bar: one plain line per log interval, for log files (train.quiet = true).",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Ignore the run directory's checkpoint and start a new MLflow run.",
)
def command(experiment: str | None, overrides: tuple[str, ...], quiet: bool, fresh: bool) -> None:
    """Train EXPERIMENT (a TOML file; default: the built-in quickstart) and log it to MLflow.

    A run directory (<runs_dir>/<name>) that holds a checkpoint is resumed, in the same MLflow
    run. Ctrl-C saves a checkpoint first; running the same command again continues.
    """
    from harness.training.loop import StopTraining, TrainingInterrupted, train

    items = list(overrides) + (["train.quiet=true"] if quiet else [])
    plugins = registry()
    exp = config.load(experiment or quickstart_path(), items, registry=plugins)
    try:
        result = train(exp, registry=plugins, fresh=fresh)
    except TrainingInterrupted as exc:
        click.echo(f"interrupted: {exc}", err=True)
        raise SystemExit(130) from None
    except StopTraining as exc:
        click.echo(f"stopped: {exc}", err=True)
        raise SystemExit(1) from None
    final = result.final_metrics
    base = result.bicubic_metrics.get("val/bicubic_psnr_y")
    line = f"done: {result.steps} steps, run {result.run_id}"
    if "val/psnr_y" in final:
        line += f"; validation PSNR-Y {final['val/psnr_y']:.2f} dB"
        if base is not None:
            line += f" vs bicubic {base:.2f} dB"
    click.echo(line)
    if result.model_path:
        click.echo(f"generator: {result.model_path}")
