"""One MLflow run of a training (:class:`Tracker`)."""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import (
    DatasetInput,
    InputTag,
    LoggedModelInput,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from harness import __version__
from harness.config import Experiment
from harness.run_context import experiment_description, run_context_tags
from harness.tracking.store import (
    DESCRIPTION_TAG,
    ERROR_TAG,
    EXPERIMENT_KIND_TAG,
    GROUP_TAG,
    MAX_BATCH,
    PARENT_TAG,
    RESUMED_FROM_TAG,
    SYSTEM_METRICS_INTERVAL,
    TrackingError,
    TrackingWarning,
    client,
    experiment_name,
    tracking_uri,
)


class Tracker:
    """One MLflow run: created, or continued when ``run_id`` names an existing run.

    When ``run_id`` names a run the store no longer has (``mlflow.db`` deleted, the run deleted,
    another store), a new run is created with a :class:`TrackingWarning` naming the old id, and
    the new run carries it as the ``harness.resumed_from_run`` tag, so the two halves of the
    training can still be joined. With ``running=False`` a continued run keeps its status until
    :meth:`mark_running` (a refused resume must not turn a FINISHED run into FAILED).

    All logging goes through an explicit :class:`MlflowClient`, so an active fluent run of the
    caller (a sweep's parent run, say) and MLflow's process-wide tracking URI are never touched.
    """

    def __init__(
        self,
        exp: Experiment,
        *,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        running: bool = True,
    ) -> None:
        self.uri = tracking_uri(exp)
        self.resumed = False
        self.running = True  # a new run is created RUNNING
        # metric key -> the last step the run already has a point for (a resumed run replays
        # the steps after its checkpoint; those are not logged a second time)
        self._logged_through: dict[str, int] = {}
        try:
            self.client = client(self.uri)
            missing = self._missing(run_id) if run_id else None
            if run_id and missing is None:
                self.run_id = run_id
                self.resumed = True
                # running=False: marked RUNNING only by mark_running() (once training
                # resumes), so a resume refused before that leaves the run's status as it was
                self.running = False
                if running:
                    self.mark_running()
                self._logged_through = self._last_steps(run_id)
            else:
                extra = dict(tags or {})
                if run_id:
                    extra[RESUMED_FROM_TAG] = run_id
                self.run_id = self._create(exp, parent_run_id, run_name, extra)
                if run_id:
                    warnings.warn(
                        f"the MLflow run {run_id} this training continues {missing} in "
                        f"{self.uri}; logging to a new run {self.run_id} instead, tagged "
                        f"{RESUMED_FROM_TAG}={run_id}. Its metrics start at the resumed step; "
                        "point [tracking].uri or MLFLOW_TRACKING_URI at the old store to keep "
                        "one run.",
                        TrackingWarning,
                        stacklevel=2,
                    )
            self.experiment_id = self.client.get_run(self.run_id).info.experiment_id
        except (MlflowException, ValueError) as exc:
            raise TrackingError(
                f"MLflow tracking store {self.uri} failed: {exc}. Check [tracking].uri or "
                "MLFLOW_TRACKING_URI."
            ) from exc
        self.ended = False
        self._system_metrics: Any = None

    def _missing(self, run_id: str) -> str | None:
        """Why ``run_id`` cannot be continued (``"does not exist"``, ``"was deleted"``), or
        ``None`` when it can."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return "does not exist"
        return None if run.info.lifecycle_stage == "active" else "was deleted"

    def _last_steps(self, run_id: str) -> dict[str, int]:
        out = {}
        for key in self.client.get_run(run_id).data.metrics:
            history = self.client.get_metric_history(run_id, key)
            if history:
                out[key] = max(m.step for m in history)
        return out

    def _experiment_id(self, name: str, description: str) -> str:
        """The id of the MLflow experiment ``name``: found (restored when deleted) or created,
        with ``description`` unless it has one.

        Processes starting together (sweep workers) may both create it; the loser finds the
        winner's."""
        tags = {EXPERIMENT_KIND_TAG: "custom_model_development", DESCRIPTION_TAG: description}
        for attempt in range(2):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage != "active":
                    self.client.restore_experiment(found.experiment_id)
                for key, value in tags.items():
                    if key not in found.tags:
                        self.client.set_experiment_tag(found.experiment_id, key, value)
                return found.experiment_id
            try:
                return self.client.create_experiment(name, tags=tags)
            except MlflowException:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _create(
        self,
        exp: Experiment,
        parent_run_id: str | None,
        run_name: str | None,
        tags: Mapping[str, str] | None,
    ) -> str:
        experiment_id = self._experiment_id(experiment_name(exp), experiment_description(exp))
        all_tags = {"harness.version": __version__, "harness.source": exp.source}
        if exp.experiment.group:  # replicates of one experiment: what a report groups by
            all_tags[GROUP_TAG] = exp.experiment.group
        all_tags.update(tags or {})
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(
            experiment_id, tags=all_tags, run_name=run_name or exp.experiment.name
        )
        return run.info.run_id

    # ------------------------------------------------------------------ logging

    def log_params(self, params: Mapping[str, str]) -> dict[str, tuple[str, str]]:
        """Log parameters; on a resumed run only new ones (MLflow parameters are immutable).

        Returns ``key -> (logged value, new value)`` for parameters that changed since the run
        was created; they are recorded as ``resume.<key>`` tags instead.
        """
        existing = self.client.get_run(self.run_id).data.params if self.resumed else {}
        changed = {
            k: (existing[k], str(v))
            for k, v in params.items()
            if k in existing and existing[k] != str(v)
        }
        new = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
        for i in range(0, len(new), MAX_BATCH):
            self.client.log_batch(self.run_id, params=new[i : i + MAX_BATCH])
        for key, (_, value) in changed.items():
            self.set_tag(f"resume.{key}", value)
        return changed

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log ``metrics`` at ``step``, except keys the run already has at this step or later
        (steps replayed after resuming from an older checkpoint keep their first points)."""
        now = int(time.time() * 1000)
        done = self._logged_through
        batch = [
            Metric(k, float(v), now, int(step))
            for k, v in metrics.items()
            if int(step) > done.get(k, -1)
        ]
        for i in range(0, len(batch), MAX_BATCH * 10):
            self.client.log_batch(self.run_id, metrics=batch[i : i + MAX_BATCH * 10])

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, str(value)[:5000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Log ``data`` as the artifact ``artifact_file`` (``dir/name.ext``)."""
        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            self.client.log_artifact(self.run_id, str(path), folder or None)

    def log_image(self, image: Any, key: str, step: int) -> None:
        """Log ``image`` (``uint8 (H, W, 3)``) as the stepped image ``key`` at ``step``: MLflow's
        image chart, with a step slider and run comparison (stored under ``images/``)."""
        self.client.log_image(self.run_id, image, key=key, step=int(step), synchronous=True)

    def log_context(self, exp: Experiment) -> None:
        """The run's context: description, user, source file and git commit
        (:func:`run_context_tags`)."""
        self.set_tags(run_context_tags(exp))

    def log_datasets(self, datasets: Sequence[Any], context: str) -> None:
        """Log MLflow datasets (:func:`image_folder_dataset`) as inputs of the run, used for
        ``context`` (``training``, ``validation``)."""
        inputs = [
            DatasetInput(ds._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, context)])
            for ds in datasets
        ]
        if not inputs:
            return
        try:
            self.client.log_inputs(self.run_id, datasets=inputs)
        except MlflowException as exc:
            # Two runs of one experiment logging the same new dataset at once (sweep trials run
            # in parallel) race in MLflow's SQL store: it looks the dataset up, both miss, and
            # the second insert breaks the unique key. The dataset exists now, so once more
            # links it instead of inserting it.
            if "UNIQUE constraint" not in str(exc) and "duplicate key" not in str(exc):
                raise
            self.client.log_inputs(self.run_id, datasets=inputs)

    def start_system_metrics(self, interval: float = SYSTEM_METRICS_INTERVAL) -> None:
        """Sample CPU, memory, disk, network and (with ``pynvml`` and an NVIDIA GPU) GPU use
        every ``interval`` seconds as MLflow's ``system/...`` metrics until :meth:`end`; a
        resumed run continues their steps."""
        if self._system_metrics is not None:
            return
        # MLflow announces the monitor at INFO level on every start and stop
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
        monitor = SystemMetricsMonitor(
            self.run_id,
            sampling_interval=interval,
            resume_logging=self.resumed,
            tracking_uri=self.uri,
        )
        monitor.start()
        self._system_metrics = monitor

    def _stop_system_metrics(self) -> None:
        """Stop sampling; one last sample is logged so a run shorter than the interval still
        has its system metrics."""
        monitor, self._system_metrics = self._system_metrics, None
        if monitor is None:
            return
        monitor.finish()
        try:
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
        except Exception as exc:  # a store gone at the end: the run's own end reports it
            warnings.warn(
                f"the last system metrics sample was not logged: {exc}",
                TrackingWarning,
                stacklevel=3,
            )

    def log_lineage(self, source: Any) -> None:
        """Record a warm start (:class:`harness.training.warmstart.Source`): the reference as the
        ``init.<network>`` tag, the source's MLflow run as ``init.<network>_run`` (the
        comparison reads these to show that variants share a start), and the source run's logged
        model as an input model of this run where MLflow has it."""
        tags = {f"harness.init.{source.network}": source.ref}
        if source.run_id:
            tags[f"harness.init.{source.network}_run"] = source.run_id
        self.set_tags(tags)
        if not source.run_id:
            return
        try:
            src = self.client.get_run(source.run_id)
            models = self.client.search_logged_models(
                experiment_ids=[src.info.experiment_id],
                filter_string=f"source_run_id = '{source.run_id}' AND name = 'generator'",
            )
            if models:
                self.client.log_inputs(self.run_id, models=[LoggedModelInput(models[0].model_id)])
        except Exception:  # lineage as tags is enough where the store lacks logged models
            pass

    def delete(self) -> None:
        """Delete this run (a duplicate: two sweep workers created the study's parent run)."""
        self._stop_system_metrics()
        self.client.delete_run(self.run_id)
        self.ended = True

    def mark_running(self) -> None:
        """A resumed run is training again: mark it RUNNING (until :meth:`end`)."""
        if not self.running:
            self.client.update_run(self.run_id, status="RUNNING")
            self.running = True

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Mark the run FINISHED, FAILED (with the error as the ``error`` tag) or KILLED.

        A resumed run that ends FINISHED loses the ``error`` tag an earlier attempt left, so a
        finished run never reads as failed.
        """
        if self.ended:
            return
        self._stop_system_metrics()
        if not self.running:  # a resume that never started: the run keeps its status
            self.ended = True
            return
        if error:
            self.set_tag(ERROR_TAG, error)
        elif (
            status == "FINISHED"
            and self.resumed
            and ERROR_TAG in self.client.get_run(self.run_id).data.tags
        ):
            self.client.delete_tag(self.run_id, ERROR_TAG)
        self.client.set_terminated(
            self.run_id, status=RunStatus.to_string(RunStatus.from_string(status))
        )
        self.ended = True
