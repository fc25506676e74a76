"""First-party generators and discriminator: shapes, ranges, dtypes, structure, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from harness_models import PixelShuffle, edsr, msrresnet, srgan, srresnet

from harness.errors import ConfigError


def _lr(h: int, w: int, n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (n, h, w, 3)).astype(np.float32)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_upscales_any_size_into_signed_range(scale: int) -> None:
    model = srresnet(scale=scale, blocks=1, filters=8)
    for h, w in [(6, 6), (7, 11)]:
        sr = np.asarray(model(_lr(h, w)))
        assert sr.shape == (2, h * scale, w * scale, 3)
        assert sr.dtype == np.float32
        assert sr.min() >= -1.0 and sr.max() <= 1.0


def test_srresnet_has_the_papers_parameter_count() -> None:
    """16 blocks, 64 filters, x4: the count is worked out layer by layer from the paper."""
    f = 64
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731
    bn = 4 * f  # gamma, beta, moving mean, moving variance
    head = conv(9, 3, f) + f  # conv + PReLU (one alpha per channel)
    block = 2 * conv(3, f, f) + 2 * bn + f
    body = conv(3, f, f) + bn
    up = 2 * (conv(3, f, 4 * f) + f)
    tail = conv(9, f, 3)
    expected = head + 16 * block + body + up + tail
    assert srresnet(scale=4).count_params() == expected


def test_srresnet_structure_and_batch_norm_switch() -> None:
    with_bn = srresnet(scale=4, blocks=2, filters=8)
    without = srresnet(scale=4, blocks=2, filters=8, batch_norm=False)
    bn = [layer for layer in with_bn.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bn) == 2 * 2 + 1
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in without.layers)
    prelus = [layer for layer in with_bn.layers if isinstance(layer, keras.layers.PReLU)]
    assert all(tuple(p.alpha.shape) == (1, 1, 8) for p in prelus)  # shared over H and W
    shuffles = [layer for layer in with_bn.layers if isinstance(layer, PixelShuffle)]
    assert [s.factor for s in shuffles] == [2, 2]
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in with_bn.layers)
    assert with_bn.layers[-1].dtype_policy.name == "float32"
    assert with_bn.layers[-1].activation is keras.activations.tanh


def test_generators_output_float32_under_mixed_precision() -> None:
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        for factory in (srresnet, edsr, msrresnet):
            model = factory(scale=2, blocks=1, filters=8)
            assert model(_lr(5, 5)).dtype == "float32"
        assert srgan(patch=16, filters=4, dense=8)(np.zeros((1, 16, 16, 3))).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy(before)


def test_pixel_shuffle_matches_depth_to_space_by_hand() -> None:
    r, c = 2, 3
    x = np.arange(1 * 2 * 3 * c * r * r, dtype=np.float32).reshape(1, 2, 3, c * r * r)
    # depth_to_space: channel index (dy * r + dx) * c + k goes to pixel (h*r + dy, w*r + dx), k
    expected = x.reshape(1, 2, 3, r, r, c).transpose(0, 1, 3, 2, 4, 5).reshape(1, 4, 6, c)
    assert np.array_equal(np.asarray(PixelShuffle(r)(x)), expected)
    registered = keras.saving.get_registered_object("harness_models>PixelShuffle")
    assert registered is PixelShuffle


def test_generator_saves_and_loads_in_safe_mode(tmp_path) -> None:
    model = srresnet(scale=2, blocks=1, filters=8)
    lr = _lr(5, 7)
    model.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras", safe_mode=True)
    assert np.allclose(np.asarray(loaded(lr)), np.asarray(model(lr)), atol=1e-6)


def test_edsr_variant_has_no_batch_norm_and_scales_residuals() -> None:
    model = edsr(scale=4, blocks=2, filters=8, res_scale=0.1)
    sr = np.asarray(model(_lr(5, 6)))
    assert sr.shape == (2, 20, 24, 3) and sr.min() >= -1 and sr.max() <= 1
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    scales = [layer.scale for layer in model.layers if layer.name.endswith("_scale")]
    assert scales == [0.1, 0.1]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_msrresnet_starts_as_the_interpolated_input(scale: int) -> None:
    """With BasicSR's 0.1-scaled initial weights the body's residual is tiny, so an untrained
    MSRResNet outputs (close to) the bilinear upscale of its input, in [-1, 1]."""
    import tensorflow as tf

    lr = _lr(7, 9)
    sr = np.asarray(msrresnet(scale=scale, blocks=2, filters=16)(lr))
    assert sr.shape == (2, 7 * scale, 9 * scale, 3) and sr.dtype == np.float32
    assert sr.min() >= -1.0 and sr.max() <= 1.0
    bilinear = np.asarray(tf.image.resize(lr, (7 * scale, 9 * scale), "bilinear")) * 2 - 1
    assert np.abs(sr - bilinear).max() < 0.05
    # Without the scaled initialisation the same model is far from the interpolation.
    big = np.asarray(msrresnet(scale=scale, blocks=2, filters=16, init_scale=10.0)(lr))
    assert np.abs(big - bilinear).mean() > 0.1


def test_msrresnet_has_basicsrs_parameter_count_and_no_batch_norm() -> None:
    f = 64
    conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731 (3x3 convolutions only)
    expected = conv(3, f) + 16 * 2 * conv(f, f) + 2 * conv(f, 4 * f) + conv(f, f) + conv(f, 3)
    model = msrresnet(scale=4)
    assert model.count_params() == expected == 1_517_571
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    assert model.get_layer("skip").method == "bilinear"


def test_msrresnet_saves_and_loads_in_safe_mode(tmp_path) -> None:
    model = msrresnet(scale=4, blocks=1, filters=8, skip="bicubic")
    lr = _lr(5, 7)
    model.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras", safe_mode=True)
    assert np.allclose(np.asarray(loaded(lr)), np.asarray(model(lr)), atol=1e-6)


def test_srgan_discriminator_layout_and_logits() -> None:
    model = srgan(patch=32, filters=4, dense=8)
    logits = model(np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)))
    assert tuple(logits.shape) == (3, 1) and logits.dtype == "float32"
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 4, 8, 8, 16, 16, 32, 32]
    assert [c.strides[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [8, 1]
    assert dense[-1].activation is keras.activations.linear  # a logit, no sigmoid
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bn) == 7  # every conv but the first


def test_bad_sizes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="upscale by 5"):
        srresnet(scale=5, blocks=1, filters=8)
    with pytest.raises(ConfigError, match="multiple of 16"):
        srgan(patch=40)
    with pytest.raises(ConfigError, match="blocks"):
        edsr(scale=2, blocks=0)
    with pytest.raises(ConfigError, match='generator.skip of "msrresnet" must be one of'):
        msrresnet(scale=4, skip="lanczos")
