"""``harness report``: a self-contained comparison of trained runs, measured afresh.

The runs come from :func:`harness.evaluation.runs.resolve_runs` (run directories, MLflow run
ids, sweeps, experiments). Nothing is copied from logs: every model and the bicubic baseline are
scored here on each benchmark set (the data sets of :mod:`harness.evaluation.suite`) with
:func:`harness.measures.scoring.evaluate` (PSNR-Y, SSIM-Y, and each metric plugin on its own
declared protocol). The folder gets ``report.md``, ``report.html`` (figures embedded) and
``report.json`` (:mod:`harness.evaluation.writing`), ``curves.png`` (validation curves from
MLflow), ``perception_distortion.png`` (:mod:`harness.evaluation.plots`) and
``crops_<set>_<image>.png`` (:mod:`harness.evaluation.crops`), and is logged to MLflow as the
artifacts of a run named ``report`` (:mod:`harness.evaluation.mlflow_log`).
"""

from __future__ import annotations

import datetime as _dt
import shlex
import tomllib
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from harness import diskwrite
from harness.data.images import to_uint8
from harness.deploy.models import ModelReferenceError, load_upscaler
from harness.evaluation import mlflow_log
from harness.evaluation.crops import report_crops
from harness.evaluation.heldout import mark_runs
from harness.evaluation.interpolation import group_means, interpolation_curves
from harness.evaluation.per_image import columns, score_rows, write_csv
from harness.evaluation.plots import plot_perception_distortion, run_curves
from harness.evaluation.records import FINAL, Report, ReportError, RunInfo
from harness.evaluation.replicates import (
    group_curves,
    grouped_tables,
    has_replicates,
    shared_starts,
)
from harness.evaluation.runs import resolve_runs
from harness.evaluation.stats import compare_all, pairs_against
from harness.evaluation.suite import DEFAULT_METRICS, discover, metric_functions
from harness.evaluation.tables import measure_name
from harness.evaluation.writing import to_json, write_files
from harness.measures.bicubic import bicubic_upscaler
from harness.measures.scoring import EvalResult, evaluate
from harness.plugin_api.metrics import PROTOCOL_MEASURES, MetricProtocol, metric_protocol

if TYPE_CHECKING:
    from harness.evaluation.suite import Suite
    from harness.plugin_api.registry import Registry

DEFAULT_DATA: tuple[str, ...] = ("data/set5", "data/set14", "data/bsd100")
"""Where ``harness data download set5 set14 bsd100 --dest data`` puts the benchmark sets."""
SCORES = "scores.csv"
"""The report's per-image scores (:mod:`harness.evaluation.per_image`)."""


def load_references(scale: int | None = None) -> dict[str, Any]:
    """``references.toml``: ``{"sources": {...}, "methods": {name: {source, scale, set: {}}}}``.

    With ``scale``, only the methods published at that factor and their sources: an x2 report
    draws no x4 points.
    """
    text = (
        resources.files("harness.evaluation")
        .joinpath("references.toml")
        .read_text(encoding="utf-8")
    )
    references = tomllib.loads(text)
    default = references.pop("scale", None)
    methods = {
        name: {"scale": method.get("scale", default), **method}
        for name, method in references.get("methods", {}).items()
    }
    if scale is None:
        return {**references, "methods": methods}
    methods = {name: m for name, m in methods.items() if m["scale"] == scale}
    cited = {m.get("source") for m in methods.values()}
    sources = {k: v for k, v in references.get("sources", {}).items() if k in cited}
    return {"sources": sources, "methods": methods}


class _Recorder:
    """An upscaler that keeps its first ``keep`` outputs (as 8-bit images) for the crops."""

    def __init__(self, upscale: Callable[[np.ndarray], np.ndarray], keep: int) -> None:
        self.upscale, self.keep, self.outputs = upscale, keep, []

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        sr = np.asarray(self.upscale(lr))
        if len(self.outputs) < self.keep:
            self.outputs.append(to_uint8(sr[0]))
        return sr


def _load(run: RunInfo, registry: Registry) -> Any:
    """The run's model as an upscaler; an MLflow model is read from the run's own store (runs
    of several stores are reported together)."""
    try:
        return load_upscaler(run.model_ref, registry=registry, tracking_uri=run.uri or None)
    except ModelReferenceError as exc:
        raise ReportError(f'run "{run.label}": {exc}') from None


def report_scale(runs: Sequence[RunInfo], registry: Registry) -> int:
    """The factor the runs upscale by: as their experiments recorded it (one factor, checked
    by :func:`resolve_runs`), else what the first run's model does."""
    recorded = [r.scale for r in runs if r.scale is not None]
    return recorded[0] if recorded else int(_load(runs[0], registry).scale)


