"""``harness evaluate``: PSNR/SSIM of a model (or bicubic) on benchmark folders.

The suite is :mod:`harness.evaluation.suite` (the protocol: :mod:`harness.measures`);
this module parses the command line and prints.
"""

from __future__ import annotations

import click

from harness.commands._options import MODEL_OR_BICUBIC, registry
from harness.references import ModelRef


@click.command("evaluate")
@click.option(
    "--model",
    "model_ref",
    type=MODEL_OR_BICUBIC,
    default="bicubic",
    show_default=True,
    help="bicubic, or a trained model: run dir, checkpoint, .keras, exported SavedModel, or an "
    "MLflow model (runs:/<id>/generator, models:/<name>/<version>).",
)
@click.option(
    "--data",
    "data_opts",
    multiple=True,
    metavar="DIR",
    help="A folder of HR images, or of clip folders of frames (Vid4). Repeatable; more folders "
    "may follow as plain arguments.",
)
@click.argument("more", nargs=-1, metavar="[DIR]...")
@click.option(
    "--lr",
    "lr_dirs",
    multiple=True,
    metavar="DIR",
    help="A folder of given LR images for each data folder, in order (matched by file name, "
    "e.g. from `harness data degrade`); upscaled instead of bicubic LR.",
)
@click.option("--scale", type=int, default=None, help="Upscaling factor (bicubic: default 4).")
@click.option(
    "--border",
    type=click.IntRange(min=0),
    default=None,
    help="Pixels cropped from each border [default: scale].",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=0,
    help="Score only the first N images of each set (0: all).",
)
@click.option("--tile", type=int, default=0, help="LR tile side for large images (0: whole).")
@click.option(
    "--metric",
    "metric_names",
    multiple=True,
    metavar="NAME",
    help="Also report a registered metric plugin. Repeatable.",
)
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write rows as CSV.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write a JSON report.")
@click.option("--summary", is_flag=True, help="Print only the mean of each data set.")
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store of a runs:/ model [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db].",
)
@click.option(
    "--mlflow/--no-mlflow",
    "use_mlflow",
    default=True,
    help="Log eval/<data set>/<measure> to the model's MLflow run (a run directory, "
    "RUN@best_<metric> or runs:/ reference).",
)
def command(
    model_ref: ModelRef,
    data_opts: tuple[str, ...],
    more: tuple[str, ...],
    lr_dirs: tuple[str, ...],
    scale: int | None,
    border: int | None,
    limit: int,
    tile: int,
    metric_names: tuple[str, ...],
    csv_path: str | None,
    json_path: str | None,
    summary: bool,
    tracking_uri: str | None,
    use_mlflow: bool,
) -> None:
    """Score a model with the literature's PSNR/SSIM protocol on benchmark folders.

    \b
      harness evaluate --model bicubic --data ../shared/data/set5 ../shared/data/set14
      harness evaluate --model runs/srgan --data data/set5 --csv set5.csv
      harness evaluate --model runs:/<run id>/generator --data data/set5 data/vid4
      harness evaluate --model runs/real --data data/bsd100 --lr data/bsd100_realesrgan_x4
    """
    # MLflow: loaded only when the command runs, not for --help
    from harness.evaluation import mlflow_log, suite
    from harness.evaluation.run_store import store_uri

    result = suite.evaluate_folders(
        model_ref,
        [*data_opts, *more],
        registry(),
        scale=scale,
        border=border,
        limit=limit,
        tile=tile,
        metrics=metric_names,
        lr_specs=lr_dirs,
    )
    click.echo(result.text(summary))
    if json_path:
        result.write_json(json_path)
    if csv_path:
        result.write_csv(csv_path)
    run_id, configured, model = mlflow_log.evaluated_run(model_ref)
    if run_id and use_mlflow:
        uri = store_uri(tracking_uri, configured)
        values = mlflow_log.with_prefix(result.metric_values(), model)
        logged = mlflow_log.log_evaluation(run_id, uri, values, result.to_dict())
        click.echo(f"logged {logged} metrics to MLflow run {run_id} ({uri})")
