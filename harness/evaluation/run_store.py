"""Reading trained runs back from MLflow stores, for ``harness report``: which store a run
lives in, the run itself, an experiment's runs, a sweep's trials and the validation curves.

The store of a run is ``--tracking-uri``, else the run's ``[tracking] uri``, else
``$MLFLOW_TRACKING_URI``, else :data:`harness.tracking.DEFAULT_URI` (:func:`store_uri`). A SQLite
store whose file does not exist is never opened (opening it would create it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException

from harness import tracking
from harness.evaluation.records import ReportError, RunInfo


def store_uri(explicit: str | None = None, configured: str = "") -> str:
    """The MLflow store: ``explicit``, else ``configured`` (a run's ``[tracking] uri``), else
    ``$MLFLOW_TRACKING_URI``, else the default, with an installed PostgreSQL driver."""
    return tracking.resolve_uri(explicit or configured)


def store_exists(uri: str) -> bool:
    """False for a SQLite store whose file does not exist (looking would create it)."""
    if not uri.startswith("sqlite:///"):
        return True
    path = uri.removeprefix("sqlite:///")
    return path == ":memory:" or Path(path).is_file()


def store_error(uri: str, exc: Exception) -> ReportError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ReportError(
        f"cannot read the MLflow store {uri} ({type(exc).__name__}: {first}); check "
        "--tracking-uri (or MLFLOW_TRACKING_URI)."
    )


class RunStore:
    """MLflow clients by store URI, and the lookups a report makes through them."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {}

    def client(self, uri: str) -> Any:
        if uri not in self.clients:
            self.clients[uri] = tracking.client(uri)
        return self.clients[uri]

    def get_run(self, uri: str, run_id: str) -> Any:
        """The run, or ``None`` when the store does not have it."""
        if not store_exists(uri):
            return None
        try:
            return self.client(uri).get_run(run_id)
        except MlflowException:
            return None
        except Exception as exc:
            raise store_error(uri, exc) from None

    def experiment(self, uri: str, text: str) -> Any:
        """The active experiment named ``text`` (or with id ``text``), or ``None``."""
        if not store_exists(uri):
            return None
        client = self.client(uri)
        try:
            found = client.get_experiment_by_name(text)
            if found is None and text.isdigit():
                found = client.get_experiment(text)
        except MlflowException:
            return None
        except Exception as exc:
            raise store_error(uri, exc) from None
        return found if found is not None and found.lifecycle_stage == "active" else None

    def search(self, uri: str, experiment_ids: list[str], filter_string: str) -> list[Any]:
        """Every run matching ``filter_string``, oldest first, over all result pages."""
        client, out, token = self.client(uri), [], None
        while True:
            page = client.search_runs(
                experiment_ids,
                filter_string,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            out.extend(page)
            token = page.token
            if not token:
                return out

    def fill(self, info: RunInfo, run: Any) -> None:
        """``info`` completed from its MLflow ``run``: name, status, tags, params (unless read
        from the run directory), experiment, wall time, warm start, validation curves, steps."""
        client = self.client(info.uri)
        info.label = run.info.run_name or info.label
        info.status = run.info.status
        info.tags = dict(run.data.tags)
        info.params = info.params or dict(run.data.params)
        try:
            info.mlflow_experiment = client.get_experiment(run.info.experiment_id).name
        except Exception:
            info.mlflow_experiment = run.info.experiment_id
        if run.info.end_time and run.info.start_time:
            info.wall_s = (run.info.end_time - run.info.start_time) / 1000.0
        info.init_ref = info.tags.get(
            "harness.init.generator", info.params.get("generator.init", "")
        )
        info.init_run = info.tags.get("harness.init.generator_run", "")
        for key in run.data.metrics:
            if key.startswith("val/") and not key.startswith("val/bicubic_"):
                info.history[key] = [
                    (int(m.step), float(m.value))
                    for m in client.get_metric_history(run.info.run_id, key)
                ]
        info.bicubic_val = run.data.metrics.get("val/bicubic_psnr_y")
        steps = [s for s, _ in info.history.get("val/psnr_y", [])]
        if run.info.status == "FINISHED" and "train.steps" in info.params:
            info.steps = int(info.params["train.steps"])
        elif steps:
            info.steps = max(steps)


__all__ = ["RunStore", "store_error", "store_exists", "store_uri"]
