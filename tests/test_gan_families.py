"""The GAN families of ESRGAN, Real-ESRGAN, pix2pix and Projected GAN train in the real step:
one GAN step under ``mixed_bfloat16`` per discriminator (tiny shapes), the same under a
two-replica strategy on CPU (slow tier), and the shipped experiments resolve and run a few
steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from harness import config
from harness.cli import cli
from harness.plugin_api.losses import wants_real_logits
from harness.training import precision
from harness.training.step import Trainer

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"

TINY_GENERATORS = {
    "rrdbnet": {"blocks": 1, "filters": 8, "growth": 4},
    "srvgg_compact": {"convs": 2, "filters": 8},
    "msrresnet": {"blocks": 1, "filters": 8},
}
# one family per discriminator, each with another generator and adversarial loss, so the four
# steps cover every new plugin; R1 runs with the logit map (unet_sn) and the image logit
FAMILIES = {
    "vgg_style": (
        "rrdbnet",
        {"filters": 8, "dense": 16},
        {"name": "relativistic", "r1_gamma": 1.0},
    ),
    "patchgan": ("srvgg_compact", {"filters": 8}, {"name": "vanilla", "label_smoothing": 0.1}),
    "unet_sn": ("msrresnet", {"filters": 8}, {"name": "hinge", "r1_gamma": 1.0}),
    "projected": (
        "msrresnet",
        {"weights": "none", "width": 8, "layers": ["block1_conv2", "block2_conv2"]},
        {"name": "vanilla"},
    ),
}


def family(name: str, precision: str = "mixed_bfloat16", batch: int = 2) -> dict:
    generator, d_params, adversarial = FAMILIES[name]
    return {
        "experiment": {"name": f"family_{name}"},
        "data": {"patch": 32},
        "generator": {"name": generator, **TINY_GENERATORS[generator]},
        "discriminator": {"name": name, **d_params},
        "losses": {"mse": {}},
        "adversarial": {**adversarial, "weight": 0.1},
        "train": {"steps": 2, "batch_size": batch, "precision": precision, "quiet": True},
    }


def fixed_batches(batch: int = 2, patch: int = 32, scale: int = 4) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    hr = rng.uniform(-1, 1, (batch, patch, patch, 3)).astype(np.float32)
    lr = rng.uniform(0, 1, (batch, patch // scale, patch // scale, 3)).astype(np.float32)
    return tf.data.Dataset.from_tensors((lr, hr)).repeat()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_trains_eagerly_under_mixed_bfloat16(name, registry) -> None:
    """Fast: each new discriminator built under ``mixed_bfloat16`` gives float32 logits, and
    its family's discriminator loss (with R1 where set) and generator loss have finite
    gradients for every discriminator kernel and for the generator's output (eager, tiny)."""
    rng = np.random.default_rng(0)
    hr = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    sr = tf.Variable(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    for _, d_params, adversarial in [FAMILIES[name]]:
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in d_params.items()}
        with precision.policy_scope("mixed_bfloat16"):
            d = registry.factory("discriminator", name)(patch=32, **params)
        adv_params = {k: v for k, v in adversarial.items() if k != "name"}
        adv = registry.factory("adversarial_loss", adversarial["name"])(**adv_params)
        with tf.GradientTape(persistent=True) as tape:
            real, fake = d(hr, training=True), d(sr, training=True)
            d_loss = adv.discriminator_loss(real, fake) + adv.penalty(d, hr, sr)
            if wants_real_logits(adv):
                g_loss = adv.generator_loss(fake, real_logits=tf.stop_gradient(real))
            else:
                g_loss = adv.generator_loss(fake)
        assert real.dtype == tf.float32 and d_loss.dtype == tf.float32, name
        kernels = [w for w in d.trainable_weights if w.path.endswith("kernel")]
        for grad, w in zip(tape.gradient(d_loss, kernels), kernels, strict=True):
            assert grad is not None and bool(tf.reduce_all(tf.math.is_finite(grad))), (name, w.path)
        g_grad = tape.gradient(g_loss, sr)
        assert g_grad is not None and bool(tf.reduce_all(tf.math.is_finite(g_grad))), name


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_one_gan_step_under_mixed_bfloat16(name, registry) -> None:
    """The trainer's compiled step (12-50 s to trace on a loaded 2-core CPU, hence the slow
    tier) updates every discriminator kernel (a bias may rightly stay: the hinge loss' bias
    gradient is 0 while every margin is active; for ``projected`` only its heads: its VGG16 is
    the shared frozen trunk, no weights of the model) and gives finite losses."""
    exp = config.from_dict(family(name), registry=registry)
    trainer = Trainer(exp, registry=registry)
    assert trainer.policy == "mixed_bfloat16"
    trainer.start_data(fixed_batches())
    d = trainer.discriminator
    kernels = [w for w in d.trainable_weights if w.path.endswith("kernel")]
    before = [w.numpy().copy() for w in kernels]
    out = trainer.train_step()
    assert set(out) >= {"mse", "adversarial", "d", "g_total"}
    assert all(np.isfinite(v) for v in out.values()), out
    same = [w.path for b, w in zip(before, kernels, strict=True) if np.array_equal(b, w.numpy())]
    assert not same, same
    if name == "projected":  # its VGG16 is the shared trunk's constants, no weight to train
        assert d.get_layer("vgg16_features").weights == []


