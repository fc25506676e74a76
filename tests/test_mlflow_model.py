"""The logged MLflow model: [0, 1] -> [0, 1] like every serving path, servable without
srgan-harness installed, registered on request and loadable by ``models:/name@alias``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import new_store

from harness import config
from harness.deploy import mlflow_model
from harness.deploy.lr_range import range_problem
from harness.deploy.models import load_generator, load_upscaler
from harness.deploy.upscaler import Upscaler
from harness.tracking import Tracker
from harness.training.callbacks import register_models


def tiny_generator(seed: int, registry) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(seed)
    return registry.factory("generator", "srresnet")(scale=4, blocks=1, filters=8)


def lr_batch(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, h, w, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite store in a temporary folder, as MLFLOW_TRACKING_URI for the module."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    folder = tmp_path_factory.mktemp("mlflow")
    uri = new_store(folder)
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    previous = tracking_utils._tracking_uri
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield uri, folder
    mlflow.set_tracking_uri(previous)  # leave the process-wide URI as it was
    if previous_env is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous_env


def make_tracker(store, registry, **tracking) -> Tracker:
    uri, folder = store
    exp = config.from_dict(
        {
            "experiment": {"name": "logged", "runs_dir": str(folder / "runs")},
            "tracking": {"uri": uri, **tracking},
        },
        registry=registry,
    )
    return Tracker(exp), exp


@pytest.fixture(scope="module")
def logged(store, registry):
    """A run with two generators logged: ``generator`` (final) and ``best_psnr_y``.

    They are logged and registered while MLflow's process-wide URI and MLFLOW_TRACKING_URI name
    another store: every call goes to the run's own store, and both are left as they were."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    uri, folder = store
    elsewhere = f"sqlite:///{folder / 'elsewhere.db'}"
    previous = tracking_utils._tracking_uri
    tracking_utils._tracking_uri = os.environ["MLFLOW_TRACKING_URI"] = elsewhere
    try:
        tracker, exp = make_tracker(store, registry, register="upscaler")
        final, best = tiny_generator(1, registry), tiny_generator(2, registry)
        final_uri = mlflow_model.log_generator(tracker.client, tracker.run_id, final, 4)
        best_uri = mlflow_model.log_generator(
            tracker.client, tracker.run_id, best, 2, "best_psnr_y"
        )
        register_models(exp, tracker, final_uri, {"best_psnr_y": best_uri})
        tracker.end()
        assert tracking_utils._tracking_uri == os.environ["MLFLOW_TRACKING_URI"] == elsewhere
        assert not (folder / "elsewhere.db").exists()
    finally:
        tracking_utils._tracking_uri = previous
        os.environ["MLFLOW_TRACKING_URI"] = uri
    return tracker.run_id, final, best


def test_pyfunc_output_is_the_harness_upscaling(logged) -> None:
    import mlflow.pyfunc

    run_id, final, _ = logged
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/generator")
    want = Upscaler.from_generator(final)
    for lr in (lr_batch(2, 6, 10), lr_batch(1, 9, 7, seed=1)):
        got = model.predict(lr)
        assert got.shape == (lr.shape[0], lr.shape[1] * 4, lr.shape[2] * 4, 3)
        assert got.min() >= 0 and got.max() <= 1
        np.testing.assert_allclose(got, want(lr), atol=1e-5)
    # harness itself loads the logged model back, as an upscaler and as a generator
    np.testing.assert_allclose(load_upscaler(run_id, registry=None)(lr), want(lr), atol=1e-5)


