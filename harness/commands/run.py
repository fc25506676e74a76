"""``harness run``: train an experiment, resuming its checkpoint when there is one."""

from __future__ import annotations

import json
import os
import re
from importlib import resources

import click

from harness import config
from harness.commands._options import overrides_option, registry

_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
_ADDRESS = re.compile(rf"^{_HOST}:(\d{{1,5}})$")


def cluster_config(worker_index: int | None, workers: str | None) -> dict | None:
    """``--worker-index`` and ``--workers`` -> the ``TF_CONFIG`` of this task (``None`` when
    neither is given). Worker 0 is the chief. Raises :class:`click.BadParameter` naming the
    option and the fix."""
    if worker_index is None and workers is None:
        return None
    if workers is None:
        raise click.BadParameter(
            "--worker-index needs --workers: give both, e.g. --workers host1:12345,host2:12345 "
            "--worker-index 0 (or set TF_CONFIG and neither option).",
            param_hint="--workers",
        )
    if worker_index is None:
        raise click.BadParameter(
            "--workers needs --worker-index: this machine's position in the --workers list "
            "(0 on the chief, 1 on the next, ...).",
            param_hint="--worker-index",
        )
    addresses = [a.strip() for a in workers.split(",")]
    for address in addresses:
        match = _ADDRESS.match(address)
        if match is None or not 1 <= int(match.group(1)) <= 65535:
            raise click.BadParameter(
                f'"{address}" is not a host:port address: list every worker as host:port '
                "(port 1-65535), separated by commas, e.g. node1:12345,node2:12345.",
                param_hint="--workers",
            )
    if len(set(addresses)) != len(addresses):
        raise click.BadParameter(
            f"{workers} lists an address twice: give each worker its own host:port.",
            param_hint="--workers",
        )
    if not 0 <= worker_index < len(addresses):
        raise click.BadParameter(
            f"{worker_index} is out of range for {len(addresses)} worker(s): use 0 to "
            f"{len(addresses) - 1}, this machine's position in --workers (0 is the chief).",
            param_hint="--worker-index",
        )
    return {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": worker_index}}


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
@click.option(
    "--workers",
    metavar="HOST:PORT,...",
    help="Train on several machines: every worker's address, the same list on each "
    "(worker 0 is the chief). Needs --worker-index; sets TF_CONFIG and "
    'train.strategy = "multi_worker" (unless --set train.strategy=... is given). '
    "See docs/distributed.md.",
)
@click.option(
    "--worker-index",
    type=click.IntRange(min=0),
    metavar="I",
    help="This machine's position in --workers (0: the chief, which writes the checkpoints, "
    "the final model and the MLflow run).",
)
def command(
    experiment: str | None,
    overrides: tuple[str, ...],
    quiet: bool,
    fresh: bool,
    workers: str | None,
    worker_index: int | None,
) -> None:
    """Train EXPERIMENT (a TOML file; default: the built-in quickstart) and log it to MLflow.

    A run directory (<runs_dir>/<name>) that holds a checkpoint is resumed, in the same MLflow
    run. Ctrl-C saves a checkpoint first; running the same command again continues.
    """
    cluster = cluster_config(worker_index, workers)
    # TensorFlow: loaded only when a run starts, not for --help
    from harness.training.loop import StopTraining, TrainingInterrupted, train

    items = list(overrides) + (["train.quiet=true"] if quiet else [])
    if cluster is not None:
        os.environ["TF_CONFIG"] = json.dumps(cluster)
        if not any(item.split("=", 1)[0].strip() == "train.strategy" for item in items):
            items.append('train.strategy="multi_worker"')
    plugins = registry()
    exp = config.load(experiment or quickstart_path(), items, registry=plugins)
    try:
        result = train(exp, registry=plugins, fresh=fresh)
    except TrainingInterrupted as exc:
        click.echo(f"interrupted: {exc}", err=True)
        raise SystemExit(128 + exc.signum) from None  # 130 for SIGINT, 143 for SIGTERM
    except StopTraining as exc:
        click.echo(f"stopped: {exc}", err=True)
        raise SystemExit(1) from None
    final = result.final_metrics
    base = result.bicubic_metrics.get("val/bicubic_psnr_y")
    run = f"run {result.run_id}" if result.run_id else "the chief logs the MLflow run"
    line = f"done: {result.steps} steps, {run}"
    if "val/psnr_y" in final:
        line += f"; validation PSNR-Y {final['val/psnr_y']:.2f} dB"
        if base is not None:
            line += f" vs bicubic {base:.2f} dB"
    click.echo(line)
    if result.model_path:
        click.echo(f"generator: {result.model_path}")
    if result.run_id and result.experiment_id:
        # MLflow: loaded only once a run has ended
        from harness.run_context import run_url, ui_command

        if command := ui_command(result.tracking_uri):
            click.echo(f"MLflow UI: {command}")
        click.echo(f"run page: {run_url(result.tracking_uri, result.experiment_id, result.run_id)}")