TWO_REPLICAS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from harness import config
    from harness.plugin_api.registry import build_registry
    from harness.training.step import Trainer, make_strategy
    registry = build_registry()
    strategy = make_strategy("mirrored")  # one for all: a second one reuses collective keys
    out = {}
    for name, raw in json.loads(sys.argv[1]).items():
        exp = config.from_dict(raw, registry=registry)
        trainer = Trainer(exp, registry=registry, strategy=strategy)
        rng = np.random.default_rng(0)
        hr = rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
        lr = rng.uniform(0, 1, (4, 8, 8, 3)).astype(np.float32)
        trainer.start_data(tf.data.Dataset.from_tensors((lr, hr)).repeat())
        out[name] = {"replicas": trainer.replicas, "losses": trainer.train_step()}
    # R1 on a batch-normalised discriminator is refused on several replicas, with the fix
    raw["discriminator"] = {"name": "srgan", "filters": 8, "dense": 16}
    raw["adversarial"] = {"name": "vanilla", "r1_gamma": 1.0}
    exp = config.from_dict(raw, registry=registry)
    trainer = Trainer(exp, registry=registry, strategy=strategy)
    trainer.start_data(tf.data.Dataset.from_tensors((lr, hr)).repeat())
    try:
        trainer.train_step()
    except Exception as exc:
        out["bn_r1"] = str(exc)
    print("RESULT", json.dumps(out))
    """
)


@pytest.mark.slow
def test_every_family_steps_under_two_replicas(tmp_path) -> None:
    """MirroredStrategy on two logical CPUs (as tests/test_train.py runs it), in its own
    process: a GAN step per family (spectral norm's u and v written by each replica, R1's
    second-order gradient, the frozen VGG16 of ``projected``) gives finite losses."""
    raws = {}
    for name in FAMILIES:
        raw = family(name, precision="float32", batch=4)
        raw["train"]["strategy"] = "mirrored"
        if name == "vgg_style":  # batch norm: R1 is refused on several replicas (below)
            raw["adversarial"].pop("r1_gamma")
        raws[name] = raw
    proc = subprocess.run(
        [sys.executable, "-c", TWO_REPLICAS, json.dumps(raws)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    result = json.loads(line.split(" ", 1)[1])
    assert "cannot run on 2 replicas" in result.pop("bn_r1")
    assert set(result) == set(FAMILIES)
    for name, got in result.items():
        assert got["replicas"] == 2, name
        assert all(np.isfinite(v) for v in got["losses"].values()), (name, got)


# --------------------------------------------------------------------------- experiments

SHIPPED = {
    "esrgan.toml": ("rrdbnet", "vgg_style", "relativistic"),
    "realesrgan.toml": ("rrdbnet", "unet_sn", "vanilla"),
    "esrgan_projected.toml": ("rrdbnet", "projected", "hinge"),
}
TINY_SETS = {
    "data.train": '["skimage"]',
    "data.val": "[]",
    "data.patch": "32",
    "generator.blocks": "1",
    "generator.filters": "8",
    "generator.growth": "4",
    "train.steps": "2",
    "train.pretrain_steps": "1",
    "train.batch_size": "2",
    "train.quiet": "true",
    "train.checkpoint_every": "2",
    "validation.every": "0",
    "tracking.log_model": "false",
    "losses.perceptual.weights": '"none"',
}
TINY_D = {
    "vgg_style": {"filters": "8", "dense": "16"},
    "unet_sn": {"filters": "8"},
    "projected": {"weights": '"none"', "width": "8", "layers": '["block1_conv2"]'},
}


def _needs_content_losses(registry) -> None:
    missing = {"l1", "perceptual"} - set(registry.names("content_loss"))
    if missing:
        pytest.skip(f"the ESRGAN experiments need the content losses {sorted(missing)}")


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_experiment_resolves_with_show(name, registry) -> None:
    _needs_content_losses(registry)
    result = CliRunner().invoke(cli, ["show", str(EXPERIMENTS / name)])
    assert result.exit_code == 0, result.output
    exp = config.load(EXPERIMENTS / name, registry=registry)
    generator, discriminator, adversarial = SHIPPED[name]
    assert (exp.generator.name, exp.discriminator.name) == (generator, discriminator)
    assert exp.adversarial is not None and exp.adversarial.name == adversarial


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_experiment_runs_a_few_steps(name, tmp_path, monkeypatch, registry) -> None:
    """``harness run`` with tiny overrides: one pre-training step, one GAN step."""
    _needs_content_losses(registry)
    monkeypatch.chdir(tmp_path)
    sets = {
        **TINY_SETS,
        "experiment.runs_dir": f'"{tmp_path / "runs"}"',
        "tracking.uri": f'"sqlite:///{tmp_path / "mlflow.db"}"',
        **{f"discriminator.{k}": v for k, v in TINY_D[SHIPPED[name][1]].items()},
    }
    args = ["run", str(EXPERIMENTS / name)]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / config.load(EXPERIMENTS / name, registry=registry).experiment.name
    assert (run / "generator.keras").is_file() and (run / "discriminator.keras").is_file()


def test_harness_plugins_lists_the_new_families() -> None:
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    rows = {tuple(line.split()[:3]) for line in result.output.splitlines() if line.strip()}
    expected = [
        ("adversarial_loss", ("vanilla", "hinge", "relativistic")),
        ("discriminator", ("vgg_style", "patchgan", "unet_sn", "projected")),
        ("generator", ("rrdbnet", "srvgg_compact")),
    ]
    for kind, names in expected:
        for name in names:
            assert (name, kind, "srgan-harness") in rows, (name, kind)
