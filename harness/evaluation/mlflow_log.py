"""What the evaluation writes to MLflow: ``harness evaluate``'s means logged to the evaluated
model's run (``eval/<data set>/<measure>`` and ``eval/report.json``), and a report folder logged
as the artifacts of its own run named ``report`` (tagged ``harness.report``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from harness import __version__, tracking
from harness.errors import HarnessError
from harness.evaluation.records import REPORT_TAG, ReportError, RunInfo

BATCH = 100  # metrics per log_batch call


def log_evaluation(run_id: str, uri: str, values: Mapping[str, float], report: dict) -> None:
    """Log the finite ``values`` and ``report`` (as ``eval/report.json``) to an existing run."""
    try:
        client = tracking.client(uri)
        client.get_run(run_id)
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in values.items() if math.isfinite(v)]
        for i in range(0, len(metrics), BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + BATCH])
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


__all__ = ["REPORT_TAG", "finish_report_run", "log_evaluation", "start_report_run"]