def _upscaler(run: RunInfo | None, scale: int, registry: Registry) -> Any:
    """Bicubic (``run`` ``None``) or the run's model, checked to upscale by ``scale``."""
    if run is None:
        return bicubic_upscaler(scale)
    upscale = _load(run, registry)
    if upscale.scale != scale:
        says = (
            f"its experiment says x{scale}; was experiment.toml edited?"
            if run.scale == scale
            else f"the report's other runs upscale x{scale}; report runs of one scale together."
        )
        raise ReportError(f'run "{run.label}" upscales x{upscale.scale}, {says}')
    return upscale


def _measure(
    runs: Sequence[RunInfo],
    suites: Sequence[Suite],
    images: Mapping[str, Any],
    scale: int,
    extra: Mapping[str, Callable[..., float]],
    crops: int,
    progress: bool,
    registry: Registry,
) -> tuple[dict[str, dict[str, EvalResult]], dict[str, dict[str, list[np.ndarray]]]]:
    """Bicubic and each run on each set: ``(results, outputs)``, both ``set -> row -> ...``,
    the outputs being the first ``crops`` SR images."""

    results: dict[str, dict[str, EvalResult]] = {s.label: {} for s in suites}
    outputs: dict[str, dict[str, list[np.ndarray]]] = {s.label: {} for s in suites}
    rows = [("bicubic", None), *((r.label, r) for r in runs)]
    bar = tqdm(total=len(rows) * len(suites), desc="evaluating", unit="set", disable=not progress)
    try:
        for label, run in rows:
            upscale = _upscaler(run, scale, registry)
            for suite in suites:
                bar.set_postfix_str(f"{label} on {suite.label}")
                recorder = _Recorder(upscale, crops)
                results[suite.label][label] = evaluate(
                    recorder, images[suite.label], scale, extra=extra
                )
                outputs[suite.label][label] = recorder.outputs
                bar.update(1)
            del upscale
    finally:
        bar.close()
    return results, outputs


def _plane(
    tables: Mapping[str, Any],
    references: Mapping[str, Any],
    path: Path,
    perceptual: str,
    protocols: Mapping[str, MetricProtocol],
    curves: Mapping[str, Any] | None = None,
) -> Path:
    published = {
        k: {s: v for s, v in meth.items() if isinstance(v, dict)}
        for k, meth in references.get("methods", {}).items()
    }
    return plot_perception_distortion(
        tables,
        published,
        path,
        y=perceptual,
        y_label=measure_name(perceptual),
        lower_is_better=not protocols[perceptual].higher_is_better,
        curves=curves,
    )


def command_line(
    refs: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    data: Sequence[str] = DEFAULT_DATA,
    lr: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    crops: int = 2,
    model_kind: str = FINAL,
    log_to_mlflow: bool = True,
    baselines: Sequence[str] = (),
    interpolate: int = 0,
) -> str:
    """The ``harness report`` command line that writes this report (what it says it was made
    with), quoted for a POSIX shell."""
    args = ["harness", "report", *map(str, refs)]
    if out:
        args += ["-o", str(out)]
    for spec in () if tuple(data) == DEFAULT_DATA else data:
        args += ["--data", spec]
    for spec in lr:
        args += ["--lr", spec]
    for name in metrics or ():
        args += ["--metric", name]
    if crops != 2:
        args += ["--crops", str(crops)]
    if model_kind != FINAL:
        args += ["--model-kind", model_kind]
    for name in baselines:
        args += ["--baseline", name]
    if interpolate:
        args += ["--interpolate", str(interpolate)]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    if not log_to_mlflow:
        args.append("--no-mlflow")
    return shlex.join(args)


