"""``harness report``: compare trained runs on benchmark sets, measured afresh, in one folder."""

from __future__ import annotations

import click

from harness.commands._options import registry
from harness.errors import HarnessError
from harness.evaluation.tables import format_measure, measure_name, text_table


@click.command("report")
@click.argument("runs", nargs=-1, metavar="RUN...")
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of the report [default: reports/<date-time>].",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="DIR",
    help="A benchmark folder of HR images (repeatable) [default: data/set5 data/set14 "
    "data/bsd100, where `harness data download set5 set14 bsd100 --dest data` puts them].",
)
@click.option(
    "--lr",
    "lr",
    multiple=True,
    metavar="DIR",
    help="A folder of given LR images for each --data folder, in order (matched by file name); "
    "upscaled instead of bicubic LR.",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="A metric plugin to report besides PSNR-Y and SSIM-Y (repeatable) [default: those of "
    "lpips, dists that are installed].",
)
@click.option(
    "--crops",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Images per set shown as side-by-side crops.",
)
@click.option(
    "--model-kind",
    default="final",
    show_default=True,
    metavar="final|best_psnr_y|best_lpips|...",
    help="Which generator of each run to evaluate; RUN@best_lpips sets it for one RUN.",
)
@click.option(
    "--baseline",
    "baselines",
    multiple=True,
    metavar="RUN",
    help="A run (a label or group of the report, or bicubic) every other run is compared with; "
    "repeat it to compare with several (two baselines are compared once) [default: the first "
    "run; bicubic when there is only one].",
)
@click.option(
    "--interpolate",
    type=click.IntRange(min=0),
    default=0,
    metavar="K",
    help="Score K network interpolations between each fine-tune and the base its lineage "
    "names (alpha 0 to 1) and draw them on the perception-distortion plane [default: none].",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store of the runs [default: each run's [tracking] uri, else "
    "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].",
)
@click.option(
    "--mlflow/--no-mlflow",
    "use_mlflow",
    default=True,
    help="Log the report folder as the artifacts of an MLflow run named report.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    runs: tuple[str, ...],
    out: str | None,
    data: tuple[str, ...],
    lr: tuple[str, ...],
    metrics: tuple[str, ...],
    crops: int,
    model_kind: str,
    baselines: tuple[str, ...],
    interpolate: int,
    tracking_uri: str | None,
    use_mlflow: bool,
    quiet: bool,
) -> None:
    """Evaluate RUNs and bicubic afresh on benchmark sets and write a comparison report.

    A RUN is a run directory (or a folder of them), a .keras generator file (a fixed model,
    e.g. the committed base its fine-tunes start from), an MLflow run id (a sweep's parent run:
    all its trials), or an MLflow experiment name or id (all its runs), tried in that order;
    add @best_lpips (or another kept generator) to evaluate that one instead of the final one. The
    folder gets report.md, report.html, report.json, scores.csv (every per-image score),
    curves.png, perception_distortion.png and crops_<set>_<image>.png, and is logged to MLflow
    as a run named "report". Each run (or group of seeds) is compared with each --baseline:
    image by image against a fixed model (bicubic, a model with no seed, a fine-tune's start),
    seed by seed between groups of replicates (Welch's t), and without a verdict between two
    single trained runs (train replicates: harness compare --seeds N); bootstrap intervals,
    Holm-corrected.

    \b
      harness report runs/compare_base_mse runs/compare_ft_srgan -o reports/losses
      harness report loss-comparison --data data/set5 --data data/set14
      harness report runs/srgan@best_lpips runs/srgan --metric lpips --no-mlflow
      harness report <sweep parent run id> --tracking-uri sqlite:///mlflow.db
    """
    from harness.evaluation import report as rep  # MLflow: loaded when the command runs
    from harness.evaluation.stats_text import sentence  # SciPy: loaded when the command runs

    if not runs:
        raise HarnessError(
            "no RUN to report: give run directories, MLflow run ids or an MLflow experiment "
            "name, e.g. `harness report runs/srresnet runs/srgan`."
        )
    result = rep.write_report(
        list(runs),
        out,
        registry=registry(),
        data=list(data) or rep.DEFAULT_DATA,
        lr=list(lr),
        metrics=list(metrics) if metrics else None,
        tracking_uri=tracking_uri,
        crops=crops,
        model_kind=model_kind,
        log_to_mlflow=use_mlflow,
        say=click.echo,
        progress=not quiet,
        baseline=baselines,
        interpolate=interpolate,
    )
    for label, table in result.tables.items():
        click.echo(f"\n{label}")
        rows = [
            [row, *(format_measure(values[k], k, result.protocols) for k in result.measures)]
            for row, values in table.items()
        ]
        click.echo(text_table(["", *(measure_name(k) for k in result.measures)], rows))
    click.echo("")
    unmarked = {}
    for comparison in result.comparisons:
        if comparison.significant:
            click.echo(sentence(comparison, result.protocols.get(comparison.measure)))
        elif comparison.too_few_seeds:
            why = "no verdict: one run a side" if comparison.one_run_a_side else "too few seeds"
            unmarked.setdefault((comparison.run, comparison.baseline), why)
    for (run, baseline), verdict in unmarked.items():
        click.echo(
            f"{run} against {baseline}: {verdict}, differences shown unmarked (replicates: "
            "harness compare --seeds N)"
        )
    click.echo("")
    for run in result.runs:
        if run.init_label:
            click.echo(f"{run.label} starts from {run.init_label}")
    click.echo(
        f"report: {result.markdown} (with report.html, report.json and {len(result.figures)} "
        f"figures in {result.out})"
    )
