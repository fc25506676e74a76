"""``harness sweep``: config checks, trial bookkeeping, and real sweeps through the CLI.

The CLI tests train the CPU-sized sweep (experiments/quickstart_sweep.toml: a 1-block SRResNet,
4 steps, validation every 2) on Set5; each trial is its own process importing TensorFlow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from conftest import new_store
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from harness import config, sweep
from harness.cli import cli
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
QUICK = REPO / "experiments" / "quickstart_sweep.toml"
HARNESS = [sys.executable, "-m", "harness.cli"]


def _sweep_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(f'extends = "{QUICK.as_posix()}"\n{body}', encoding="utf-8")
    return path


# --------------------------------------------------------------------------- config checks


def test_sweep_files_load_and_check(registry):
    for name in ("quickstart_sweep.toml", "perpix_sweep.toml"):
        path = REPO / "experiments" / name
        if name == "perpix_sweep.toml" and not (path.parent / "perpix.toml").is_file():
            pytest.skip("experiments/perpix.toml (the base of perpix_sweep.toml) is not there")
        p = sweep.plan(path, registry=registry)
        assert p.objectives == (sweep.Objective("val/psnr_y", "maximize", "best"),)
        assert set(p.sweep.params) >= {
            "losses.mse.weight.values.1",
            "losses.vgg54.weight.values.0",
            "train.milestones.mse_down",
            "train.milestones.vgg_up",
        }
        # every sampled point of the space is a valid experiment (same checks as --set)
        space = sweep.distributions(p.sweep)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask(space)
            exp = config.load(path, trial.params, registry=registry)
            assert [loss.plugin for loss in exp.losses] == ["mse", "vgg54"]
            # a sampled milestone moves the boundary of the weight that names it
            mse_down = trial.params["train.milestones.mse_down"]
            assert exp.losses[0].weight.params["boundaries"] == (mse_down,)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[sweep.params."train.stepz"]\ntype = "int"\nlow = 1\nhigh = 3\n', "not a key"),
        ('[sweep.params."train.steps"]\ntype = "float"\nlow = 1\nhigh = 3\n', 'type = "int"'),
        ('[sweep.params."train.ema"]\ntype = "float"\nlow = 0.5\nhigh = 0.1\n', "below"),
        ('[sweep.params."train.ema"]\ntype = "float"\nlow = 0\nhigh = 1\nlog = true\n', "> 0"),
        ('[sweep.params."train.ema"]\ntype = "uniform"\n', '"float", "int"'),
        ('[sweep.params."train.ema"]\ntype = "float"\nlow = 0\nhigh = 1\nq = 2\n', "unknown"),
        ('[sweep.params."losses.mse.weight"]\ntype = "int"\nlow = 0\nhigh = 1\n', "table"),
        ("[sweep]\nobjectives = [{metric = 'psnr'}]\n", "validation metric"),
        ("[sweep]\nobjectives = [{metric = 'val/lpips'}]\n", r'metrics = \["lpips"\]'),
        ("[sweep]\nobjectives = [{metric = 'val/psnr_y', reduce = 'mean'}]\n", '"best"'),
        ("[sweep]\ntrials = 0\n", "at least 1"),
        ("[sweep]\nsampler = 'cmaes'\n", "one of"),
        ("[sweep]\nmode = 'preferential'\nsampler = 'grid'\n", 'sampler = "gp"'),
        ("[sweep]\nsampler = 'gp'\n", 'mode = "preferential"'),
        ("[sweep]\nmode = 'ranked'\n", "one of"),
        ("[sweep]\nn_generate = 0\n", "at least 1"),
    ],
)
def test_bad_sweep_tables_name_the_key_and_the_fix(tmp_path, body, message, registry):
    path = _sweep_file(tmp_path, body)
    with pytest.raises(ConfigError, match=message):
        sweep.plan(path, registry=registry)


def test_no_sweep_table_is_a_clear_error(registry):
    with pytest.raises(ConfigError, match=r"no \[sweep\] table"):
        sweep.plan(REPO / "experiments" / "quickstart.toml", registry=registry)


def test_grid_space_and_the_command_line_overrides(tmp_path, registry):
    path = tmp_path / "grid.toml"
    path.write_text(
        '[sweep]\nsampler = "grid"\ntrials = 99\n'  # over the built-in defaults
        '[sweep.params."train.beta1"]\ntype = "float"\nlow = 0.5\nhigh = 0.9\nstep = 0.2\n'
        '[sweep.params."generator.blocks"]\ntype = "int"\nlow = 1\nhigh = 2\n',
        encoding="utf-8",
    )
    p = sweep.plan(
        path, ["sweep.jobs=2"], registry=registry, trials=7, storage="sqlite:///x.db", study="s1"
    )
    assert (p.trials, p.jobs, p.storage_url, p.study_name) == (7, 2, "sqlite:///x.db", "s1")
    space = sweep.grid(p.sweep)
    assert space == {"train.beta1": [0.5, 0.7, 0.9], "generator.blocks": [1, 2]}
    assert isinstance(sweep.make_sampler(p.sweep), optuna.samplers.GridSampler)
    # a float without a step has no grid: said when the sweep is planned, not at trial time
    with pytest.raises(ConfigError, match='needs a "step"'):
        sweep.plan(_sweep_file(tmp_path, '[sweep]\nsampler = "grid"\n'), registry=registry)


def test_objective_reduces_a_validation_curve():
    history = [(2, {"val/psnr_y": 20.0, "val/lpips": 0.5}), (4, {"val/psnr_y": 19.0})]
    assert sweep.Objective("val/psnr_y").value(history) == 20.0
    assert sweep.Objective("val/psnr_y", reduce="final").value(history) == 19.0
    assert sweep.Objective("val/lpips", "minimize").value(history) == 0.5
    with pytest.raises(sweep.SweepError, match="val/ssim_y"):
        sweep.Objective("val/ssim_y").value(history)


def test_redact_hides_passwords():
    assert sweep.redact("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert sweep.redact("sqlite:///optuna.db") == "sqlite:///optuna.db"


# --------------------------------------------------------------------------- bookkeeping


def _study(tmp_path: Path, registry):
    p = sweep.plan(QUICK, registry=registry, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    storage = sweep.open_storage(p.storage_url, p.sweep)
    return p, sweep.open_study(p, storage)


def _beating_study(tmp_path: Path, registry, lost: list[int] | None = None):
    """A study whose storage fails a trial 2 s after its last heartbeat (beats every 1 s)."""
    p = sweep.plan(
        QUICK,
        ["sweep.heartbeat_interval=1", "sweep.grace_period=2"],
        registry=registry,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
    )
    on_lost = None if lost is None else lost.append
    return p, sweep.open_study(p, sweep.open_storage(p.storage_url, p.sweep, on_lost=on_lost))


def test_a_lost_trial_is_failed_and_queued_again_with_its_parameters(tmp_path, registry):
    lost_numbers: list[int] = []
    p, study = _beating_study(tmp_path, registry, lost_numbers)
    space = sweep.distributions(p.sweep)
    lost, live = study.ask(space), study.ask(space)
    never = study.ask(space)  # no heartbeat yet: Optuna leaves it alone
    crashed = study.ask(space)
    crashed.set_user_attr(sweep.ERROR_ATTR, "ValueError: boom")
    study.tell(crashed, state=TrialState.FAIL)
    for trial in (lost, live):  # their workers' heartbeats
        study._storage.record_heartbeat(trial._trial_id)
    for _ in range(3):  # only the live trial's worker still beats
        time.sleep(1.0)
        study._storage.record_heartbeat(live._trial_id)

    optuna.storages.fail_stale_trials(study)  # what study.optimize does before each ask

    assert lost_numbers == [lost.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[lost.number] == TrialState.FAIL
    assert states[live.number] == states[never.number] == TrialState.RUNNING
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs for t in queued] == [{sweep.RETRY_ATTR: lost.number}]
    c = sweep.counts(study)
    # the crash counts toward the study's size; the lost trial does not (it runs again)
    assert (c["done"], c["failed"], c["retry"], c["running"], c["waiting"]) == (1, 1, 1, 2, 1)
    again = study.ask(space)  # the next trial asked for is the retry
    assert again.number == queued[0].number and again.params == lost.params


def test_the_study_size_counts_done_and_running_trials(tmp_path, registry):
    p, study = _study(tmp_path, registry)
    space = sweep.distributions(p.sweep)
    size = sweep.StudySize(3)
    done = study.ask(space)
    study.tell(done, 20.0)
    crashed = study.ask(space)
    crashed.set_user_attr(sweep.ERROR_ATTR, "ValueError: boom")
    study.tell(crashed, state=TrialState.FAIL)
    interrupted = study.ask(space)  # given up: does not count
    study.tell(interrupted, state=TrialState.FAIL)
    assert size.free(study) == 1
    running = study.ask(space)  # another worker's
    assert size.free(study) == 0
    study.tell(running, state=TrialState.PRUNED)

    stopped = []
    study.optimize(
        lambda t: stopped.append(t.number) or 1.0, n_trials=5, callbacks=[sweep.StudySize(4)]
    )
    assert len(stopped) == 1  # one free slot: Optuna's loop stops after one trial


def test_surplus_and_show_table(tmp_path, registry):
    p, study = _study(tmp_path, registry)
    space = sweep.distributions(p.sweep)
    for value in (21.0, 23.0, 22.0):
        trial = study.ask(space)
        trial.set_user_attr(sweep.RUN_ATTR, f"run{trial.number}")
        study.tell(trial, value)
    extra = study.ask(space)
    assert sweep.surplus(study, extra, target=3)
    assert not sweep.surplus(study, extra, target=4)
    study.tell(extra, state=TrialState.PRUNED)

    text = sweep.show(p, top=2)
    lines = text.splitlines()
    assert "3 complete, 1 pruned, 0 failed" in lines[0]
    assert lines[1] == "best 2:"
    assert lines[2].split()[:3] == ["rank", "trial", "val/psnr_y"]
    assert lines[3].split()[:3] == ["1", "1", "23.0000"] and lines[3].endswith("run1")
    assert lines[4].split()[:3] == ["2", "2", "22.0000"]
    assert len(lines) == 5


def test_show_without_a_storage_says_what_to_run(tmp_path, registry):
    p = sweep.plan(QUICK, registry=registry, storage=f"sqlite:///{tmp_path / 'none.db'}")
    with pytest.raises(sweep.SweepError, match="harness sweep"):
        sweep.show(p)


def test_plots_for_one_and_two_objectives(tmp_path):
    objectives = [sweep.Objective("val/psnr_y"), sweep.Objective("val/lpips", "minimize")]
    study = optuna.create_study(directions=["maximize", "minimize"])
    space = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i in range(4):
        trial = study.ask(space)
        study.tell(trial, [trial.params["x"] + i, 1 - trial.params["x"]])
    names = {p.name for p in sweep.save_plots(study, objectives, tmp_path / "two")}
    assert "pareto_front.png" in names
    assert "optimization_history_val_psnr_y.png" in names
    single = optuna.create_study(direction="maximize")
    for i in range(4):
        trial = single.ask(space)
        trial.report(trial.params["x"], 1)
        single.tell(trial, trial.params["x"] + i)
    names = {p.name for p in sweep.save_plots(single, objectives[:1], tmp_path / "one")}
    assert {"optimization_history.png", "param_importances.png"} <= names
    assert all((tmp_path / "one" / n).read_bytes()[:4] == b"\x89PNG" for n in names)


# --------------------------------------------------------------------------- real sweeps


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _sets(shared_data: Path, tmp_path: Path) -> list[str]:
    set5 = (shared_data / "set5").as_posix()
    return [
        "--set",
        f'data.train=["{set5}"]',
        "--set",
        f'data.val=["{set5}"]',
        "--set",
        f'experiment.runs_dir="{(tmp_path / "runs").as_posix()}"',
        "--set",
        f'tracking.uri="sqlite:///{(tmp_path / "mlflow.db").as_posix()}"',
    ]


def _trial_runs(tmp_path: Path, study_name: str):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("quickstart_sweep")
    runs = client.search_runs([experiment.experiment_id], f"tags.`optuna.study` = '{study_name}'")
    parents = [r for r in runs if r.data.tags.get("harness.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("harness.sweep") != "parent"]
    return client, parents, children


def test_sweep_through_the_cli_tracks_trials_in_mlflow(
    tmp_path, shared_data, monkeypatch, registry
):
    new_store(tmp_path)  # the store the sweep's --set names, made here in milliseconds
    cmd = [*HARNESS, "sweep", str(QUICK), "--trials", "2", "--jobs", "2"]
    cmd += _sets(shared_data, tmp_path)
    out = subprocess.run(
        cmd, cwd=tmp_path, env=_cli_env(), capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / "optuna.db").is_file()  # the default storage, in the working directory

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.load_study(study_name="quickstart_w1_w2", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 2
    states = [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), (
        states,
        out.stdout[-3000:],
        out.stderr[-3000:],
    )
    # the median pruner waits for one complete trial
    assert TrialState.COMPLETE in {t.state for t in trials}
    best = study.best_trial
    assert "best 1:" in out.stdout or "best 2:" in out.stdout
    assert any(line.split()[:2] == ["1", str(best.number)] for line in out.stdout.splitlines()), (
        out.stdout
    )

    client, parents, children = _trial_runs(tmp_path, "quickstart_w1_w2")
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert study.metric_names == ["val/psnr_y"]  # optuna-dashboard's name for the objective
    assert study.user_attrs[sweep.PARENT_ATTR] == parent.info.run_id
    assert study.user_attrs["mlflow_experiment_id"] == parent.info.experiment_id
    assert study.user_attrs["mlflow_tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = tmp_path / "runs" / "quickstart_sweep" / "quickstart_w1_w2" / "artifacts"
    assert study.user_attrs["artifact_dir"] == str(folder)
    assert parent.data.tags["best.trial_number"] == str(best.number)
    assert parent.data.metrics["best/val/psnr_y"] == pytest.approx(best.value)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in artifacts
    for trial in trials:
        run_id = trial.user_attrs[sweep.RUN_ATTR]
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert run.data.tags["optuna.state"] == trial.state.name
        assert run.data.tags["optuna.storage"] == storage
        # the trial number first, so runs sort by trial; the sampled values are its parameters
        assert run.info.run_name == f"{trial.number:04d} quickstart_w1_w2"
        assert set(run.data.params) == set(trial.params)
        # its last validation sample grid, for optuna-dashboard (--artifact-dir)
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        assert [m.artifact_id for m in metas] == [trial.user_attrs[sweep.GRID_ATTR]]
        assert metas[0].filename.startswith(f"trial_{trial.number:04d}_")
        assert (folder / metas[0].artifact_id).read_bytes()[:4] == b"\x89PNG"
        assert run.info.status == ("FINISHED" if trial.state == TrialState.COMPLETE else "KILLED")
        for key, value in trial.params.items():
            assert float(run.data.params[key]) == pytest.approx(value)
        psnr = [m.value for m in client.get_metric_history(run_id, "val/psnr_y")]
        assert psnr and sorted(trial.intermediate_values) == [2, 4][: len(psnr)]
        if trial.state == TrialState.COMPLETE:
            assert trial.value == pytest.approx(max(psnr))

    # a report of the sweep finds each trial's run directory and values (its experiment.toml)
    from harness.evaluation.report import resolve_runs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    infos = resolve_runs([parent.info.run_id], tracking_uri=uri, say=lambda _: None)
    assert sorted(i.run_dir.name for i in infos) == [f"trial_{t.number:04d}" for t in trials]
    assert all(i.params["data.scale"] == "4" for i in infos)

    # --show in this process (the sweep above was the true command line)
    monkeypatch.chdir(tmp_path)
    shown = CliRunner().invoke(cli, ["sweep", "--show", str(QUICK)], obj={"registry": registry})
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[0].startswith(
        'study "quickstart_w1_w2" in sqlite:///optuna.db'
    )
    assert best.user_attrs[sweep.RUN_ATTR] in shown.output


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the trial process through /proc")
def test_a_killed_sweep_resumes_and_completes_the_requested_trials(tmp_path, shared_data):
    cmd = [*HARNESS, "sweep", str(QUICK), "--trials", "2", *_sets(shared_data, tmp_path)]
    cmd += ["--set", "sweep.heartbeat_interval=1", "--set", "sweep.grace_period=2"]
    worker = subprocess.Popen(
        cmd, cwd=tmp_path, env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    job = tmp_path / "runs" / "quickstart_sweep" / "quickstart_w1_w2" / "trial_0000.job.json"
    deadline = time.monotonic() + 300
    while not _processes_with(str(job)) and time.monotonic() < deadline:
        assert worker.poll() is None, worker.stdout.read().decode()
        time.sleep(0.2)
    assert _processes_with(str(job)), "the first trial's process never started"
    time.sleep(2.0)
    worker.send_signal(signal.SIGKILL)  # a crash: no clean-up at all
    worker.wait()
    # the orphaned trial process notices and stops by itself
    deadline = time.monotonic() + 60
    while _processes_with(str(job)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with(str(job)), "the orphaned trial process kept running"

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.load_study(study_name="quickstart_w1_w2", storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]

    again = subprocess.run(
        cmd, cwd=tmp_path, env=_cli_env(), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "trial 0: its worker is gone" in again.stdout
    trials = optuna.load_study(study_name="quickstart_w1_w2", storage=storage).get_trials()
    # its heartbeat stopped with its worker: failed without an error (it does not count) ...
    assert trials[0].state == TrialState.FAIL and sweep.ERROR_ATTR not in trials[0].user_attrs
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert [t.number for t in done] == [1, 2]
    # ... and run again with its parameters
    retry = [t for t in done if t.user_attrs.get(sweep.RETRY_ATTR) == 0]
    assert len(retry) == 1 and retry[0].params == trials[0].params
    result = json.loads((job.parent / "trial_0002.result.json").read_text())
    assert result["state"] in ("complete", "pruned")