def write_report(
    refs: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    registry: Registry,
    data: Sequence[str] = DEFAULT_DATA,
    lr: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    crops: int = 2,
    model_kind: str = FINAL,
    log_to_mlflow: bool = True,
    say: Callable[[str], Any] = print,
    progress: bool = True,
    baseline: str | Sequence[str] = (),
    interpolate: int = 0,
) -> Report:
    """Evaluate each run of ``refs`` and bicubic on ``data`` and write the report to ``out``
    (default ``reports/<date-time>``). ``metrics`` are metric plugin names of ``registry``
    (default: the registered ones of :data:`DEFAULT_METRICS`); ``crops`` images per set get a
    crop figure. ``lr`` (one folder per ``data`` folder) gives LR images to upscale instead of
    bicubic LR. Each run (or group of replicates) is compared with each of ``baseline`` (run or
    group labels, or ``bicubic``; default: the first run) by :mod:`harness.evaluation.stats`:
    image by image against a fixed model (bicubic, a model with no seed, a fine-tune's start),
    seed by seed between replicated recipes, with no verdict between single trained runs. With
    ``interpolate`` K, each fine-tune's network interpolation with its base is scored at K
    alphas (:mod:`harness.evaluation.interpolation`) and drawn on the plane. The report
    says it was made with :func:`command_line` of these arguments."""
    asked = [baseline] if isinstance(baseline, str) else list(baseline)
    command = command_line(
        refs,
        out,
        data=data,
        lr=lr,
        metrics=metrics,
        tracking_uri=tracking_uri,
        crops=crops,
        model_kind=model_kind,
        log_to_mlflow=log_to_mlflow,
        baselines=asked,
        interpolate=interpolate,
    )

    now = _dt.datetime.now().astimezone()
    folder = Path(out) if out else Path("reports") / now.strftime("%Y%m%d-%H%M%S")
    diskwrite.writable_folder(folder, "-o")  # before the evaluation, not after it
    suites = discover(list(data), list(lr))
    runs = resolve_runs(refs, tracking_uri=tracking_uri, model_kind=model_kind, say=say)
    extra = metric_functions(registry, metrics)
    mark_runs(runs, extra, registry)
    protocols = {
        **{k: PROTOCOL_MEASURES[k] for k in ("psnr_y", "ssim_y")},
        **{k: metric_protocol(f) for k, f in extra.items()},
    }
    measures = tuple(protocols)
    groups = list(dict.fromkeys(r.group_label for r in runs))
    by_label = {r.label: r.group_label for r in runs}
    try:
        baselines, pairs = pairs_against(groups, [by_label.get(b, b) for b in asked])
    except KeyError as unknown:
        raise ReportError(
            f'--baseline "{unknown.args[0]}" is none of the reported runs; give one of: '
            f"{', '.join(['bicubic', *groups])}."
        ) from None
    scale = report_scale(runs, registry)

    images = {s.label: s.images(scale) for s in suites}
    results, outputs = _measure(runs, suites, images, scale, extra, crops, progress, registry)
    tables = {
        s: {row: {k: r.mean(k) for k in measures} for row, r in res.items()}
        for s, res in results.items()
    }
    scores = score_rows(
        results, measures, {r.label: r.group_label for r in runs}, {r.label: r.seed for r in runs}
    )
    write_csv(folder / SCORES, scores, measures)
    directions = {m: protocols[m].higher_is_better for m in measures}
    comparisons = compare_all(scores, pairs, directions, shared_starts(runs))
    given_lr = {s.label: s.lr for s in suites if s.lr}
    # published figures are measured on bicubic LR: not comparable with given LR images
    references = {"sources": {}, "methods": {}} if given_lr else load_references(scale)
    perceptual = "lpips" if "lpips" in extra else next(iter(extra), "ssim_y")
    grouped = grouped_tables(tables, runs) if has_replicates(runs) else None
    curves = (
        interpolation_curves(runs, images, scale, extra, interpolate, registry, say, tables)
        if interpolate
        else {}
    )
    figures = [
        run_curves(runs, folder / "curves.png", extra, group_curves(runs)),
        _plane(
            grouped.means if grouped else tables,
            references,
            folder / "perception_distortion.png",
            perceptual,
            protocols,
            group_means(curves, {r.label: r.group_label for r in runs}) if grouped else curves,
        ),
        *report_crops(folder, images, results, outputs, scale, perceptual),
    ]
    report = Report(
        out=folder,
        markdown=folder / "report.md",
        html=folder / "report.html",
        json=folder / "report.json",
        runs=runs,
        tables=tables,
        results=results,
        figures=figures,
        measures=measures,
        protocols=protocols,
        scores=scores,
        comparisons=comparisons,
        baselines=baselines,
        grouped=grouped,
        interpolation=curves,
    )
    client = None
    if log_to_mlflow:
        mlflow_log.log_report_metrics(runs, tables, say)
        client, report.mlflow_run_id = mlflow_log.start_report_run(runs, say)
    try:
        write_files(
            report,
            command,
            now,
            protocols,
            references,
            {s.label: s.spec for s in suites},
            scale,
            given_lr,
        )
    except BaseException:
        if client is not None:
            client.set_terminated(report.mlflow_run_id, "FAILED")
        raise
    if client is not None:
        tables = {"scores.json": columns(scores, measures)}
        mlflow_log.finish_report_run(client, report.mlflow_run_id, folder, tables)
        say(f"logged to MLflow run {report.mlflow_run_id} (report)")
    return report


__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_METRICS",
    "Report",
    "command_line",
    "ReportError",
    "RunInfo",
    "load_references",
    "report_scale",
    "metric_functions",
    "resolve_runs",
    "to_json",
    "write_report",
]
