"""``harness compare``: run a set of experiments in dependency order, then report them."""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands._options import overrides_option, registry
from harness.evaluation import compare


@click.command("compare")
@click.argument("experiments", nargs=-1, required=True, metavar="DIR|FILE...")
@overrides_option(
    help="Override a value in every experiment (TOML syntax), e.g. --set train.steps=10. "
    "Repeatable."
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Report folder [default: reports/<name of the first folder or file>].",
)
@click.option(
    "--data",
    "data_specs",
    multiple=True,
    metavar="DIR",
    help="Benchmark folders for the report (repeatable) [default: data/set5 data/set14 "
    "data/bsd100].",
)
@click.option(
    "--metric",
    "metric_names",
    multiple=True,
    metavar="NAME",
    help="Perceptual metric plugins of the report (repeatable) [default: lpips and dists].",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Train each experiment this many times, seeds seed, seed+1, ... (runs <name>-seed<s>, "
    "grouped in the report); an experiment others start from trains once [default: each "
    "experiment's [experiment] seeds, 1].",
)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    metavar="NAME",
    help="An experiment (or a .keras start file's stem) the report compares the others with; "
    "repeat it for several [default: the first start file, else the first experiment].",
)
@click.option("--report/--no-report", default=True, help="Write the report after training.")
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store for the report [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].",
)
def command(
    experiments: tuple[str, ...],
    overrides: tuple[str, ...],
    out: str | None,
    data_specs: tuple[str, ...],
    metric_names: tuple[str, ...],
    seeds: int | None,
    baselines: tuple[str, ...],
    report: bool,
    tracking_uri: str | None,
) -> None:
    """Train every experiment of DIR (its *.toml files; _*.toml are shared bases) or the FILEs
    given, each after the runs its [generator] init names, then `harness report` them (with
    the .keras files they start from, such as a committed base, first).

    Each experiment trains in its own process; running the command again skips finished runs
    and resumes an interrupted one. With --seeds N each experiment trains N times and the
    report shows each group's mean and spread, and its paired statistics over images and seeds.

    \b
      harness compare experiments/compare --data ../shared/data/set5 --data ../shared/data/set14
      harness compare experiments/compare --no-report
      harness compare experiments/compare --seeds 3 --baseline compare_ft_srgan
      harness compare experiments/budget --seeds 2 --baseline msrresnet16_mse_x4 \\
        --baseline budget_ft_perpix
    """
    planned = compare.plan(experiments, overrides, registry=registry(), seeds=seeds)
    click.echo("the comparison, in order:")
    for p in planned:
        init = f"  (init: {p.exp.generator.init})" if p.exp.generator.init else ""
        click.echo(f"  {p.path} -> {p.run_dir}{init}")
    compare.run_all(planned, overrides, say=click.echo)
    if not report:
        return
    # MLflow: loaded only when a report is written, not for --help
    from harness.evaluation.report import DEFAULT_DATA, write_report

    folder = Path(out) if out else Path("reports") / Path(experiments[0]).stem
    result = write_report(
        [*compare.start_files(planned), *(str(p.run_dir) for p in planned)],
        folder,
        registry=registry(),
        data=list(data_specs) or list(DEFAULT_DATA),
        metrics=list(metric_names) or None,
        tracking_uri=tracking_uri,
        say=click.echo,
        baseline=baselines,
    )
    click.echo(f"report: {result.markdown}")
