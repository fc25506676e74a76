"""What the evaluation writes to MLflow: the means of ``harness evaluate`` and ``harness report``
logged as metrics of each evaluated model's run (``eval/<data set>/<measure>``; evaluate adds
``eval/report.json``), and a report folder logged as the artifacts of its own run named
``report`` (tagged ``harness.report``)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import __version__, tracking
from harness.errors import HarnessError
from harness.evaluation.records import FINAL, REPORT_TAG, ReportError, RunInfo
from harness.evaluation.suite import metric_key
from harness.references import KEPT, MLFLOW_RUN, RUN, ModelRef


def model_prefix(model: str) -> str:
    """The metric prefix of an evaluated model of a run: ``eval/`` for its final generator,
    ``eval/<name>/`` for a kept one (``best_lpips``), so both can sit on the same run."""
    return "eval/" if model in ("", FINAL, "generator") else f"eval/{model}/"


def with_prefix(values: Mapping[str, float], model: str) -> dict[str, float]:
    """``eval/<data set>/<measure>`` keys moved under :func:`model_prefix`."""
    prefix = model_prefix(model)
    return {prefix + k.removeprefix("eval/"): v for k, v in values.items()}


def evaluated_run(ref: ModelRef) -> tuple[str, str, str]:
    """``(run id, the run's own [tracking] uri, model)`` of the MLflow run whose model ``ref``
    names: a ``runs:/`` URI or run id, a run directory (its final generator) or
    ``<run dir>@best_<metric>``; ``("", "", "")`` for any other reference."""
    if ref.kind == MLFLOW_RUN:
        return ref.run_id, "", ref.name
    run = ref.run
    if ref.kind not in (RUN, KEPT) or run is None or not run.read_run_id():
        return "", "", ""
    try:
        table = tomllib.loads(run.experiment_toml.read_text(encoding="utf-8"))
        configured = str(table.get("tracking", {}).get("uri", ""))
    except (OSError, ValueError):
        configured = ""
    return run.read_run_id(), configured, ref.name if ref.kind == KEPT else ""


def log_evaluation(run_id: str, uri: str, values: Mapping[str, float], report: dict) -> int:
    """Log the finite ``values`` as metrics and ``report`` (as ``eval/report.json``) to an
    existing run; how many metrics were logged."""
    try:
        logged = tracking.log_run_metrics(uri, run_id, values)
        tracking.client(uri).log_dict(run_id, report, "eval/report.json")
        return logged
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(
            f"cannot log the evaluation to MLflow run {run_id} at {uri}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Set "
            "--tracking-uri (or MLFLOW_TRACKING_URI) to the store the run lives in, or pass "
            "--no-mlflow."
        ) from None


def log_report_metrics(
    runs: Sequence[RunInfo],
    tables: Mapping[str, Mapping[str, Mapping[str, float]]],
    say: Callable[[str], Any],
) -> None:
    """Each reported run with an MLflow run gets its means as metrics
    (``eval/<data set>/<measure>``, :func:`model_prefix` for a kept generator), so MLflow's
    runs table sorts and charts runs by benchmark score; a run the store refuses is said and
    skipped (the report itself is complete without it)."""
    for run in runs:
        if not (run.run_id and run.uri):
            continue
        values = {
            metric_key(data_set, measure): value
            for data_set, rows in tables.items()
            for measure, value in rows.get(run.label, {}).items()
        }
        try:
            logged = tracking.log_run_metrics(run.uri, run.run_id, with_prefix(values, run.kind))
        except Exception as exc:  # noqa: BLE001 - named below; the report goes on
            first = str(exc).splitlines()[0] if str(exc) else ""
            say(f"{run.label}: scores not logged to MLflow run {run.run_id}: {first}")
            continue
        say(f"{run.label}: {logged} scores logged to MLflow run {run.run_id}")


def start_report_run(runs: Sequence[RunInfo], say: Callable[[str], Any]) -> tuple[Any, str]:
    """``(client, run id)`` of a new run named ``report`` in the first tracked run's experiment,
    or ``(None, "")`` when no reported run is in MLflow."""
    tracked = [r for r in runs if r.run_id and r.mlflow_experiment]
    if not tracked:
        say("not logged to MLflow: none of the runs has an MLflow run")
        return None, ""
    first = tracked[0]
    try:
        client = tracking.client(first.uri)
        experiment_id = client.get_run(first.run_id).info.experiment_id
        ids = ",".join(r.run_id for r in runs if r.run_id)
        tags = {
            REPORT_TAG: "1",
            "harness.version": __version__,
            "harness.report.runs": ids[:5000],
            "harness.report.labels": ", ".join(r.label for r in runs)[:5000],
        }
        run = client.create_run(experiment_id, tags=tags, run_name="report")
    except Exception as exc:
        raise ReportError(
            f"cannot create the report's MLflow run in {first.uri} "
            f"({type(exc).__name__}: {exc}); pass --no-mlflow."
        ) from None
    return client, run.info.run_id


def finish_report_run(
    client: Any, run_id: str, folder: Path, tables: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Log ``folder`` as the run's artifacts and ``tables`` (artifact name -> columns) as
    MLflow tables, and end the run (``FAILED`` if that fails)."""
    try:
        client.log_artifacts(run_id, str(folder))
        for name, table in (tables or {}).items():
            tracking.log_table(client, run_id, table, name)
        client.set_terminated(run_id, "FINISHED")
    except Exception as exc:
        client.set_terminated(run_id, "FAILED")
        raise ReportError(
            f"the report is in {folder} but logging it to MLflow failed "
            f"({type(exc).__name__}: {exc}); pass --no-mlflow."
        ) from None


__all__ = [
    "REPORT_TAG",
    "evaluated_run",
    "finish_report_run",
    "log_evaluation",
    "log_report_metrics",
    "model_prefix",
    "start_report_run",
    "with_prefix",
]
