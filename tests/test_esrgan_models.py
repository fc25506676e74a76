"""The ESRGAN / Real-ESRGAN / pix2pix architectures against their reference implementations:
parameter counts computed from the reference layer lists (BasicSR's ``RRDBNet``,
``VGGStyleDiscriminator``, ``UNetDiscriminatorSN``, ``SRVGGNetCompact``; pix2pix's
``NLayerDiscriminator``), transcribed here as (kernel, c_in, c_out, bias) and counted as PyTorch
counts ``parameters()`` (batch norm: weight and bias; spectral norm's u and v are buffers).
Counts must be equal exactly. Spectral normalisation is checked against NumPy's SVD."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness_models import (
    SpectralConv2D,
    patchgan,
    projected,
    rrdbnet,
    srvgg_compact,
    unet_sn,
    vgg_style,
)

from harness.deploy.export import export_saved_model
from harness.deploy.models import load_upscaler
from harness.deploy.onnx import check_onnx, export_onnx
from harness.deploy.upscaler import Upscaler
from harness.errors import ConfigError


def conv(k: int, cin: int, cout: int, bias: bool = True) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def trainable(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def rrdbnet_reference(nf: int = 64, nb: int = 23, gc: int = 32) -> int:
    rdb = sum(conv(3, nf + i * gc, gc) for i in range(4)) + conv(3, nf + 4 * gc, nf)
    # conv_first, body, conv_body, conv_up1, conv_up2, conv_hr, conv_last
    return conv(3, 3, nf) + nb * 3 * rdb + 4 * conv(3, nf, nf) + conv(3, nf, 3)


@pytest.mark.slow
def test_rrdbnet_at_esrgans_size_has_basicsrs_count() -> None:
    """16,697,987: the figure BasicSR's RRDBNet(3, 3) reports (building it takes ~30 s here)."""
    assert rrdbnet_reference() == 16_697_987
    assert trainable(rrdbnet(scale=4)) == rrdbnet_reference()


def test_rrdbnet_has_basicsrs_layers_and_count() -> None:
    small = rrdbnet(scale=4, blocks=2, filters=16, growth=8)
    assert trainable(small) == rrdbnet_reference(16, 2, 8)
    assert len([layer for layer in small.layers if isinstance(layer, keras.layers.Conv2D)]) == (
        1 + 2 * 3 * 5 + 4 + 1
    )


def test_srvgg_compact_has_real_esrgans_count_and_one_shuffle() -> None:
    def reference(nf: int, n: int, scale: int) -> int:  # convs + per-channel PReLU
        return conv(3, 3, nf) + nf + n * (conv(3, nf, nf) + nf) + conv(3, nf, 3 * scale * scale)

    assert trainable(srvgg_compact()) == reference(64, 16, 4) == 621_424
    assert trainable(srvgg_compact(convs=32)) == reference(64, 32, 4) == 1_213_296
    model = srvgg_compact(scale=3, convs=2, filters=8, activation="lrelu")
    assert trainable(model) == conv(3, 3, 8) + 2 * conv(3, 8, 8) + conv(3, 8, 27)
    # no convolution at HR: an untrained model is the nearest-upscaled input plus its residual
    lr = np.random.default_rng(0).uniform(0, 1, (1, 5, 7, 3)).astype(np.float32)
    assert model(lr).shape == (1, 15, 21, 3)


def vgg_style_reference(nf: int, size: int) -> int:
    stages = 5 if size == 128 else 6
    total = conv(3, 3, nf) + conv(4, nf, nf, False) + 2 * nf
    for i in range(1, stages):
        cin, cout = nf * min(2 ** (i - 1), 8), nf * min(2**i, 8)
        total += conv(3, cin, cout, False) + 2 * cout + conv(4, cout, cout, False) + 2 * cout
    return total + (nf * 8 * 4 * 4 * 100 + 100) + 101


@pytest.mark.parametrize("size", [128, 256])
def test_vgg_style_is_basicsrs_at_128_and_256(size: int) -> None:
    assert trainable(vgg_style(patch=size)) == vgg_style_reference(64, size)


def test_vgg_style_takes_96_px_and_refuses_what_does_not_halve() -> None:
    model = vgg_style(patch=96, filters=8, dense=16)
    assert model.get_layer("flatten").output.shape[-1] == 8 * 8 * 3 * 3  # 96 / 32 = 3
    assert model.output.shape[1:] == (1,)
    with pytest.raises(ConfigError, match="does not halve evenly. Use 96, 128"):
        vgg_style(patch=80)


