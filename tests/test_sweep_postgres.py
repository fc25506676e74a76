"""Two ``harness sweep`` workers on one study in PostgreSQL: every trial is run once, none lost.

Needs a PostgreSQL server: ``HARNESS_TEST_POSTGRES_URL`` (CI's .ci/run starts one and sets it,
e.g. postgresql://postgres@127.0.0.1:55432/postgres). The test makes its own databases there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness import sweep, tracking

POSTGRES_ENV = "HARNESS_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parent.parent
QUICK = REPO / "experiments" / "quickstart_sweep.toml"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get(POSTGRES_ENV),
        reason=f"no PostgreSQL server: set {POSTGRES_ENV}=postgresql://user@host:port/db "
        "(.ci/run starts one)",
    ),
]


@pytest.fixture
def databases():
    """Two fresh databases (Optuna's and MLflow's) on the test server, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed")
    admin = os.environ[POSTGRES_ENV]
    base = admin.rsplit("/", 1)[0]
    names = [f"harness_sweep_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("optuna", "mlflow")]
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f'CREATE DATABASE "{name}"')
        yield [f"{base}/{name}" for name in names]
    finally:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def test_two_workers_share_one_study(tmp_path, shared_data, databases):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    optuna_url, mlflow_url = databases
    mlflow_url = tracking.database_url(mlflow_url)  # MLflow itself takes the URL as given
    MlflowClient(tracking_uri=mlflow_url).search_experiments()  # the tracking server's tables
    set5 = (shared_data / "set5").as_posix()
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "sweep",
        str(QUICK),
        "--trials",
        "3",
        "--storage",
        optuna_url,
        "--set",
        f'data.train=["{set5}"]',
        "--set",
        f'data.val=["{set5}"]',
        "--set",
        f'tracking.uri="{mlflow_url}"',
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    workers = []
    for i in range(2):
        folder = tmp_path / f"machine{i}"  # each worker its own working directory
        folder.mkdir()
        workers.append(
            subprocess.Popen(
                cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    outputs = []
    for worker in workers:
        out, _ = worker.communicate(timeout=600)
        outputs.append(out.decode(errors="replace"))
        assert worker.returncode == 0, outputs[-1]

    ran = [int(re.search(r"(\d+) trials run here", out).group(1)) for out in outputs]
    assert sum(ran) == 3 and min(ran) >= 1, outputs  # both workers took trials

    storage = tracking.database_url(optuna_url)
    study = optuna.load_study(study_name="quickstart_w1_w2", storage=storage)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    others = [t for t in trials if t not in finished]
    # only a trial asked for a slot already taken may be left over, and it never ran
    assert all("surplus" in t.user_attrs.get(sweep.INTERRUPTED_ATTR, "") for t in others)
    owners = {t.user_attrs[sweep.WORKER_ATTR] for t in finished}
    assert len(owners) == 2

    client = MlflowClient(tracking_uri=mlflow_url)
    experiment = client.get_experiment_by_name("quickstart_sweep")
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`optuna.study` = 'quickstart_w1_w2'"
    )
    parents = [r for r in runs if r.data.tags.get("harness.sweep") == "parent"]
    children = [r for r in runs if r.data.tags.get("harness.sweep") != "parent"]
    assert len(parents) == 1  # one parent run for the study, whichever worker made it
    numbers = sorted(int(r.data.tags["optuna.trial_number"]) for r in children)
    assert numbers == sorted(t.number for t in finished)  # each trial ran exactly once
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {t.user_attrs[sweep.RUN_ATTR] for t in finished} == {r.info.run_id for r in children}
