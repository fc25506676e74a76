"""The trainer: scheduled weights without retracing, pre-training as the adversarial weight's
schedule, EMA, loss scaling, checkpoints (and those written with a ``phase`` number), callbacks,
precision choice and a two-device MirroredStrategy run (in its own process)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import new_store, scratch_store
from mlflow.tracking import MlflowClient

from harness import config, hookimpl
from harness.plugin_api.registry import Registry, build_registry
from harness.training import precision
from harness.training.loop import StopTraining, TrainResult, train
from harness.training.step import Trainer, make_strategy
from harness.training.validation import caption_height, sample_grid, tile_factor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite MLflow store for the module (a copy of an empty one)."""
    return new_store(tmp_path_factory.mktemp("mlflow"))


@functools.cache
def installed() -> Registry:
    """The installed plugins, loaded once for the helpers below (tests take the ``registry``
    fixture)."""
    return build_registry()


def tiny(tmp_path: Path, **tables: dict) -> config.Experiment:
    """A tiny experiment: a 1-block, 8-filter SRResNet on 32 px skimage patches, logged to a
    scratch MLflow store unless ``tracking`` names one."""
    raw: dict = {
        "experiment": {"name": "tiny", "runs_dir": str(tmp_path / "runs")},
        "data": {"patch": 32, "val_limit": 1, "val_max_side": 32},
        "generator": {"name": "srresnet", "blocks": 1, "filters": 8},
        "discriminator": {"name": "srgan", "filters": 8, "dense": 16},
        "losses": {"mse": {}},
        "train": {"steps": 3, "batch_size": 2, "quiet": True, "precision": "float32"},
        "validation": {"every": 0, "samples": 1},
        "tracking": {"log_model": False, "uri": scratch_store()},
    }
    for table, values in tables.items():
        if values is None:
            raw.pop(table, None)
        else:
            raw.setdefault(table, {}).update(values)
    return config.from_dict(raw, registry=installed())