def test_patchgan_is_pix2pixs_70x70() -> None:
    # conv4/2 3->64 (bias), 64->128, 128->256 (4/2, BN), 256->512 (4/1, BN), 512->1 (4/1)
    bn = 2 * (128 + 256 + 512)
    ref = conv(4, 3, 64) + conv(4, 64, 128, False) + conv(4, 128, 256, False)
    ref += conv(4, 256, 512, False) + conv(4, 512, 1) + bn
    model = patchgan(patch=96)
    assert trainable(model) == ref == 2_765_633
    assert model.output.shape[1:] == (10, 10, 1)  # 96 -> 48 -> 24 -> 12 -> 11 -> 10
    # receptive field of one logit: 70 px (pix2pix)
    rf = 1
    for kernel, stride in reversed([(4, 2), (4, 2), (4, 2), (4, 1), (4, 1)]):
        rf = rf * stride + (kernel - stride)
    assert rf == 70
    with pytest.raises(ConfigError, match="leaves no logit"):
        patchgan(patch=16, layers=3)


def test_unet_sn_is_real_esrgans_with_per_pixel_logits() -> None:
    nf = 64
    ref = conv(3, 3, nf) + conv(4, nf, 2 * nf, False) + conv(4, 2 * nf, 4 * nf, False)
    ref += conv(4, 4 * nf, 8 * nf, False) + conv(3, 8 * nf, 4 * nf, False)
    ref += conv(3, 4 * nf, 2 * nf, False) + conv(3, 2 * nf, nf, False)
    ref += 2 * conv(3, nf, nf, False) + conv(3, nf, 1)
    model = unet_sn(patch=64)
    assert trainable(model) == ref == 4_376_897
    assert model.output.shape[1:] == (64, 64, 1)
    assert sum(isinstance(layer, SpectralConv2D) for layer in model.layers) == 8
    with pytest.raises(ConfigError, match="multiple of 8"):
        unet_sn(patch=36)


def test_spectral_conv_divides_by_the_largest_singular_value() -> None:
    """After 300 power iterations sigma matches NumPy's SVD within rel 1e-4; at inference the
    stored u, v are used (no update); the gradient flows through sigma (it differs from the
    gradient of a plain convolution with the same normalised kernel)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 6, 5)).astype(np.float32)
    layer = SpectralConv2D(7, 3, padding="same", use_bias=False, power_iterations=300)
    layer(x, training=True)
    matrix = layer.kernel.numpy().reshape(-1, 7)
    sigma = np.linalg.svd(matrix, compute_uv=False)[0]
    normalised = layer.normalised_kernel(False).numpy()
    assert np.allclose(normalised, layer.kernel.numpy() / sigma, rtol=1e-4, atol=1e-7)
    u = layer.u.numpy().copy()
    layer(x, training=False)
    assert np.array_equal(u, layer.u.numpy())
    plain = keras.layers.Conv2D(7, 3, padding="same", use_bias=False)
    plain.build(x.shape)
    plain.kernel.assign(normalised)
    with tf.GradientTape(persistent=True) as tape:
        a = tf.reduce_sum(layer(x) ** 2)
        b = tf.reduce_sum(plain(x) ** 2)
    ga = tape.gradient(a, layer.kernel).numpy() * sigma
    gb = tape.gradient(b, plain.kernel).numpy()
    assert float(a) == pytest.approx(float(b), rel=1e-4)
    assert not np.allclose(ga, gb, rtol=1e-3)


def test_projected_trains_only_its_heads() -> None:
    model = projected(patch=32, weights="none", width=8, layers=("block1_conv2", "block3_conv3"))
    features = model.get_layer("vgg16_features")
    assert features.weights == []  # the shared frozen trunk is constants, not weights
    assert all("vgg16_features" not in w.path for w in model.weights)
    # heads: project 1x1 (64->8, 256->8), 4x4/2 downs while the map is over 8 px, 1x1 logits
    assert model.output.shape[1:] == (8 * 8 + 8 * 8,)
    with pytest.raises(ConfigError, match="known: block1_conv1"):
        projected(patch=32, weights="none", layers=("block5_conv4",))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params",
    [("rrdbnet", {"blocks": 1, "filters": 8, "growth": 4}), ("srvgg_compact", {"convs": 2})],
)
def test_new_generators_export_to_saved_model_and_onnx(name, params, registry, tmp_path) -> None:
    """SavedModel (loaded back as an upscaler) and ONNX (run by ONNX Runtime) both match the
    Keras upscaler within 1e-4 on [0, 1] images, as the other generators' exports do."""
    keras.utils.set_random_seed(3)
    generator = registry.factory("generator", name)(scale=4, **params)
    lr = np.random.default_rng(0).uniform(0, 1, (1, 12, 10, 3)).astype(np.float32)
    want = Upscaler.from_generator(generator)(lr)
    saved = export_saved_model(generator, tmp_path / "saved" / "1")
    np.testing.assert_allclose(load_upscaler(saved, registry=registry)(lr), want, atol=1e-4)
    assert check_onnx(export_onnx(generator, tmp_path / "g.onnx"), generator, lr) < 1e-4
