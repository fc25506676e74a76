"""Warm starts (``[generator] init``, ``[discriminator] init``), kept best generators, and the
resume-mismatch message."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import new_store
from mlflow.tracking import MlflowClient
from test_train import tiny

from harness.deploy import models as inference
from harness.errors import HarnessError, HarnessWarning
from harness.training.checkpoints import Checkpoints
from harness.training.loop import train
from harness.training.step import Trainer
from harness.training.warmstart import WarmStartError, lineage, load_discriminator, warm_start


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return new_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def base(tmp_path_factory, store, registry):
    """A finished tiny GAN run (generator.keras and discriminator.keras written), validated
    with LPIPS at both steps, so it keeps its best generators too."""
    root = tmp_path_factory.mktemp("base")
    exp = tiny(
        root,
        experiment={"name": "base"},
        adversarial={"name": "modified"},
        train={"steps": 2, "learning_rate": 1e-2},
        validation={"every": 1, "metrics": ["lpips"]},
        tracking={"uri": store, "log_model": True},
    )
    result = train(exp, registry=registry)
    return exp, result


def _weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def test_generator_and_discriminator_start_from_another_run(tmp_path, base, registry):
    base_exp, _ = base
    run = str(base_exp.run_dir)
    exp = tiny(
        tmp_path,
        experiment={"name": "ft"},
        generator={"init": run},
        discriminator={"init": run},
        adversarial={"name": "least_squares"},
    )
    trainer = Trainer(exp, registry=registry)
    fresh = _weights(trainer.generator)
    sources = warm_start(trainer)
    assert [s.network for s in sources] == ["generator", "discriminator"]
    assert sources[0].run_id == (base_exp.run_dir / "mlflow_run_id").read_text().strip()
    source_g = inference.load_generator(base_exp.run_dir / "generator.keras", registry=registry)
    for mine, theirs in zip(_weights(trainer.generator), _weights(source_g), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, _weights(source_g), strict=True))
    source_d = inference.load_keras_file(
        base_exp.run_dir / "discriminator.keras", registry=registry
    )
    for mine, theirs in zip(_weights(trainer.discriminator), _weights(source_d), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_a_shape_mismatch_names_both_models(tmp_path, base, registry):
    base_exp, _ = base
    exp = tiny(
        tmp_path,
        generator={"filters": 16, "init": str(base_exp.run_dir)},
        adversarial=None,
    )
    with pytest.raises(WarmStartError) as err:
        warm_start(Trainer(exp, registry=registry))
    text = str(err.value)
    assert "[generator] init" in text and str(base_exp.run_dir) in text
    assert "filters=16" in text and "shape" in text
    assert text.count('"') >= 4  # both models' names are quoted


def test_the_fine_tune_records_its_source_in_mlflow(tmp_path, base, store, registry):
    base_exp, base_result = base
    exp = tiny(
        tmp_path,
        experiment={"name": "ft_tracked"},
        generator={"init": str(base_exp.run_dir)},
        adversarial=None,
        train={"steps": 1},
        tracking={"uri": store},
    )
    result = train(exp, registry=registry)
    run = MlflowClient(store).get_run(result.run_id)
    assert run.data.params["generator.init"] == str(base_exp.run_dir)
    assert run.data.tags["harness.init.generator"] == str(base_exp.run_dir)
    assert run.data.tags["harness.init.generator_run"] == base_result.run_id
    assert lineage(f"runs:/{base_result.run_id}/generator") == base_result.run_id
    # MLflow 3's own lineage: the source run's logged generator is an input model of this run
    client = MlflowClient(store)
    source_experiment = client.get_run(base_result.run_id).info.experiment_id
    generators = [
        m.model_id
        for m in client.search_logged_models(experiment_ids=[source_experiment])
        if m.source_run_id == base_result.run_id and m.name == "generator"
    ]
    assert len(generators) == 1
    assert [m.model_id for m in run.inputs.model_inputs] == generators
    # the validation curves start at step 0 with the warm-started generator: the base's final
    # validation, as the same generator on the same images; a run from scratch has no step 0
    start = {m.step: m.value for m in client.get_metric_history(result.run_id, "val/psnr_y")}
    assert sorted(start) == [0, 1]
    assert start[0] == pytest.approx(base_result.final_metrics["val/psnr_y"], abs=1e-3)
    assert start[1] != pytest.approx(start[0], abs=1e-6)  # a trained step, not the start again
    base_steps = [m.step for m in client.get_metric_history(base_result.run_id, "val/psnr_y")]
    assert base_steps == [1, 2]


@pytest.fixture(scope="module")
def one_step(tmp_path_factory, registry):
    """The run directory of a finished one-step MSE run ``mse``; tests resume copies of it."""
    exp = tiny(
        tmp_path_factory.mktemp("one_step"),
        experiment={"name": "mse"},
        adversarial=None,
        train={"steps": 1},
    )
    train(exp, registry=registry)
    return exp.run_dir


def test_init_is_not_read_when_the_run_resumes(tmp_path, one_step, registry):
    shutil.copytree(one_step, tmp_path / "runs" / "mse")
    bad = tiny(
        tmp_path,
        experiment={"name": "mse"},
        generator={"init": str(tmp_path / "nowhere")},
        adversarial=None,
        train={"steps": 2},
    )
    # the run's own checkpoint wins; init is never loaded
    assert train(bad, registry=registry).steps == 2


def test_resuming_with_a_changed_experiment_names_the_objects_not_values(
    tmp_path, one_step, registry
):
    shutil.copytree(one_step, tmp_path / "runs" / "mse")
    grown = tiny(
        tmp_path,
        experiment={"name": "mse"},
        adversarial={"name": "modified"},
        train={"steps": 2},
    )
    with pytest.raises(HarnessError) as err:
        train(grown, registry=registry)
    text = str(err.value)
    assert "not in the checkpoint: discriminator, d_optimizer" in text
    assert "adversarial.name (unset -> modified)" in text
    assert "[generator] init" in text and "--fresh" in text
    assert "numpy=" not in text and len(text) < 1200


def test_best_generators_are_kept_and_named_by_reference(base, store, registry):
    exp, result = base
    assert [int(h["step"]) for h in result.history if "val/lpips" in h] == [1, 2]
    state = json.loads((exp.run_dir / "kept.json").read_text())
    assert set(state) == {"best_psnr_y", "best_lpips"}
    psnr = {int(h["step"]): h["val/psnr_y"] for h in result.history}
    lpips = {int(h["step"]): h["val/lpips"] for h in result.history}
    assert state["best_psnr_y"]["step"] == max(psnr, key=lambda s: (psnr[s], -s))
    assert state["best_lpips"]["step"] == min(lpips, key=lambda s: (lpips[s], s))
    assert state["best_lpips"]["value"] == pytest.approx(min(lpips.values()))
    model = inference.load_generator(f"{exp.run_dir}@best_lpips", registry=registry)
    final = inference.load_generator(exp.run_dir, registry=registry)
    assert model.count_params() == final.count_params()
    with pytest.raises(inference.ModelReferenceError, match="best_lpips, best_psnr_y"):
        inference.load_generator(f"{exp.run_dir}@best_dists", registry=registry)
    run = MlflowClient(store).get_run(result.run_id)
    assert run.data.tags["best_lpips_model_uri"].startswith("models:/")


def test_discriminator_init_skips_a_truncated_latest_checkpoint(tmp_path, registry):
    """A run killed while writing its newest checkpoint (zero-length .data, no
    discriminator.keras): ``[discriminator] init`` loads the older intact checkpoint with a
    warning naming the skipped one, as the generator's init and a resumed run do; naming the
    broken checkpoint itself, or a folder with none readable, is one clear error."""
    gan = {"name": "modified"}
    exp = tiny(tmp_path, experiment={"name": "killed"}, adversarial=gan)
    trainer = Trainer(exp, registry=registry)
    saver = Checkpoints(trainer, exp.run_dir / "checkpoints")
    kept = {}
    for step in (2, 4):
        for w in trainer.discriminator.trainable_weights:
            w.assign(np.random.default_rng(step).normal(0, 1, w.shape).astype(np.float32))
        trainer.step = step
        saver.save()
        kept[step] = _weights(trainer.discriminator)
    latest = exp.run_dir / "checkpoints" / "ckpt-4.data-00000-of-00001"
    latest.write_bytes(b"")

    init = {"init": str(exp.run_dir)}
    fine_tune = tiny(tmp_path, experiment={"name": "ft"}, discriminator=init, adversarial=gan)
    target = Trainer(fine_tune, registry=registry)
    with pytest.warns(HarnessWarning, match="could not read ckpt-4.*loaded the older ckpt-2"):
        warm_start(target)
    for mine, theirs in zip(_weights(target.discriminator), kept[2], strict=True):
        np.testing.assert_array_equal(mine, theirs)

    def build():
        return registry.factory("discriminator", "srgan")(patch=32, filters=8, dense=16)

    for ref, message in (
        (exp.run_dir / "checkpoints" / "ckpt-4", "ckpt-4 cannot be read"),
        (_only_broken(exp.run_dir, tmp_path / "broken"), "no checkpoint in .* can be read"),
    ):
        with pytest.raises(WarmStartError, match=message):
            load_discriminator(str(ref), build, registry)


def _only_broken(run_dir, copy):
    """A copy of ``run_dir`` whose checkpoints are all unreadable."""
    shutil.copytree(run_dir, copy)
    (copy / "checkpoints" / "ckpt-2.data-00000-of-00001").write_bytes(b"")
    return copy
