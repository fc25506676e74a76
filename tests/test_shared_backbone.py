"""The projected discriminator and the VGG content losses on the one shared frozen trunk
(:mod:`harness.data.backbones`): one VGG16 per weights, one forward pass per image per compiled
step for the discriminator and the losses together, the same features as Keras' VGG16 layers,
R1 through the shared trunk, a saved discriminator that loads back, and ``vgg54`` on the shared
trunk with the values of its former own Keras VGG."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness_adversarial import Hinge
from harness_losses import perceptual, vgg54
from harness_models import projected
from test_gan_families import fixed_batches

from harness import config
from harness.data import backbones
from harness.errors import HarnessError
from harness.training import precision
from harness.training.step import Trainer

RNG = np.random.default_rng(26)
HR = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
SR = np.clip(HR + RNG.normal(0, 0.3, HR.shape), -1, 1).astype(np.float32)
HEADS = ("block1_conv2", "block3_conv3")


def _discriminator() -> keras.Model:
    return projected(patch=32, weights="none", width=8, layers=HEADS)


def _passes(trunk: backbones.VGG, share: bool, fn, *args) -> tuple[float, int]:
    """``fn(*args)`` compiled, and how many trunk passes its trace started."""
    trunk.share = share
    before = trunk.passes
    try:
        out = tf.function(fn)(*args)
    finally:
        trunk.share = True
    return float(out), trunk.passes - before


def test_projected_and_perceptual_run_one_vgg16_once_per_image() -> None:
    """One VGG16 object for both; in one compiled function, perceptual(sr, hr) + D(sr) + D(hr)
    starts 2 trunk passes (4 without sharing) and gives the same value (rel. 1e-6)."""
    d = _discriminator()
    loss = perceptual({"relu2_2": 1.0, "conv4_3": 0.5}, network="vgg16", weights="none")
    trunk = d.get_layer("vgg16_features").trunk
    assert trunk is loss.vgg is backbones.vgg("vgg16", "none")
    sr, hr = tf.constant(SR), tf.constant(HR)

    def both(a, b):
        return loss(a, b) + tf.reduce_mean(d(a)) - tf.reduce_mean(d(b))

    shared, passes = _passes(trunk, True, both, sr, hr)
    unshared, passes_unshared = _passes(trunk, False, both, sr, hr)
    assert (passes, passes_unshared) == (2, 4)
    assert shared == pytest.approx(unshared, rel=1e-6)


def test_projected_features_are_keras_vgg16_on_torch_input() -> None:
    """The discriminator's features at each head's layer equal Keras' VGG16 layers (after the
    ReLU) holding the trunk's weights, on ImageNet-normalised [0, 1] input (the former frozen
    Keras model of ``projected``); relative tolerance 1e-5 of the largest activation."""
    d = _discriminator()
    features = d.get_layer("vgg16_features")
    assert features.weights == [] and features.taps == ["relu1_2", "relu3_3"]
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer, (kernel, bias) in zip(convs, features.trunk.convs, strict=True):
        layer.set_weights([kernel, bias])
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = (((SR + 1) / 2 - mean) / std).astype(np.float32)
    for name, got in zip(HEADS, features(tf.constant(SR)), strict=True):
        want = np.asarray(keras.Model(model.input, model.get_layer(name).output)(x))
        assert got.shape == want.shape
        assert np.abs(np.asarray(got) - want).max() <= 1e-5 * np.abs(want).max()


def test_projected_saves_and_loads_without_its_trunk(tmp_path) -> None:
    """``discriminator.keras`` holds the heads only (the trunk is rebuilt from its name) and
    gives the same logits when loaded."""
    d = _discriminator()
    want = np.asarray(d(HR, training=False))
    d.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    assert len(loaded.weights) == len(d.weights)
    np.testing.assert_allclose(np.asarray(loaded(HR, training=False)), want, rtol=1e-6)


def test_r1_through_the_shared_trunk_is_its_own_pass() -> None:
    """R1 after D(hr) in one compiled function: the penalty's tape records a pass of its own
    (a cached one would give no gradient); same value as without sharing (rel. 1e-5)."""
    d = _discriminator()
    trunk = d.get_layer("vgg16_features").trunk
    state = d.get_weights()
    adv = Hinge(r1_gamma=10.0)

    def d_loss(hr, sr):
        return adv.discriminator_loss(d(hr, training=True), d(sr, training=True)) + adv.penalty(
            d, hr, sr
        )

    shared, passes = _passes(trunk, True, d_loss, tf.constant(HR), tf.constant(SR))
    d.set_weights(state)  # spectral norm's power iteration moved u: start again from the same
    unshared, _ = _passes(trunk, False, d_loss, tf.constant(HR), tf.constant(SR))
    assert passes == 3 and np.isfinite(shared)
    assert shared == pytest.approx(unshared, rel=1e-5)


def _real(make):
    try:
        return make()
    except HarnessError as exc:
        pytest.skip(f"torchvision VGG16 weights neither cached nor downloadable: {exc}")


def test_vgg54_keeps_its_values_on_the_shared_trunk() -> None:
    """``vgg54`` on torchvision's VGG16 (offline weights) equals, on a fixed batch, the values
    its former own Keras VGG gave (computed with that version, float32 and mixed_bfloat16);
    relative tolerance 1e-5 (bf16: 1e-3). It runs on the same trunk as ``perceptual``."""
    want = {"block5_conv3": 0.0005669237580150366, "block2_conv2": 0.04119269549846649}
    for layer, value in want.items():
        loss = _real(lambda layer=layer: vgg54(weights="torchvision-vgg16", layer=layer))
        assert float(loss(SR, HR)) == pytest.approx(value, rel=1e-5), layer
    assert loss.vgg is perceptual({"relu5_3": 1.0}, weights="torchvision-vgg16").vgg
    with precision.policy_scope("mixed_bfloat16"):
        bf16 = vgg54(weights="torchvision-vgg16", layer="block5_conv3")
    assert float(bf16(SR, HR)) == pytest.approx(0.0005689290119335055, rel=1e-3)


@pytest.mark.slow
def test_the_gan_step_runs_the_shared_vgg16_once_per_image(registry) -> None:
    """The trainer's compiled GAN step with ``perceptual`` and ``projected`` on the random
    VGG16: the discriminator update runs the trunk on HR and on the detached SR, the generator
    update reuses HR's pass and shares SR's between the loss and the discriminator (3 passes per
    trace; 5 without sharing); the losses of the step are the same (rel. 1e-5)."""
    raw = {
        "experiment": {"name": "shared_vgg"},
        "data": {"patch": 32},
        "generator": {"name": "msrresnet", "blocks": 1, "filters": 8},
        "discriminator": {"name": "projected", "weights": "none", "width": 8, "layers": HEADS},
        "losses": {
            "perceptual": {"weights": "none", "network": "vgg16", "layer_weights": {"conv5_3": 1}}
        },
        "adversarial": {"name": "hinge", "weight": 0.1},
        "train": {"steps": 2, "batch_size": 2, "precision": "float32", "quiet": True},
    }
    trunk = backbones.vgg("vgg16", "none")
    out = {}
    for share in (True, False):
        exp = config.from_dict(raw, registry=registry)
        trainer = Trainer(exp, registry=registry)
        assert trainer.terms[0].loss.vgg is trunk
        assert trainer.discriminator.get_layer("vgg16_features").trunk is trunk
        trainer.start_data(fixed_batches())
        trunk.share = share
        before = trunk.passes
        try:
            out[share] = (trainer.train_step(), trunk.passes - before)
        finally:
            trunk.share = True
    assert (out[True][1], out[False][1]) == (3, 5)
    for key, value in out[True][0].items():
        assert value == pytest.approx(out[False][0][key], rel=1e-5), key
