"""MLflow tracking: where runs go, resumed runs, parent runs, and terminal statuses."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import mlflow
import pytest
from conftest import new_store
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service import utils as tracking_utils

from harness import config
from harness.plugin_api.registry import Registry, build_registry
from harness.run_context import image_folder_dataset
from harness.tracking import (
    DEFAULT_URI,
    RESUMED_FROM_TAG,
    Tracker,
    TrackingError,
    TrackingWarning,
    annotate_run,
    experiment_name,
    resolve_uri,
    run_is_active,
    tracking_uri,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (a copy of an empty one)."""
    return new_store(tmp_path_factory.mktemp("mlflow"))


@functools.cache
def installed() -> Registry:
    """The installed plugins, loaded once for :func:`exp_with`."""
    return build_registry()


def exp_with(tmp_path: Path, uri: str, **tracking: object) -> config.Experiment:
    return config.from_dict(
        {
            "experiment": {"name": "track", "runs_dir": str(tmp_path / "runs")},
            "tracking": {"uri": uri, **tracking},
        },
        registry=installed(),
    )


def test_uri_precedence(tmp_path, monkeypatch, store):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        tracking_uri(config.from_dict({}, registry=installed()))
        == DEFAULT_URI
        == "sqlite:///mlflow.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert tracking_uri(config.from_dict({}, registry=installed())) == "sqlite:///from-env.db"
    exp = exp_with(tmp_path, store)
    assert tracking_uri(exp) == store
    assert experiment_name(exp) == "track"
    assert experiment_name(exp_with(tmp_path, store, experiment="other")) == "other"


