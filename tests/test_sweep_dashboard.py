"""What optuna-dashboard and MLflow show of a sweep: sample grids as Optuna artifacts, the
preferential (ranked by eye) study, links between the study and its MLflow runs.

The fast tests build studies in a temporary SQLite storage; the CLI test runs a preferential
sweep of two trials of the CPU-sized quickstart_sweep.toml (a 1-block SRResNet, 4 steps).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from optuna_dashboard.preferential import load_study as load_preferential

from harness import sweep
from harness.errors import ConfigError
from harness.sweep import artifacts, preferential
from harness.sweep.parent import ParentRun, save_note, ui_address
from harness.sweep.trial import run_name, storage_text

REPO = Path(__file__).resolve().parent.parent
QUICK = REPO / "experiments" / "quickstart_sweep.toml"
PNG = b"\x89PNG\r\n\x1a\n"
RANDOM = ('sweep.mode="preferential"', 'sweep.sampler="random"', "sweep.sampler_options={}")


def _plan(tmp_path: Path, registry, *sets: str):
    return sweep.plan(
        QUICK,
        [f'experiment.runs_dir="{(tmp_path / "runs").as_posix()}"', *sets],
        registry=registry,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
    )


def test_the_latest_grid_is_found_whatever_its_name(tmp_path):
    samples = tmp_path / "run" / "samples"
    (samples / "val").mkdir(parents=True)
    for name in ("step_2.png", "step_10.png", "val/samples%step%000000004%1700%abc.png"):
        (samples / name).write_bytes(PNG + name.encode())
    (samples / "notes.txt").write_text("not a grid")
    found = artifacts.local_grids(tmp_path / "run")
    assert [p.name for p in found] == [
        "step_2.png",
        "samples%step%000000004%1700%abc.png",
        "step_10.png",
    ]
    assert artifacts.local_grids(tmp_path / "none") == []


def test_a_trials_latest_grid_becomes_its_artifact(tmp_path, registry):
    p = _plan(tmp_path, registry)
    study = sweep.open_study(p, sweep.open_storage(p.storage_url))
    trial = study.ask(sweep.distributions(p.sweep))
    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    (run_dir / "samples" / "step_2.png").write_bytes(PNG + b"early")
    (run_dir / "samples" / "step_4.png").write_bytes(PNG + b"last")

    artifact_id = artifacts.upload_grid(p, trial, run_dir)

    assert trial.user_attrs[sweep.GRID_ATTR] == artifact_id
    metas = optuna.artifacts.get_all_artifact_meta(trial)
    assert [(m.artifact_id, m.filename, m.mimetype) for m in metas] == [
        (artifact_id, f"trial_{trial.number:04d}_step_4.png", "image/png")
    ]
    store = optuna.artifacts.FileSystemArtifactStore(str(sweep.artifact_dir(p)))
    with store.open_reader(artifact_id) as reader:
        assert reader.read() == PNG + b"last"
    # a run that made no grid (and has no MLflow run to look in) uploads nothing
    other = study.ask(sweep.distributions(p.sweep))
    assert artifacts.upload_grid(p, other, tmp_path / "empty") is None
    assert optuna.artifacts.get_all_artifact_meta(other) == []


def test_the_preferential_study_shows_each_trials_grid(tmp_path, registry):
    p = _plan(tmp_path, registry, *RANDOM)
    storage = sweep.open_storage(p.storage_url)
    study = preferential.open_preferential_study(p, storage)
    again = preferential.open_preferential_study(p, storage)  # a second worker loads it

    assert again.study_name == study.study_name == p.study_name
    # optuna-dashboard's loader raises for a study that is not preferential
    loaded = load_preferential(
        study_name=p.study_name, storage=p.storage_url, sampler=optuna.samplers.RandomSampler()
    )
    assert isinstance(loaded.ask(), optuna.Trial)
    study_id = storage.get_study_id_from_name(p.study_name)
    attrs = storage.get_study_system_attrs(study_id)
    assert attrs["preference:component"] == {
        "output_type": "artifact",
        "artifact_key": sweep.GRID_ATTR,
    }
    assert attrs["preference:n_generate"] == p.sweep.n_generate
    assert "--artifact-dir " + str(sweep.artifact_dir(p)) in preferential.dashboard_command(p)
    # an optimising study of the same name is not taken over
    q = _plan(tmp_path, registry, 'sweep.study="plain"')
    sweep.open_study(q, storage)
    r = _plan(tmp_path, registry, 'sweep.study="plain"', *RANDOM)
    with pytest.raises(sweep.SweepError, match="Name another study"):
        preferential.open_preferential_study(r, storage)


def test_the_preferential_gp_needs_botorch_or_says_so(tmp_path, registry):
    p = _plan(tmp_path, registry, 'sweep.mode="preferential"', "sweep.sampler_options={}")
    assert isinstance(
        preferential.make_sampler(_plan(tmp_path, registry, *RANDOM)),
        optuna.samplers.RandomSampler,
    )
    try:
        import botorch  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r'srgan-harness\[dashboard\].*sampler = "random"'):
            preferential.make_sampler(p)
    else:
        from optuna_dashboard.preferential.samplers.gp import PreferentialGPSampler

        assert isinstance(preferential.make_sampler(p), PreferentialGPSampler)


def test_a_trial_whose_worker_died_before_its_grid_is_failed(tmp_path, registry):
    """What a worker killed while training leaves: the companion trial of its preferential
    trial RUNNING, its heartbeat stopped. The next look fails that preferential trial; one that
    made its grid (awaiting its ranking) and one whose heartbeat goes on stay RUNNING."""
    p = _plan(tmp_path, registry, *RANDOM, "sweep.heartbeat_interval=1", "sweep.grace_period=2")
    storage = sweep.open_storage(p.storage_url)
    study = preferential.open_preferential_study(p, storage)
    plain = optuna.load_study(
        study_name=p.study_name, storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    said: list[str] = []
    liveness = preferential.Liveness(p, plain, storage, said.append)
    # a trial trained under the heartbeat: the companion names it while it runs, then completes
    first = study.ask()
    seen = liveness.run(
        first.number, lambda: liveness.study.get_trials(states=(TrialState.RUNNING,))
    )
    assert [t.user_attrs[preferential.TRIAL_ATTR] for t in seen] == [first.number]
    assert [t.state for t in liveness.study.get_trials()] == [TrialState.COMPLETE]
    assert liveness.study.study_name == f"{p.study_name}:workers"

    lost, gridded, alive = study.ask(), study.ask(), study.ask()
    gridded.set_user_attr(artifacts.GRID_ATTR, "an-artifact-id")
    beats = liveness.beats
    study_id = beats.get_study_id_from_name(liveness.study.study_name)
    ids = {}
    for trial in (lost, gridded, alive):  # the workers' footprints: a heartbeat each
        companion = liveness.study.ask()
        companion.set_user_attr(preferential.TRIAL_ATTR, trial.number)
        ids[trial.number] = beats.get_trial_id_from_study_id_trial_number(
            study_id, companion.number
        )
        beats.record_heartbeat(ids[trial.number])
    # past the grace period (2 s), which SQLite's whole-second timestamps can stretch by 1 s;
    # only one worker lives on
    time.sleep(3.2)
    beats.record_heartbeat(ids[alive.number])
    liveness.fail_lost()
    states = {t.number: t for t in plain.get_trials()}
    assert states[lost.number].state == TrialState.FAIL
    assert states[lost.number].user_attrs[sweep.INTERRUPTED_ATTR] == "its worker is gone"
    assert states[gridded.number].state == states[alive.number].state == TrialState.RUNNING
    assert said == [
        f"trial {lost.number}: its worker is gone (it made no sample grid); it is failed"
    ]
    liveness.fail_lost()  # a second look changes nothing
    assert len(said) == 1


def test_names_and_links(tmp_path, monkeypatch):
    assert [run_name(n, "s") for n in (7, 10, 123)] == ["0007 s", "0010 s", "0123 s"]
    assert sorted(run_name(n, "s") for n in (10, 9, 100)) == ["0009 s", "0010 s", "0100 s"]
    monkeypatch.chdir(tmp_path)
    assert storage_text("sqlite:///optuna.db") == f"sqlite:///{(tmp_path / 'optuna.db')}"
    assert storage_text("postgresql://me:secret@db/x") == "postgresql://me:***@db/x"
    monkeypatch.delenv("HARNESS_MLFLOW_UI", raising=False)
    assert ui_address("sqlite:///mlflow.db") == "http://127.0.0.1:5000"  # as `harness run` says
    assert ui_address("http://mlflow:5000/") == "http://mlflow:5000"
    monkeypatch.setenv("HARNESS_MLFLOW_UI", "http://localhost:5000")
    assert ui_address("sqlite:///mlflow.db") == "http://localhost:5000"


def test_a_trials_note_links_its_runs_in_mlflows_training_view(monkeypatch):
    from optuna_dashboard import get_note

    monkeypatch.delenv("HARNESS_MLFLOW_UI", raising=False)
    parent = object.__new__(ParentRun)  # what a note needs of the parent run
    parent.uri, parent.experiment, parent.experiment_id = "sqlite:///mlflow.db", "quick", "3"
    parent.run_id, trial_run = "p" * 32, "t" * 32
    study = optuna.create_study()
    trial = study.ask()
    assert save_note(trial, parent.note(trial_run))
    note = get_note(trial)
    ui = "http://127.0.0.1:5000/#/experiments/3/runs"
    assert f"[this trial's run]({ui}/{trial_run}?workflowType=machine_learning)" in note
    assert f"[the sweep's parent run]({ui}/{'p' * 32}?workflowType=machine_learning)" in note
    assert f"[the experiment's runs]({ui}?workflowType=machine_learning)" in note
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in note
    assert parent.run_url(trial_run) == f"{ui}/{trial_run}?workflowType=machine_learning"


# --------------------------------------------------------------------------- a real sweep


@pytest.mark.slow
def test_a_preferential_sweep_through_the_cli(tmp_path, shared_data):
    set5 = (shared_data / "set5").as_posix()
    sets = {
        "data.train": f'["{set5}"]',
        "data.val": f'["{set5}"]',
        "experiment.runs_dir": f'"{(tmp_path / "runs").as_posix()}"',
        "tracking.uri": f'"sqlite:///{(tmp_path / "mlflow.db").as_posix()}"',
        "sweep.sampler": '"random"',  # the preferential GP needs BoTorch (not a dependency)
        "sweep.sampler_options": "{}",
        "sweep.n_generate": "2",
    }
    cmd = [sys.executable, "-m", "harness.cli", "sweep", str(QUICK), "--preferential"]
    cmd += ["--trials", "2"] + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HARNESS_MLFLOW_UI": "http://ui:5000"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    folder = tmp_path / "runs" / "quickstart_sweep" / "quickstart_w1_w2" / "artifacts"
    assert f"optuna-dashboard sqlite:///optuna.db --artifact-dir {folder}" in out.stdout
    assert "0 ranked, 2 awaiting a ranking" in out.stdout

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = load_preferential(
        study_name="quickstart_w1_w2", storage=storage, sampler=optuna.samplers.RandomSampler()
    )
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.RUNNING] * 2  # awaiting their ranking
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent_id = study.user_attrs[sweep.PARENT_ATTR]
    assert study.user_attrs["mlflow_experiment"] == "quickstart_sweep"
    experiment_id = study.user_attrs["mlflow_experiment_id"]
    assert study.user_attrs["mlflow_parent_run_url"] == (
        f"http://ui:5000/#/experiments/{experiment_id}/runs/{parent_id}"
        "?workflowType=machine_learning"
    )
    for t in trials:
        metas = optuna.artifacts.get_all_artifact_meta(
            t, storage=optuna.storages.get_storage(storage)
        )
        assert [m.artifact_id for m in metas] == [t.user_attrs[sweep.GRID_ATTR]]
        assert (folder / metas[0].artifact_id).read_bytes()[:8] == PNG
        assert t.user_attrs["val/psnr_y"] > 0  # the objective, for reference next to the ranks
        run = client.get_run(t.user_attrs[sweep.RUN_ATTR])
        url = t.user_attrs[sweep.RUN_URL_ATTR]
        assert url.endswith(f"/runs/{run.info.run_id}?workflowType=machine_learning")
        # optuna-dashboard keeps notes as study system attributes
        store = optuna.storages.get_storage(storage)
        notes = store.get_study_system_attrs(store.get_study_id_from_name("quickstart_w1_w2"))
        assert any(f"[this trial's run]({url})" in str(v) for v in notes.values())
        assert run.info.run_name == f"{t.number:04d} quickstart_w1_w2"
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.data.tags["optuna.trial_number"] == str(t.number)
        assert run.data.tags["optuna.storage"] == storage
        assert run.data.tags["optuna.state"] == "awaiting ranking"
        assert set(run.data.params) == set(t.params)
    # a ranking (what the dashboard's "choose worst" records) completes the ranked trials
    study.report_preference(trials[0], trials[1])
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert [t.number for t in study.best_trials] == [0]