@pytest.mark.parametrize("scale", [255.0, -1.0, float("nan")])
def test_pyfunc_refuses_input_outside_0_1_as_serve_does(logged, scale) -> None:
    """8-bit pixels would saturate to white: refused, with serve's message."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"runs:/{logged[0]}/generator")
    lr = lr_batch(1, 4, 4) * scale
    with pytest.raises(Exception, match=r"must lie in \[0, 1\]|NaN or infinite") as caught:
        model.predict(lr)
    assert str(caught.value) == range_problem(lr, "inputs")


@pytest.mark.slow
def test_a_generator_of_either_training_policy_is_logged_in_float32(trained, store, registry):
    import keras
    import mlflow.pyfunc

    generator = keras.saving.load_model(trained.path, compile=False)  # as training holds it
    tracker, _ = make_tracker(store, registry)
    mlflow_model.log_generator(tracker.client, tracker.run_id, generator, 1)
    tracker.end()
    model = mlflow.pyfunc.load_model(f"runs:/{tracker.run_id}/generator")
    lr = lr_batch(1, 7, 9, seed=5)
    want = Upscaler.from_generator(trained.float32)(lr)
    np.testing.assert_allclose(model.predict(lr), want, atol=1e-5)
    np.testing.assert_allclose(
        load_upscaler(tracker.run_id, registry=registry)(lr), want, atol=1e-5
    )


def test_logged_model_has_signature_example_and_pypi_requirements(logged) -> None:
    import mlflow.artifacts
    from mlflow.models import Model

    run_id, _, _ = logged
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/generator"))
    meta = Model.load(folder / "MLmodel")
    assert meta.signature is not None
    (spec,) = meta.signature.inputs.inputs
    assert spec.shape == (-1, -1, -1, 3) and spec.type == np.dtype(np.float32)
    assert meta.saved_input_example_info is not None
    example = meta.load_input_example(str(folder))
    assert np.asarray(example).shape == (1, 8, 8, 3)
    requirements = (folder / "requirements.txt").read_text()
    conda = (folder / "conda.yaml").read_text()
    for text in (requirements, conda):
        assert "srgan-harness" not in text and "harness" not in text.replace("srgan", "")
        assert f"tensorflow=={tf.__version__}" in text
    assert (folder / "artifacts" / "saved_model" / "saved_model.pb").is_file()
    assert (folder / "artifacts" / "generator.keras").is_file()


def test_registered_versions_and_alias_load_everywhere(logged, registry) -> None:
    from mlflow.tracking import MlflowClient

    run_id, final, best = logged
    client = MlflowClient()
    versions = sorted(int(v.version) for v in client.search_model_versions("name='upscaler'"))
    assert versions == [1, 2]
    assert str(client.get_model_version_by_alias("upscaler", "champion").version) == "2"
    lr = lr_batch(1, 6, 6, seed=3)
    best_sr = Upscaler.from_generator(best)(lr)
    np.testing.assert_allclose(
        load_upscaler("models:/upscaler@champion", registry=registry)(lr), best_sr, atol=1e-5
    )
    generator = load_generator("models:/upscaler/1", registry=registry)
    np.testing.assert_allclose(
        Upscaler.from_generator(generator)(lr), Upscaler.from_generator(final)(lr), atol=1e-5
    )


def test_the_alias_goes_on_the_final_version_when_it_is_the_best(store, registry) -> None:
    from mlflow.tracking import MlflowClient

    tracker, exp = make_tracker(store, registry, register="solo", alias="prod")
    uri = mlflow_model.log_generator(tracker.client, tracker.run_id, tiny_generator(3, registry), 1)
    register_models(exp, tracker, uri, {"best_psnr_y": uri})
    client = MlflowClient()
    assert [str(v.version) for v in client.search_model_versions("name='solo'")] == ["1"]
    assert str(client.get_model_version_by_alias("solo", "prod").version) == "1"
    # the logged model and its experiment describe themselves in MLflow's UI
    described = client.get_logged_model(uri.removeprefix("models:/")).tags["mlflow.note.content"]
    assert "float32 NHWC" in described and "4 times the input's height" in described
    experiment = client.get_experiment(client.get_run(tracker.run_id).info.experiment_id)
    assert "float32 NHWC RGB in [0, 1]" in experiment.tags["mlflow.note.content"]


@pytest.mark.parametrize(
    ("tracking", "words"),
    [
        ({"register": "sr", "log_model": False}, "log_model"),
        ({"register": "sr", "alias": "latest"}, "reserves"),
        ({"register": "sr", "alias": "best one"}, "letters"),
    ],
)
def test_unusable_registration_settings_are_refused_when_read(tracking, words, registry) -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match=words):
        config.from_dict({"tracking": tracking}, registry=registry)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations_without_harness(logged, store, tmp_path) -> None:
    """`mlflow models serve --env-manager local` with srgan-harness made unimportable."""
    import httpx

    run_id, final, _ = logged
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "harness.py").write_text("raise ImportError('srgan-harness is not installed')\n")
    bin_dir = str(Path(sys.executable).parent)  # mlflow runs uvicorn from PATH
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": str(blocker),
        "MLFLOW_TRACKING_URI": store[0],
    }
    port = free_port()
    command = [str(Path(bin_dir) / "mlflow"), "models", "serve", "-m", f"runs:/{run_id}/generator"]
    command += ["--env-manager", "local", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read().decode()[-2000:]
            assert time.time() < deadline, "mlflow models serve did not start"
            time.sleep(1)
        lr = lr_batch(1, 5, 6, seed=4)
        response = httpx.post(
            f"http://127.0.0.1:{port}/invocations", json={"inputs": lr.tolist()}, timeout=60
        )
        assert response.status_code == 200, response.text
        got = np.asarray(response.json()["predictions"], np.float32)
        np.testing.assert_allclose(got, Upscaler.from_generator(final)(lr), atol=1e-5)
    finally:
        server.terminate()
        server.wait(20)


def test_logging_a_model_prints_nothing(store, registry, capfd) -> None:
    """The end of `harness run` stays readable: no MLflow progress bars, INFO lines or
    type-hint warnings while the model is logged and its input example checked."""
    import warnings

    tracker, _ = make_tracker(store, registry)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mlflow_model.log_generator(tracker.client, tracker.run_id, tiny_generator(3, registry), 1)
    tracker.end()
    out, err = capfd.readouterr()
    assert "Downloading artifacts" not in out + err
    assert "INFO mlflow" not in out + err
    hints = [str(w.message) for w in caught if "ype hint" in str(w.message)]
    assert not hints, hints