def test_one_uri_resolution(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_uri() == resolve_uri("") == DEFAULT_URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert resolve_uri(None) == "sqlite:///from-env.db"
    assert resolve_uri("sqlite:///given.db") == "sqlite:///given.db"


def test_annotating_a_finished_run_keeps_its_status(tmp_path, store):
    exp = exp_with(tmp_path, store, experiment="annotate")
    tracker = Tracker(exp)
    tracker.end("KILLED")
    log = tmp_path / "trial.log"
    log.write_text("done", encoding="utf-8")
    annotate_run(
        exp, tracker.run_id, tags={"optuna.state": "PRUNED"}, params={"a.b": 1}, files={log: "logs"}
    )
    run = MlflowClient(store).get_run(tracker.run_id)
    assert run.info.status == "KILLED" and run.data.tags["optuna.state"] == "PRUNED"
    assert run.data.params == {"a.b": "1"}
    assert [a.path for a in MlflowClient(store).list_artifacts(tracker.run_id, "logs")] == [
        "logs/trial.log"
    ]
    assert run_is_active(exp, tracker.run_id) and not run_is_active(exp, None)
    MlflowClient(store).delete_run(tracker.run_id)
    assert not run_is_active(exp, tracker.run_id)


def test_run_lifecycle_resume_and_changed_params(tmp_path, store):
    exp = exp_with(tmp_path, store, experiment="lifecycle")
    client = MlflowClient(exp.tracking.uri)
    parent = Tracker(exp, run_name="parent")
    child = Tracker(exp, parent_run_id=parent.run_id, run_name="child", tags={"trial": "3"})
    assert not child.resumed
    child.log_params({"train.steps": "10", "data.patch": "32"})
    child.log_metrics({"loss/mse": 0.5, "val/psnr_y": 20.0}, step=3)
    child.log_bytes(b"\x89PNG fake", "samples/step_3.png")
    child.end("KILLED")

    again = Tracker(exp, run_id=child.run_id)
    assert again.resumed and again.run_id == child.run_id
    assert client.get_run(child.run_id).info.status == "RUNNING"
    changed = again.log_params({"train.steps": "20", "data.patch": "32", "train.ema": "0.0"})
    assert changed == {"train.steps": ("10", "20")}
    again.end("FAILED", error="NonFiniteLoss: boom")

    run = client.get_run(child.run_id)
    assert run.info.status == "FAILED"
    assert run.info.run_name == "child"
    assert run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert run.data.tags["trial"] == "3"
    assert run.data.tags["error"] == "NonFiniteLoss: boom"
    assert run.data.tags["resume.train.steps"] == "20"
    assert run.data.params == {"train.steps": "10", "data.patch": "32", "train.ema": "0.0"}
    assert run.data.metrics == {"loss/mse": 0.5, "val/psnr_y": 20.0}
    assert [a.path for a in client.list_artifacts(child.run_id, "samples")] == [
        "samples/step_3.png"
    ]
    assert client.get_experiment(run.info.experiment_id).name == "lifecycle"
    parent.end()
    assert client.get_run(parent.run_id).info.status == "FINISHED"


def test_unknown_run_id_starts_a_new_run(tmp_path, store):
    exp = exp_with(tmp_path, store)
    gone = "0123456789abcdef0123456789abcdef"  # as after mlflow.db was deleted
    with pytest.warns(TrackingWarning, match=f"MLflow run {gone} .* does not exist in sqlite"):
        tracker = Tracker(exp, run_id=gone)
    assert not tracker.resumed and tracker.run_id != gone
    tracker.end()
    run = MlflowClient(store).get_run(tracker.run_id)
    assert run.data.tags[RESUMED_FROM_TAG] == gone and run.info.status == "FINISHED"


def test_a_deleted_run_is_named_and_linked(tmp_path, store):
    exp = exp_with(tmp_path, store)
    client = MlflowClient(store)
    first = Tracker(exp)
    first.end("KILLED")
    client.delete_run(first.run_id)
    with pytest.warns(TrackingWarning, match=f"{first.run_id} this training continues was del"):
        second = Tracker(exp, run_id=first.run_id)
    assert client.get_run(second.run_id).data.tags[RESUMED_FROM_TAG] == first.run_id
    second.end()


def test_a_run_that_failed_then_finished_loses_its_error_tag(tmp_path, store):
    exp = exp_with(tmp_path, store)
    client = MlflowClient(store)
    first = Tracker(exp)
    first.end("FAILED", error="NonFiniteLoss: boom")
    assert client.get_run(first.run_id).data.tags["error"] == "NonFiniteLoss: boom"
    again = Tracker(exp, run_id=first.run_id)
    again.end("KILLED", error="KeyboardInterrupt")  # a failing end keeps (replaces) the tag
    assert client.get_run(first.run_id).data.tags["error"] == "KeyboardInterrupt"
    Tracker(exp, run_id=first.run_id).end("FINISHED")
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and "error" not in run.data.tags


def test_active_fluent_run_of_the_caller_is_untouched(tmp_path, store, monkeypatch):
    exp = exp_with(tmp_path, store)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", exp.tracking.uri)  # the caller's
    with mlflow.start_run() as outer:
        tracker = Tracker(exp, parent_run_id=outer.info.run_id)
        tracker.end()
        assert mlflow.active_run().info.run_id == outer.info.run_id


def test_a_tracker_leaves_mlflows_process_uri_alone(tmp_path, store, monkeypatch):
    """Every call names the run's store: MLflow's process-wide URI (and MLFLOW_TRACKING_URI,
    which ``mlflow.set_tracking_uri`` also sets) stay what they were."""
    process = f"sqlite:///{tmp_path / 'process.db'}"
    monkeypatch.setattr(tracking_utils, "_tracking_uri", process)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp = exp_with(tmp_path, store)
    tracker = Tracker(exp)
    tracker.log_metrics({"loss/mse": 0.5}, step=1)
    annotate_run(exp, tracker.run_id, tags={"note": "x"})
    tracker.end()
    assert run_is_active(exp, tracker.run_id)
    assert mlflow.get_tracking_uri() == process and "MLFLOW_TRACKING_URI" not in os.environ
    assert not (tmp_path / "process.db").exists()
    assert MlflowClient(store).get_run(tracker.run_id).data.tags["note"] == "x"


def test_unusable_store_is_a_clear_error(tmp_path):
    bad = config.from_dict({"tracking": {"uri": "bogus://nowhere"}}, registry=installed())
    with pytest.raises(TrackingError, match="bogus://nowhere"):
        Tracker(bad)


def test_a_dataset_two_parallel_runs_log_at_once_is_linked_to_both(tmp_path, store, monkeypatch):
    """Parallel sweep trials log the same new dataset: MLflow's SQL store then refuses the
    second insert (unique key); the run links the dataset the other run inserted. Any other
    store error still surfaces."""
    (tmp_path / "set").mkdir()
    exp = exp_with(tmp_path, store, experiment="datasets_race")
    first, second = Tracker(exp, run_name="a"), Tracker(exp, run_name="b")
    ds = image_folder_dataset("set", tmp_path / "set", [], "training")
    first.log_datasets([ds], "training")
    real, calls = second.client.log_inputs, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # what the store raises when the other run inserted it first
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets")
        return real(*args, **kwargs)

    monkeypatch.setattr(second.client, "log_inputs", racing)
    second.log_datasets([ds], "training")
    client = MlflowClient(store)
    for tracker in (first, second):
        (linked,) = client.get_run(tracker.run_id).inputs.dataset_inputs
        assert linked.dataset.digest == ds.digest
    monkeypatch.setattr(
        second.client, "log_inputs", lambda *a, **k: (_ for _ in ()).throw(MlflowException("no"))
    )
    with pytest.raises(MlflowException, match="no"):
        second.log_datasets([ds], "validation")