def fixed_batches(batch: int = 2, patch: int = 32, scale: int = 4) -> tf.data.Dataset:
    """Deterministic (lr, hr) batches without reading any image."""
    rng = np.random.default_rng(0)
    hr = rng.uniform(-1, 1, (batch, patch, patch, 3)).astype(np.float32)
    lr = rng.uniform(0, 1, (batch, patch // scale, patch // scale, 3)).astype(np.float32)
    return tf.data.Dataset.from_tensors((lr, hr)).repeat()


def test_weight_change_does_not_retrace(tmp_path, registry):
    weight = {"schedule": "piecewise", "boundaries": [1, 2], "values": [1.0, 5.0, 0.5]}
    exp = tiny(tmp_path, losses={"mse": {"weight": weight}}, adversarial=None)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    seen = []
    for _ in range(3):
        out = trainer.train_step()
        seen.append(out["g_total"] / out["mse"])
    assert seen == pytest.approx([1.0, 5.0, 0.5], rel=1e-5)
    assert trainer._content_step.experimental_get_tracing_count() == 1
    assert float(trainer.terms[0].variable.numpy()) == 0.5


def test_term_weighted_zero_is_skipped(tmp_path, registry):
    weight = {"schedule": "piecewise", "boundaries": [1], "values": [0.0, 2.0]}
    exp = tiny(tmp_path, losses={"mse": {"weight": weight}}, adversarial=None)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    first, second = trainer.train_step(), trainer.train_step()
    assert first["mse"] == 0.0 and first["g_total"] == 0.0  # not computed at weight 0
    assert second["mse"] > 0 and second["g_total"] == pytest.approx(2 * second["mse"])
    assert trainer._content_step.experimental_get_tracing_count() == 1


def test_gan_phase_after_pretraining_and_adversarial_weight_schedule(tmp_path, registry):
    adv_weight = {"schedule": "piecewise", "boundaries": [2], "values": [1e-3, 1e-1]}
    exp = tiny(
        tmp_path,
        adversarial={"name": "modified", "weight": adv_weight},
        train={"steps": 4, "pretrain_steps": 1, "d_steps": 2},
    )
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    d_before = [w.numpy().copy() for w in trainer.discriminator.trainable_variables]
    first = trainer.train_step()
    # pre-training: the adversarial weight is 0, its term and the discriminator update skipped
    assert trainer.weights["adversarial"] == 0.0 and "d" not in first
    assert "adversarial" not in first and first["g_total"] == pytest.approx(first["mse"])
    for before, w in zip(d_before, trainer.discriminator.trainable_variables, strict=True):
        np.testing.assert_array_equal(before, w.numpy())
    outs = [trainer.train_step() for _ in range(3)]
    assert [trainer.adv_term.weight(s) for s in (0, 1, 2, 3)] == [0.0, 1e-3, 1e-1, 1e-1]
    for step, out in zip((1, 2, 3), outs, strict=True):
        w = 1e-3 if step < 2 else 1e-1
        assert out["g_total"] == pytest.approx(out["mse"] + w * out["adversarial"], rel=1e-4)
        assert np.isfinite(out["d"])
    assert trainer._gan_step.experimental_get_tracing_count() == 1
    # d_steps = 2: one extra discriminator-only step per generator step
    assert trainer._d_step.experimental_get_tracing_count() == 1
    assert int(trainer.d_optimizer.iterations.numpy()) == 3 * 2


def test_learning_rate_follows_its_schedule(tmp_path, registry):
    lr = {"schedule": "piecewise", "boundaries": [1], "values": [1e-3, 0.0]}
    exp = tiny(tmp_path, train={"learning_rate": lr}, adversarial=None)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    trainer.train_step()
    after_first = [w.numpy().copy() for w in trainer.generator.trainable_variables]
    trainer.train_step()  # learning rate 0: Adam moves nothing
    assert float(trainer.g_optimizer.learning_rate.numpy()) == 0.0
    for before, w in zip(after_first, trainer.generator.trainable_variables, strict=True):
        np.testing.assert_allclose(before, w.numpy(), atol=0)


def test_ema_generator_is_the_running_average(tmp_path, registry):
    exp = tiny(tmp_path, train={"ema": 0.75}, adversarial=None)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    w0 = trainer.generator.trainable_variables[0].numpy().copy()
    trainer.train_step()
    w1 = trainer.generator.trainable_variables[0].numpy()
    ema = trainer.ema_generator.trainable_variables[0].numpy()
    assert not np.allclose(w0, w1)
    np.testing.assert_allclose(ema, 0.75 * w0 + 0.25 * w1, rtol=1e-5, atol=1e-7)
    assert trainer.final_generator is trainer.ema_generator


def test_float16_policy_uses_loss_scaling_and_float32_outputs(tmp_path, registry):
    exp = tiny(tmp_path, train={"precision": "mixed_float16"}, adversarial={"name": "modified"})
    trainer = Trainer(exp, registry=registry)
    assert trainer.loss_scaling
    assert "LossScaleOptimizer" in type(trainer.g_optimizer).__name__
    assert trainer.generator.layers[1].compute_dtype == "float16"
    trainer.start_data(fixed_batches())
    outs = [trainer.train_step() for _ in range(2)]
    assert all(np.isfinite(v) for out in outs for v in out.values())
    lr = np.zeros((1, 8, 8, 3), np.float32)
    assert trainer.generator(lr).dtype == tf.float32
    import keras

    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building


def test_auto_precision_choice():
    assert precision.auto_policy([], {"avx2", "amx_bf16"}) == "mixed_bfloat16"
    assert precision.auto_policy([], {"avx512_bf16"}) == "mixed_bfloat16"
    assert precision.auto_policy([], {"avx2"}) == "float32"
    assert precision.auto_policy([(7, 0)], set()) == "mixed_float16"
    assert precision.auto_policy([(8, 0), (9, 0)], set()) == "mixed_bfloat16"
    assert precision.resolve("float32") == "float32"
    assert precision.needs_loss_scaling("mixed_float16")
    assert not precision.needs_loss_scaling("mixed_bfloat16")


def test_cpu_flags_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse avx512_bf16 amx_bf16\n")
    assert {"avx512_bf16", "amx_bf16", "fpu"} <= precision.cpu_flags(info)
    assert precision.cpu_flags(tmp_path / "missing") == set()


class _StopAt:
    def __init__(self, step: int):
        self.step = step
        self.calls: list[tuple[int, dict]] = []

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        self.calls.append((step, metrics))
        if step >= self.step:
            raise StopTraining(f"pruned at {step}")


def test_stop_training_saves_checkpoint_kills_run_and_reraises(tmp_path, store, registry):
    exp = tiny(
        tmp_path,
        tracking={"uri": store},
        adversarial={"name": "modified"},
        train={"steps": 6, "pretrain_steps": 1, "checkpoint_every": 100},
        validation={"every": 2},
    )
    stop = _StopAt(4)
    with pytest.raises(StopTraining):
        train(exp, registry=registry, callbacks=[stop], run_name="trial-1", tags={"trial": "1"})
    assert [s for s, _ in stop.calls] == [2, 4]
    assert {"val/psnr_y", "val/ssim_y", "val/psnr_rgb"} <= set(stop.calls[0][1])
    ckpt = tf.train.latest_checkpoint(str(exp.run_dir / "checkpoints"))
    assert ckpt is not None and ckpt.endswith("-4")
    names = {name.split("/")[0] for name, _ in tf.train.list_variables(ckpt)}
    assert {"generator", "discriminator", "g_optimizer", "d_optimizer", "step"} <= names
    assert "phase" not in names  # the step says where pre-training ends
    assert "rng" in names and "ema_generator" not in names
    run_id = (exp.run_dir / "mlflow_run_id").read_text().strip()
    run = MlflowClient(exp.tracking.uri).get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.info.run_name == "trial-1" and run.data.tags["trial"] == "1"


def test_train_returns_result_with_history(tmp_path, store, registry):
    exp = tiny(
        tmp_path,
        adversarial=None,
        train={"steps": 4},
        validation={"every": 2},
        tracking={"uri": store},
    )
    result = train(exp, registry=registry)
    assert isinstance(result, TrainResult)
    assert result.steps == 4
    assert [h["step"] for h in result.history] == [2.0, 4.0]
    assert result.final_metrics == {k: v for k, v in result.history[-1].items() if k != "step"}
    assert result.best_metrics["val/psnr_y"] == max(h["val/psnr_y"] for h in result.history)
    assert result.bicubic_metrics["val/bicubic_psnr_y"] > 10
    assert (exp.run_dir / "generator.keras").is_file()


def test_sample_grid_has_four_captioned_columns():
    hr = np.random.default_rng(0).integers(0, 255, (32, 40, 3), np.uint8)

    def upscale(lr: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)

    grid = sample_grid(upscale, [("a", hr), ("b", hr[:16])], 4)
    k = tile_factor(40)  # a 40-px tile is enlarged (pixel repetition) so captions stay legible
    assert k > 1
    width, band, gap = k * 40, caption_height(k * 40), 4
    assert grid.dtype == np.uint8
    assert grid.shape == (band + k * 32 + gap + band + k * 16, 4 * width + 3 * gap, 3)
    # the HR tile is the image itself, enlarged; every caption band holds dark text
    hr_tile = grid[band : band + k * 32, 3 * (width + gap) :]
    assert np.array_equal(hr_tile, np.repeat(np.repeat(hr, k, axis=0), k, axis=1))
    for col in range(4):
        assert grid[:band, col * (width + gap) : col * (width + gap) + width].min() < 128, col


def test_unknown_strategy_is_a_config_error():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="multi_worker"):
        make_strategy("ring")


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from harness import config
    from harness.plugin_api.registry import build_registry
    from harness.training.loop import train
    raw = json.loads(sys.argv[1])
    registry = build_registry()
    exp = config.from_dict(raw, registry=registry)
    result = train(exp, registry=registry)
    out = {"steps": result.steps, "run_id": result.run_id}
    # what the run trained with, under the same strategy: loss scaling on both optimizers
    import keras
    from harness.errors import ConfigError
    from harness.training.step import Trainer
    trainer = Trainer(exp, registry=registry)
    scaled = keras.mixed_precision.LossScaleOptimizer
    out["loss_scaled"] = [
        isinstance(o, scaled) for o in (trainer.g_optimizer, trainer.d_optimizer)
    ]
    out["ema"] = trainer.ema_generator is not None
    raw["train"]["xla"] = True  # XLA stays one-device, and says so
    try:
        Trainer(config.from_dict(raw, registry=registry), registry=registry)
        out["xla"] = "accepted"
    except ConfigError as exc:
        out["xla"] = str(exc)
    print("RESULT", json.dumps(out))
    """
)

# The combinations upstream Keras reports break with tf.distribute (keras #20585, #18666,
# #21366): mixed_float16 with loss scaling on both optimizers, several discriminator steps per
# generator step, and an EMA generator, all under MirroredStrategy on two logical CPUs.
UPSTREAM = {"precision": "mixed_float16", "d_steps": 2, "ema": 0.9}


@pytest.mark.parametrize(
    "variant",
    [pytest.param({}, marks=pytest.mark.slow), pytest.param(UPSTREAM, marks=pytest.mark.slow)],
    ids=["float32", "float16-dsteps2-ema"],
)
def test_mirrored_strategy_on_two_logical_cpus(tmp_path, store, variant):
    raw = {
        "experiment": {"name": "mirrored", "runs_dir": str(tmp_path / "runs")},
        "data": {"patch": 32, "val_limit": 1, "val_max_side": 32},
        "generator": {"name": "srresnet", "blocks": 1, "filters": 8},
        "discriminator": {"name": "srgan", "filters": 8, "dense": 16},
        "losses": {"mse": {}},
        "adversarial": {"name": "modified"},
        "train": {
            "steps": 3,
            "pretrain_steps": 1,
            "batch_size": 4,
            "strategy": "mirrored",
            "quiet": True,
            "log_every": 1,
            **variant,
        },
        "validation": {"every": 0, "samples": 1},
        "tracking": {"uri": store, "log_model": False},
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED, json.dumps(raw)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    result = json.loads(line.split(" ", 1)[1])
    assert result["steps"] == 3
    client = MlflowClient(raw["tracking"]["uri"])
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["replicas"] == "2"
    history = client.get_metric_history(result["run_id"], "loss/d")
    assert [m.step for m in history] == [2, 3] and all(np.isfinite(m.value) for m in history)
    g_total = client.get_metric_history(result["run_id"], "loss/g_total")
    assert len(g_total) == 3 and all(np.isfinite(m.value) for m in g_total)
    float16 = variant.get("precision") == "mixed_float16"
    assert result["loss_scaled"] == [float16, float16]
    assert result["ema"] == ("ema" in variant)
    assert "needs one device" in result["xla"] and "2" in result["xla"]


class _SignalAt:
    def __init__(self, step: int, signum: int = signal.SIGINT):
        self.step, self.signum = step, signum

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        if step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_checkpoints_after_the_step_and_kills_the_run(tmp_path, store, registry, signum):
    from harness.training.loop import TrainingInterrupted

    name = signal.Signals(signum).name

    exp = tiny(
        tmp_path,
        adversarial=None,
        train={"steps": 6, "checkpoint_every": 100},
        validation={"every": 2},
        tracking={"uri": store},
    )
    previous = signal.getsignal(signum)
    with pytest.raises(TrainingInterrupted, match=f"{name} at step 3: checkpoint saved") as raised:
        train(exp, registry=registry, callbacks=[_SignalAt(2, signum)])
    assert raised.value.signum == signum  # `harness run` exits with 128 + it (130, 143)
    assert signal.getsignal(signum) is previous  # handler restored
    ckpt = tf.train.latest_checkpoint(str(exp.run_dir / "checkpoints"))
    assert ckpt.endswith("-3")
    run_id = (exp.run_dir / "mlflow_run_id").read_text().strip()
    assert MlflowClient(store).get_run(run_id).info.status == "KILLED"


class _Relativistic:
    """A relativistic-style adversarial loss: its generator side needs the real logits."""

    calls: list[bool] = []

    def generator_loss(self, fake_logits, real_logits=None):
        _Relativistic.calls.append(real_logits is not None)
        return tf.reduce_mean(tf.nn.softplus(tf.reduce_mean(real_logits) - fake_logits))

    def discriminator_loss(self, real_logits, fake_logits):
        return tf.reduce_mean(tf.nn.softplus(tf.reduce_mean(fake_logits) - real_logits))


def test_generator_loss_declaring_real_logits_receives_them(tmp_path):
    from harness import hookimpl
    from harness.plugin_api.registry import build_registry

    class Plugin:
        @hookimpl
        def harness_register_adversarial_losses(self):
            return {"rel_probe": _Relativistic}

    registry = build_registry(extra=[(Plugin(), "rel", "tests")])
    exp = tiny(tmp_path, adversarial=None)
    raw = exp.to_toml_dict()
    raw["adversarial"] = {"name": "rel_probe", "weight": 0.5}
    exp = config.from_dict(raw, registry=registry)
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    _Relativistic.calls.clear()
    out = trainer.train_step()
    assert _Relativistic.calls and all(_Relativistic.calls)  # traced with real logits
    assert out["g_total"] == pytest.approx(out["mse"] + 0.5 * out["adversarial"], rel=1e-4)


class _SpyLoss:
    """A content loss that counts how often it is built and computed (traced or run)."""

    built = 0
    calls = 0

    def __init__(self) -> None:
        _SpyLoss.built += 1

    def __call__(self, sr, hr):
        _SpyLoss.calls += 1
        return tf.reduce_mean(tf.abs(tf.cast(sr, tf.float32) - hr))


_EVALUATED: list[int] = []


def _counting(value: float = 1.0):
    """A constant schedule that records every step it is evaluated at."""

    def schedule(step: int) -> float:
        _EVALUATED.append(int(step))
        return float(value)

    return schedule


class _SpyPlugin:
    @staticmethod
    @hookimpl
    def harness_register_content_losses():
        return {"spy_loss": _SpyLoss}

    @staticmethod
    @hookimpl
    def harness_register_schedules():
        return {"counting": _counting}


@pytest.fixture(scope="module")
def spy_registry():
    from harness.plugin_api.registry import build_registry

    return build_registry(extra=[(_SpyPlugin, "spy_test", "tests")])


@pytest.mark.parametrize(
    "weight",
    [
        0,
        0.0,
        {"schedule": "constant", "value": 0},
        {"schedule": "piecewise", "boundaries": [1, 2], "values": [0.0, 0, 0.0]},
    ],
    ids=["int", "float", "constant", "piecewise"],
)
def test_a_term_weighted_zero_however_spelled_is_never_built(tmp_path, spy_registry, weight):
    raw = tiny(tmp_path, adversarial=None).to_toml_dict()
    raw["losses"]["spy"] = {"name": "spy_loss", "weight": weight}
    exp = config.from_dict(raw, registry=spy_registry)
    _SpyLoss.built = _SpyLoss.calls = 0
    trainer = Trainer(exp, registry=spy_registry)
    trainer.start_data(fixed_batches())
    outs = [trainer.train_step() for _ in range(3)]
    assert (_SpyLoss.built, _SpyLoss.calls) == (0, 0)
    assert [t.name for t in trainer.terms] == ["mse"]
    assert all("spy" not in out for out in outs)


def test_set_weight_zero_does_not_compute_the_loss(tmp_path, spy_registry):
    path = tmp_path / "exp.toml"
    path.write_text(tiny(tmp_path, adversarial=None).to_toml(), encoding="utf-8")
    path.write_text(
        path.read_text(encoding="utf-8") + '\n[losses.vgg54]\nname = "spy_loss"\n',
        encoding="utf-8",
    )
    exp = config.load(path, ["losses.vgg54.weight=0"], registry=spy_registry)
    _SpyLoss.built = _SpyLoss.calls = 0
    trainer = Trainer(exp, registry=spy_registry)
    trainer.start_data(fixed_batches())
    trainer.train_step()
    assert (_SpyLoss.built, _SpyLoss.calls) == (0, 0)
    # the same experiment with the weight left at 1 builds and computes it
    exp = config.load(path, registry=spy_registry)
    trainer = Trainer(exp, registry=spy_registry)
    trainer.start_data(fixed_batches())
    trainer.train_step()
    assert _SpyLoss.built == 1 and _SpyLoss.calls >= 1


def test_a_schedule_that_is_never_zero_has_no_cond(tmp_path, registry):
    weight = {"schedule": "piecewise", "boundaries": [1], "values": [1.0, 2.0]}
    sometimes = {"schedule": "piecewise", "boundaries": [1], "values": [0.0, 2.0]}
    exp = tiny(
        tmp_path,
        losses={"mse": {"weight": weight}, "late": {"name": "mse", "weight": sometimes}},
    )
    trainer = Trainer(exp, registry=registry)
    assert [(t.name, t.scheduled) for t in trainer.terms] == [("mse", False), ("late", True)]


class _CountFromStart:
    """Forgets the schedule evaluations of building and configuring the run."""

    def on_train_begin(self, run) -> None:
        _EVALUATED.clear()

    def on_train_end(self, result) -> None:
        self.evaluated = list(_EVALUATED)


def test_weights_and_learning_rates_are_evaluated_once_per_step(tmp_path, store, spy_registry):
    counting = {"schedule": "counting", "value": 1.0}
    raw = tiny(
        tmp_path,
        adversarial=None,
        train={"steps": 3, "log_every": 1},
        validation={"every": 1},
        tracking={"uri": store},
    ).to_toml_dict()
    raw["losses"]["mse"]["weight"] = counting
    raw["train"]["learning_rate"] = {"schedule": "counting", "value": 1e-4}
    exp = config.from_dict(raw, registry=spy_registry)
    probe = _CountFromStart()
    train(exp, registry=spy_registry, callbacks=[probe])
    # one evaluation of the weight and one of the learning rate per step, none elsewhere
    assert sorted(probe.evaluated) == [0, 0, 1, 1, 2, 2]


def _gan_losses(exp: config.Experiment, registry: Registry, steps: int) -> list[dict]:
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    return [trainer.train_step() for _ in range(steps)]


@pytest.mark.slow  # the fast tier's GAN-phase test covers pre-training as the weight's schedule
def test_pretraining_is_the_adversarial_weight_schedule(tmp_path, registry):
    """``pretrain_steps = 2`` and an adversarial weight that is 0 for two steps are one schedule:
    the same losses, bit for bit, and the discriminator idle while the weight is 0."""
    common = {"steps": 4, "d_steps": 2}
    spelled = tiny(
        tmp_path,
        adversarial={"name": "modified", "weight": 1e-2},
        train={**common, "pretrain_steps": 2},
    )
    weight = {"schedule": "piecewise", "boundaries": [2], "values": [0.0, 1e-2]}
    scheduled = tiny(tmp_path, adversarial={"name": "modified", "weight": weight}, train=common)
    milestone = {"schedule": "piecewise", "boundaries": ["pretrain"], "values": [1e-2, 1e-2]}
    both = tiny(
        tmp_path,
        adversarial={"name": "modified", "weight": milestone},
        train={**common, "pretrain_steps": 2},
    )
    reference = _gan_losses(spelled, registry, 4)
    assert ["d" in out for out in reference] == [False, False, True, True]
    assert _gan_losses(scheduled, registry, 4) == reference
    assert _gan_losses(both, registry, 4) == reference
    # the pre-training steps are those of the same run without an adversarial term
    content = tiny(tmp_path, adversarial=None, train={**common, "pretrain_steps": 2})
    assert _gan_losses(content, registry, 2) == reference[:2]


def test_pretraining_through_the_whole_run_builds_no_discriminator(tmp_path, registry):
    exp = tiny(tmp_path, adversarial={"name": "modified"}, train={"steps": 2, "pretrain_steps": 2})
    trainer = Trainer(exp, registry=registry)
    assert trainer.discriminator is None and trainer.d_optimizer is None
    assert "discriminator" not in trainer.objects


def test_trainer_reuses_the_schedules_built_when_the_file_was_read(tmp_path, spy_registry):
    counting = {"schedule": "counting", "value": 1.0}
    raw = tiny(tmp_path, adversarial=None).to_toml_dict()
    raw["losses"]["mse"]["weight"] = counting
    exp = config.from_dict(raw, registry=spy_registry)
    built = exp.schedules["losses.mse.weight"][1]
    trainer = Trainer(exp, registry=spy_registry)
    assert trainer.terms[0].weight is built


@pytest.mark.slow  # an older checkpoint format: the fast tier resumes current ones
def test_a_checkpoint_with_a_phase_number_resumes(tmp_path, registry):
    """Checkpoints written while pre-training was a phase hold a ``phase`` variable; they
    restore and train on as the run would have."""
    from harness.training.checkpoints import Checkpoints

    exp = tiny(tmp_path, adversarial={"name": "modified"}, train={"steps": 4, "pretrain_steps": 1})
    trainer = Trainer(exp, registry=registry)
    trainer.start_data(fixed_batches())
    trainer.train_step(), trainer.train_step()
    trainer.step_var.assign(trainer.step)
    old = tf.train.Checkpoint(**trainer.objects, phase=tf.Variable(1, dtype=tf.int64, name="phase"))
    tf.train.CheckpointManager(old, str(tmp_path / "old"), max_to_keep=2).save(2)
    expected = [trainer.train_step() for _ in range(2)]

    resumed = Trainer(exp, registry=registry)
    checkpoints = Checkpoints(resumed, tmp_path / "old")
    assert checkpoints.restore() and resumed.step == 2
    resumed.start_data(fixed_batches())
    assert [resumed.train_step() for _ in range(2)] == expected
