"""Content losses: MSE, the VGG feature loss (weights sources, preprocessing, layers) and the
seed's Per-Pix as two scheduled [losses.*] tables."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness_losses import VGGFeatureLoss, mse, vgg54
from harness_losses import vgg as vgg_module

from harness import config
from harness.config import schedules
from harness.data import backbones
from harness.data import weights as weight_files
from harness.errors import ConfigError, HarnessError

RNG = np.random.default_rng(0)
SR = RNG.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
HR = RNG.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)


def test_mse_is_the_mean_squared_error_in_float32() -> None:
    loss = mse()
    assert float(loss(SR, HR)) == pytest.approx(float(((SR - HR) ** 2).mean()), rel=1e-6)
    value = loss(tf.cast(SR, tf.bfloat16), tf.cast(HR, tf.bfloat16))
    assert value.dtype == tf.float32 and value.shape == ()


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory) -> tuple[str, keras.Model]:
    """A local VGG19 (no top) weights file with seeded random weights, and the model."""
    keras.utils.set_random_seed(3)
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.weights.h5"
    model.save_weights(path)
    return str(path), model


def test_vgg_loss_from_a_local_file_matches_a_hand_computation(vgg19_file) -> None:
    path, full = vgg19_file
    loss = vgg54(weights=path, layer="block2_conv2")
    assert loss.name == "vgg19/block2_conv2"

    # Keras' "caffe" input: BGR, 0..255, ImageNet mean subtracted; features scaled by 1/12.75
    def caffe(x):
        return (x[..., ::-1] + 1.0) * 127.5 - np.array([103.939, 116.779, 123.68], np.float32)

    features = keras.Model(full.input, full.get_layer("block2_conv2").output)
    fs = np.asarray(features(caffe(SR))) / 12.75
    fh = np.asarray(features(caffe(HR))) / 12.75
    expected = float(((fs - fh) ** 2).mean())
    assert float(loss(SR, HR)) == pytest.approx(expected, rel=1e-4)
    assert float(loss(HR, HR)) == 0.0


def test_vgg_loss_is_frozen_differentiable_and_traceable() -> None:
    loss = vgg54(weights="none", layer="block2_conv2")
    trunk = loss.vgg
    assert isinstance(trunk, backbones.VGG)  # constants: no variables to train
    sr = tf.Variable(SR)
    hr = tf.Variable(HR)
    with tf.GradientTape() as tape:
        value = loss(sr, hr)
    g_sr, g_hr = tape.gradient(value, [sr, hr])
    assert g_sr is not None and bool(tf.reduce_all(tf.math.is_finite(g_sr)))
    assert g_hr is None  # the target is a constant
    assert float(tf.function(loss)(SR, HR)) == pytest.approx(float(value), rel=1e-5)
    bf16 = loss(tf.cast(SR, tf.bfloat16), tf.cast(HR, tf.bfloat16))
    assert bf16.dtype == tf.float32
    # one network per weights, shared by every loss on them
    assert (
        vgg54(weights="none", layer="block1_conv1").vgg is trunk is backbones.vgg("vgg19", "none")
    )


def test_vgg_layer_is_configurable_and_checked() -> None:
    deep = vgg54(weights="none")
    assert deep.layer == "block5_conv4" and deep.features(SR).shape[-1] == 512
    with pytest.raises(ConfigError, match="block2_conv2"):
        vgg54(weights="none", layer="block6_conv1")


def test_weights_must_be_a_known_source_or_a_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="neither one of imagenet"):
        vgg54(weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ConfigError, match="VGG16 weights"):
        vgg54(weights="torchvision-vgg16", network="vgg19")


def test_random_weights_warn_outside_tests(monkeypatch) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setattr(vgg_module, "_warned", set())
    with pytest.warns(UserWarning, match="randomly initialised"):
        vgg54(weights="none", layer="block1_conv1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vgg54(weights="none", layer="block1_conv1")  # once per process


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_imagenet_download_failure_says_where_to_put_the_file(monkeypatch) -> None:
    name = "harness_test_absent_vgg19_notop.h5"  # never a real cached file
    monkeypatch.setitem(vgg_module.IMAGENET_FILES, "vgg19", (name, "0" * 32))
    monkeypatch.setattr(
        vgg_module, "IMAGENET_ORIGIN", f"http://127.0.0.1:{_closed_port()}/{{net}}/{{file}}"
    )
    with pytest.raises(HarnessError) as info:
        vgg54(weights="imagenet")
    message = str(info.value)
    assert str(vgg_module.keras_cache_path("vgg19")) in message
    assert message.count(name) >= 2 and "torchvision-vgg16" in message
    assert not vgg_module.keras_cache_path("vgg19").exists()


def test_torchvision_weights_resolve_to_vgg16_conv3_with_torch_normalisation(monkeypatch) -> None:
    """torchvision's VGG16 (the offline weights): conv4 layers become conv3 with a warning,
    the input is ImageNet-normalised, and the value equals Keras' VGG16 holding the same
    weights (the converted Keras file); relative tolerance 1e-4."""
    monkeypatch.setattr(vgg_module, "_warned", set())
    try:
        with pytest.warns(UserWarning, match="VGG16 has no block5_conv4.*block5_conv3"):
            loss = vgg54(weights="torchvision-vgg16")
        path = weight_files.torchvision_vgg16_weights()
    except HarnessError as exc:
        pytest.skip(f"torchvision VGG16 weights neither cached nor downloadable: {exc}")
    assert loss.network == "vgg16" and loss.layer == "block5_conv3"
    assert loss.name == "vgg16/block5_conv3"
    x = np.array([[[[-1.0, 0.0, 1.0]]]], np.float32)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    assert np.allclose(np.asarray(loss.preprocess(x)), (np.array([0, 0.5, 1]) - mean) / std)
    shallow = VGGFeatureLoss("block1_conv2", "torchvision-vgg16")
    full = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    full.load_weights(path)
    features = keras.Model(full.input, full.get_layer("block1_conv2").output)

    def torch_in(x):
        return ((x + 1) / 2 - mean.astype(np.float32)) / std.astype(np.float32)

    expected = (
        (np.asarray(features(torch_in(SR))) - np.asarray(features(torch_in(HR)))) / 12.75
    ) ** 2
    assert float(shallow(SR, HR)) == pytest.approx(float(expected.mean()), rel=1e-4)


PERPIX = Path(__file__).resolve().parents[1] / "experiments" / "perpix.toml"


def test_perpix_weights_follow_the_seed_schedule(registry) -> None:
    """The seed's Per-Pix as shipped: [losses.mse] (w1) and [losses.vgg54] (w2) tables whose
    scheduled weights change at the milestones of [train]."""
    exp = config.load(
        PERPIX, ["losses.vgg54.weights=none", "losses.vgg54.layer=block1_conv2"], registry=registry
    )
    terms = {t.key: t for t in exp.losses}
    assert list(terms) == ["mse", "vgg54"]
    w1, w2 = (schedules.build(terms[k].weight, registry) for k in ("mse", "vgg54"))
    assert (w1(0), w2(0)) == (10.0, 1.0)
    assert (w1(14999), w2(14999)) == (10.0, 1.0)
    assert (w1(15000), w2(15000)) == (10.0, 10.0)
    assert (w1(20000), w2(20000)) == (1.0, 10.0)
    loss_mse, loss_vgg = (
        registry.factory("content_loss", terms[k].plugin)(**terms[k].params)
        for k in ("mse", "vgg54")
    )
    assert float(loss_mse(SR, HR)) == pytest.approx(float(((SR - HR) ** 2).mean()))
    assert float(loss_vgg(SR, HR)) > 0.0


def test_perpix_weights_come_from_config(registry) -> None:
    exp = config.from_dict(
        {
            "losses": {
                "mse": {"weight": 2.0},
                "vgg54": {
                    "weight": {"schedule": "linear", "start": 0.0, "end": 4.0, "steps": 100},
                    "weights": "none",
                    "layer": "block1_conv2",
                },
            }
        },
        registry=registry,
    )
    w1, w2 = (schedules.build(c.weight, registry) for c in exp.losses)
    assert w1(0) == 2.0 and w1(50000) == 2.0
    assert (w2(0), w2(50), w2(100)) == (0.0, 2.0, 4.0)
    with pytest.raises(ConfigError, match="w3"):
        config.from_dict({"losses": {"vgg54": {"w3": 1.0}}}, registry=registry)


def test_perpix_as_plain_config_of_two_losses(registry) -> None:
    """The docs' two-table form of Per-Pix resolves to the same weights."""
    piecewise = {"schedule": "piecewise", "boundaries": [15000, 20000]}
    exp = config.from_dict(
        {
            "losses": {
                "mse": {"weight": {**piecewise, "values": [10, 10, 1]}},
                "vgg54": {"weight": {**piecewise, "values": [1, 10, 10]}, "weights": "none"},
            }
        },
        registry=registry,
    )
    weights = {c.key: schedules.build(c.weight, registry) for c in exp.losses}
    assert [weights["mse"](s) for s in (0, 15000, 20000)] == [10.0, 10.0, 1.0]
    assert [weights["vgg54"](s) for s in (0, 15000, 20000)] == [1.0, 10.0, 10.0]
