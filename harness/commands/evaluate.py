"""``harness evaluate``: PSNR/SSIM of a model (or bicubic) on benchmark folders.

The protocol is :mod:`harness.evaluation.protocol`: HR cropped to a multiple of the scale, LR by
MATLAB
bicubic, output rounded to 8 bits, PSNR and SSIM on the BT.601 Y channel with ``scale`` border
pixels cropped, RGB PSNR too.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness.errors import HarnessError
from harness.evaluation.tables import text_table

MLFLOW_RUN = re.compile(r"^runs:/([0-9a-zA-Z]+)(/.*)?$")
BARE_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Suite:
    """One data set to score: a folder of images (or of video frames) and its label."""

    label: str
    spec: str
    group: str = ""  # the clip collection this folder belongs to ("" for a plain folder)


def discover(specs: Sequence[str]) -> list[Suite]:
    """Folder specs -> data sets. A folder holding no images but subfolders of images (the Vid4
    layout: one folder of frames per clip) becomes one data set per clip, in a group."""
    from harness.data import images
    from harness.data import pipeline as data

    suites: list[Suite] = []
    for spec in specs:
        if spec == data.SKIMAGE:
            suites.append(Suite(data.SKIMAGE, spec))
            continue
        folder = Path(spec).expanduser()
        files = data.resolve(spec)  # raises with a download hint when missing
        label = data.folder_label(spec)
        if files:
            suites.append(Suite(label, spec))
            continue
        clips = sorted(p for p in folder.iterdir() if p.is_dir() and images.list_images(p))
        if not clips:
            raise HarnessError(
                f"{folder} holds no images ({', '.join(images.IMAGE_SUFFIXES)}) and no "
                "subfolders of images (video frames)."
            )
        suites.extend(Suite(f"{label}/{clip.name}", str(clip), label) for clip in clips)
    labels = [s.label for s in suites]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise HarnessError(
            f"two data folders have the same name ({', '.join(dupes)}); give each data set a "
            "folder with a distinct name."
        )
    return suites


def mlflow_run_id(ref: str) -> str | None:
    """The MLflow run a model reference belongs to (``runs:/<id>/...`` or a bare run id)."""
    match = MLFLOW_RUN.match(ref)
    if match:
        return match.group(1)
    if BARE_RUN_ID.match(ref) and not Path(ref).exists():
        return ref
    return None


def metric_key(label: str, measure: str) -> str:
    """``eval/<data set>/<measure>`` with characters MLflow refuses replaced."""
    safe = re.sub(r"[^0-9A-Za-z_\-./ ]", "_", label)
    return f"eval/{safe}/{measure}"


def _fmt(value: float, measure: str, protocols: Mapping[str, Any] | None = None) -> str:
    from harness.evaluation import protocol as metrics

    protocol = {**metrics.PROTOCOL_MEASURES, **(protocols or {})}.get(measure)
    return metrics.format_value(value, protocol)


def _load_model(ref: str, scale: int | None, tile: int) -> tuple[Callable[..., Any], int]:
    from harness.evaluation import protocol as metrics

    if ref == "bicubic":
        scale = scale or 4
        return metrics.bicubic_upscaler(scale), scale
    from harness.deploy.models import load_upscaler

    upscaler = load_upscaler(ref, tile=tile) if tile else load_upscaler(ref)
    model_scale = int(upscaler.scale)
    if scale and scale != model_scale:
        raise HarnessError(
            f"--scale {scale} does not match the model's scale {model_scale}; drop --scale."
        )
    return upscaler, model_scale


def _extra_metrics(names: Sequence[str]) -> dict[str, Callable[[Any, Any], float]]:
    if not names:
        return {}
    from harness.evaluation import protocol as metrics
    from harness.plugin_api.registry import build_registry

    registry = build_registry()
    return {
        name: metrics.build_metric(registry.factory("metric", name, where="--metric"))
        for name in names
    }


def _log_mlflow(run_id: str, uri: str, values: Mapping[str, float], report: dict) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        client.get_run(run_id)
        import time

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if math.isfinite(v)]
        for i in range(0, len(metrics), 100):
            client.log_batch(run_id, metrics=metrics[i : i + 100])
        client.log_dict(run_id, report, "eval/report.json")
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(
            f"cannot log the evaluation to MLflow run {run_id} at {uri}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Set "
            "--tracking-uri (or MLFLOW_TRACKING_URI) to the store the run lives in, or pass "
            "--no-mlflow."
        ) from None


@click.command("evaluate")
@click.option(
    "--model",
    "model_ref",
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
@click.option("--scale", type=int, default=None, help="Upscaling factor (bicubic: default 4).")
@click.option(
    "--border", type=int, default=None, help="Pixels cropped from each border [default: scale]."
)
@click.option("--limit", type=int, default=0, help="Score only the first N images of each set.")
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
    help="Log eval/<data set>/<measure> to the model's MLflow run (runs:/ references).",
)
def command(
    model_ref: str,
    data_opts: tuple[str, ...],
    more: tuple[str, ...],
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
    """
    from harness.data import pipeline as data
    from harness.evaluation import protocol as metrics

    specs = [*data_opts, *more]
    if not specs:
        raise HarnessError(
            "no data to evaluate on: give folders with --data DIR (e.g. --data data/set5); "
            "`harness data download set5 --dest data` fetches one."
        )
    if scale is not None and scale < 1:
        raise HarnessError(f"--scale must be at least 1, not {scale}.")
    suites = discover(specs)
    upscale, scale = _load_model(model_ref, scale, tile)
    border = scale if border is None else border
    extra = _extra_metrics(metric_names)
    protocols = {name: metrics.metric_protocol(fn) for name, fn in extra.items()}

    results: dict[str, metrics.EvalResult] = {}
    for suite in suites:
        hr_images = data.load_folder(suite.spec, scale, limit=limit)
        results[suite.label] = metrics.evaluate(upscale, hr_images, scale, border, extra)

    groups: dict[str, dict[str, float]] = {}
    for group in dict.fromkeys(s.group for s in suites if s.group):
        members = [results[s.label] for s in suites if s.group == group]
        groups[group] = {
            m: sum(r.mean(m) for r in members) / len(members) for m in members[0].measures
        }

    measures = next(iter(results.values())).measures
    header = ["image", *measures]
    if not summary:
        for label, res in results.items():
            click.echo(f"{label}  ({len(res.images)} images, scale {scale}, border {border})")
            rows = [
                [s.name, *(_fmt(s.as_dict()[m], m, protocols) for m in measures)]
                for s in res.images
            ]
            rows.append(["mean", *(_fmt(res.mean(m), m, protocols) for m in measures)])
            click.echo(text_table(header, rows))
            click.echo("")
    rows = [
        [label, str(len(res.images)), *(_fmt(res.mean(m), m, protocols) for m in measures)]
        for label, res in results.items()
    ]
    rows += [
        [f"{g} (mean of clips)", "", *(_fmt(v[m], m, protocols) for m in measures)]
        for g, v in groups.items()
    ]
    click.echo(f"model: {model_ref}  scale {scale}  border {border}  (Y: BT.601 16..235)")
    for name, protocol in protocols.items():
        click.echo(f"{name}: {protocol.describe()}")
    click.echo(text_table(["data set", "images", *measures], rows))

    report: dict[str, Any] = {
        "model": model_ref,
        "scale": scale,
        "border": border,
        "protocols": {name: dataclasses.asdict(p) for name, p in protocols.items()},
        "datasets": {label: res.to_dict() for label, res in results.items()},
        "groups": groups,
    }
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    if csv_path:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["dataset", "image", *measures])
            for label, res in results.items():
                for s in res.images:
                    writer.writerow([label, s.name, *(s.as_dict()[m] for m in measures)])
                writer.writerow([label, "mean", *(res.mean(m) for m in measures)])
            for g, v in groups.items():
                writer.writerow([g, "mean of clips", *(v[m] for m in measures)])

    run_id = mlflow_run_id(model_ref)
    if run_id and use_mlflow:
        from harness.tracking import DEFAULT_URI

        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "") or DEFAULT_URI
        values = {
            metric_key(label, m): res.mean(m) for label, res in results.items() for m in measures
        }
        values.update({metric_key(g, m): v[m] for g, v in groups.items() for m in measures})
        _log_mlflow(run_id, uri, values, report)
        click.echo(f"logged {len(values)} metrics to MLflow run {run_id} ({uri})")
