"""The ``realesrgan`` degradation: Real-ESRGAN's second-order pipeline in TensorFlow ops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from harness_degradations.realesrgan import (
    EXACT_POISSON_BELOW,
    _poisson,
    filter2d,
    mixed_kernel,
    realesrgan,
    sinc_kernel,
)
from scipy import special

from harness.errors import ConfigError

SEED = tf.constant([3, 14], tf.int64)

# Every random step switched off: a delta blur, keep-size resizes, zero noise, JPEG at quality
# 100, area interpolation only.
PLAIN = dict(
    resize_prob=(0.0, 0.0, 1.0),
    resize_prob2=(0.0, 0.0, 1.0),
    gaussian_noise_prob=1.0,
    gaussian_noise_prob2=1.0,
    noise_range=(0.0, 0.0),
    noise_range2=(0.0, 0.0),
    jpeg_range=(100, 100),
    jpeg_range2=(100, 100),
    kernel_list=("iso",),
    kernel_prob=(1.0,),
    sinc_prob=0.0,
    blur_sigma=(0.05, 0.05),
    second_blur_prob=0.0,
    final_sinc_prob=0.0,
    resize_modes=("area",),
)


def photo(height: int = 96, width: int = 96, seed: int = 0) -> tf.Tensor:
    """A smooth, half-saturated picture-like HR image on 8-bit levels in [0.2, 0.8]: random
    colours, bicubic-upscaled (JPEG at quality 100 keeps it within about a level)."""
    small = tf.random.stateless_uniform([height // 8, width // 8, 3], [seed, 1])
    small = 0.5 * small + 0.5 * tf.reduce_mean(small, axis=-1, keepdims=True)
    image = 0.2 + 0.6 * tf.image.resize(small, [height, width], "bicubic")
    return tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0) / 255.0


def test_same_seed_same_output_other_seed_differs():
    degrade = realesrgan(4)
    hr = photo(64, 64)
    first = degrade(hr, SEED)
    assert np.array_equal(first.numpy(), degrade(hr, SEED).numpy())
    others = [degrade(hr, tf.constant([s, 1], tf.int64)).numpy() for s in range(3)]
    assert all(not np.array_equal(first.numpy(), other) for other in others)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shape_in_a_data_map_with_unknown_shapes(scale):
    degrade = realesrgan(scale)
    images = [photo(48, 36, seed=scale), photo(36, 60, seed=scale)]
    seeds = [np.array([1, scale], np.int64), np.array([2, scale], np.int64)]
    spec = (tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2], tf.int64))
    data = tf.data.Dataset.from_generator(
        lambda: zip(images, seeds, strict=True), output_signature=spec
    )
    data = data.map(degrade, num_parallel_calls=tf.data.AUTOTUNE)
    mapped = list(data.as_numpy_iterator())
    assert [lr.shape for lr in mapped] == [
        (48 // scale, 36 // scale, 3),
        (36 // scale, 60 // scale, 3),
    ]
    # The traced graph and the eager function draw the same numbers from the same seed (float
    # rounding may move a JPEG level here and there; other draws would change every pixel).
    eager = degrade(images[1], tf.constant(seeds[1]))
    assert eager.shape == (36 // scale, 60 // scale, 3)
    assert np.abs(mapped[1] - eager.numpy()).mean() < 0.5 / 255
    other = degrade(images[1], tf.constant([5, scale], tf.int64)).numpy()
    assert np.abs(mapped[1] - other).mean() > 2.0 / 255


def test_output_finite_and_near_the_unit_range():
    graph = tf.function(realesrgan(4))
    hr = photo(64, 64)
    for s in range(8):
        lr = graph(hr, tf.constant([s, 5], tf.int64)).numpy()
        assert np.isfinite(lr).all()
        # The sinc filter and bicubic resize ring a little past [0, 1]; the host clips.
        assert lr.min() > -0.25 and lr.max() < 1.25
        clipped = np.clip(lr, 0.0, 1.0)
        assert 0.0 < clipped.mean() < 1.0


def reference_kernel(size, sigma_x, sigma_y, theta, beta, family):
    """BasicSR's kernels in NumPy: covariance U diag(sx^2, sy^2) U^T, q = x' S^-1 x."""
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], -1)
    u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inverse = np.linalg.inv(u @ np.diag([sigma_x**2, sigma_y**2]) @ u.T)
    q = np.sum((grid @ inverse) * grid, -1)
    kernel = {
        0: np.exp(-0.5 * q),
        1: np.exp(-0.5 * q**beta),
        2: 1.0 / (q**beta + 1.0),
    }[family]
    return kernel / kernel.sum()


@pytest.mark.parametrize("family", [0, 1, 2])
@pytest.mark.parametrize("size", [7, 13, 21])
def test_kernels_match_basicsr_and_sum_to_one(family, size):
    args = (2.5, 1.2, 0.7, 1.6)
    kernel = mixed_kernel(family, *args, size=size).numpy()
    assert kernel.shape == (21, 21)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    pad = (21 - size) // 2
    inner = kernel[pad : 21 - pad, pad : 21 - pad]
    assert inner.sum() == pytest.approx(1.0, abs=1e-5)  # nothing outside its window
    np.testing.assert_allclose(inner, reference_kernel(size, *args, family), atol=1e-6)


def test_generalized_gaussian_with_beta_one_is_the_gaussian():
    # BasicSR's generalized Gaussian is exp(-(x' S^-1 x)**beta / 2): beta = 1 is the Gaussian.
    gaussian = mixed_kernel(0, 1.8, 0.9, 0.4, 1.0, 21)
    np.testing.assert_allclose(mixed_kernel(1, 1.8, 0.9, 0.4, 1.0, 21), gaussian, atol=1e-7)
    assert not np.allclose(mixed_kernel(1, 1.8, 0.9, 0.4, 2.0, 21), gaussian, atol=1e-4)


@pytest.mark.parametrize("size", [7, 21])
def test_sinc_kernel_symmetric_sums_to_one_and_matches_the_bessel_formula(size):
    cutoff = math.pi / 3
    kernel = sinc_kernel(cutoff, size).numpy()
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(kernel, kernel.T, atol=1e-7)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1], atol=1e-7)
    pad = (21 - size) // 2
    ax = np.arange(size) - (size - 1) / 2
    r = np.hypot(*np.meshgrid(ax, ax))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    expected[size // 2, size // 2] = cutoff**2 / (4 * np.pi)
    expected /= expected.sum()
    np.testing.assert_allclose(kernel[pad : 21 - pad, pad : 21 - pad], expected, atol=1e-6)


@pytest.mark.parametrize("height,width", [(40, 27), (5, 3)])
def test_filter2d_is_a_reflect_padded_correlation(height, width):
    image = tf.random.stateless_uniform([height, width, 3], [0, 2])
    kernel = tf.random.stateless_uniform([21, 21], [0, 3])
    padded = np.pad(image.numpy(), [(10, 10), (10, 10), (0, 0)], mode="reflect")
    expected = np.zeros(image.shape)
    for dy in range(21):
        for dx in range(21):
            expected += kernel[dy, dx].numpy() * padded[dy : dy + height, dx : dx + width]
    np.testing.assert_allclose(filter2d(image, kernel), expected, rtol=1e-4, atol=1e-3)


def test_with_every_step_off_it_is_an_area_resize():
    hr = photo(96, 72)
    # Left over: the first JPEG, the area resize, the last JPEG (the final resize keeps the size).
    first = tf.image.adjust_jpeg_quality(hr, 100)
    expected = tf.image.adjust_jpeg_quality(tf.image.resize(first, [24, 18], "area"), 100)
    for seed in range(3):
        plain = realesrgan(4, **PLAIN)(hr, tf.constant([seed, 9], tf.int64))
        np.testing.assert_allclose(plain, expected, atol=1e-6)
    # The defaults blur, add noise and compress: far from the plain resize.
    degraded = realesrgan(4)(hr, SEED).numpy()
    assert np.abs(degraded - expected.numpy()).mean() > 8.0 / 255


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_noise_parameters_are_honoured(noise):
    hr = photo(96, 96)
    quiet = realesrgan(4, **PLAIN)(hr, SEED).numpy()
    loud = dict(PLAIN, jpeg_range=(95, 95), jpeg_range2=(95, 95))
    if noise == "gaussian":
        loud |= dict(noise_range2=(20.0, 20.0))
    else:
        loud |= dict(gaussian_noise_prob2=0.0, poisson_scale_range2=(3.0, 3.0))
    noisy = realesrgan(4, **loud)(hr, SEED).numpy()
    assert (noisy - quiet).std() > 5.0 / 255


@pytest.mark.parametrize("lam", [0.5, 6.0, EXACT_POISSON_BELOW + 1, 200.0])
def test_poisson_counts_have_the_poisson_mean_and_variance(lam):
    counts = _poisson(tf.fill([200, 100], lam), tf.constant([4, 2], tf.int64)).numpy()
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    assert counts.mean() == pytest.approx(lam, rel=0.03, abs=0.02)
    assert counts.var() == pytest.approx(lam, rel=0.05)
    if lam < 1:  # the exact sampler: P(0) = exp(-lam)
        assert (counts == 0).mean() == pytest.approx(math.exp(-lam), abs=0.015)


@pytest.mark.parametrize("gaussian", [1.0, 0.0])
def test_gray_noise_is_one_field_on_every_channel(gaussian):
    hr = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(photo(96, 96)))
    hr = tf.round(hr * 255.0) / 255.0
    noisy = dict(PLAIN, gaussian_noise_prob2=gaussian, noise_range2=(20.0, 20.0))
    noisy |= dict(poisson_scale_range2=(3.0, 3.0))
    spread = {}
    for gray in (1.0, 0.0):
        lr = realesrgan(4, **noisy, gray_noise_prob2=gray)(hr, SEED).numpy()
        spread[gray] = np.abs(lr - lr.mean(axis=-1, keepdims=True)).mean()
    assert spread[1.0] < 1.0 / 255 and spread[0.0] > 4.0 / 255


@pytest.mark.parametrize(
    "params,key",
    [
        (dict(sinc_prob=1.5), "sinc_prob"),
        (dict(kernel_list=("iso", "box")), "kernel_list"),
        (dict(kernel_prob=(1.0,)), "kernel_prob"),
        (dict(jpeg_range=(30, 120)), "jpeg_range"),
        (dict(resize_range=(1.5, 0.15)), "resize_range"),
        (dict(blur_sigma=(0.0, 3.0)), "blur_sigma"),
        (dict(kernel_size_range=(8, 21)), "kernel_size_range"),
        (dict(resize_modes=("nearest",)), "resize_modes"),
    ],
)
def test_bad_parameters_are_one_clear_error(params, key):
    with pytest.raises(ConfigError, match=f'data.degradation.{key} of "realesrgan"'):
        realesrgan(4, **params)
