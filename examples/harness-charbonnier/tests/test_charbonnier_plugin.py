"""Tests for harness-charbonnier: the project's contract checks, then each plugin's behaviour.

Run with ``pytest`` after ``pip install -e .``: the contract checks find the plugins through the
installed entry point, exactly as the harness does.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf
from harness_charbonnier import (
    RelativisticAverage,
    charbonnier,
    charbonnier_error,
    sigmoid_rampup,
)

from harness.plugin_api.testing import assert_plugin_contracts


def test_contracts() -> None:
    """Everything this package registers passes the checks srgan-harness runs on plugins."""
    names = {(e.kind, e.name) for e in assert_plugin_contracts("harness-charbonnier")}
    assert names == {
        ("content_loss", "lapsrn_charbonnier"),
        ("adversarial_loss", "relativistic_average"),
        ("schedule", "sigmoid_rampup"),
        ("metric", "charbonnier_error"),
    }


def test_charbonnier_matches_its_formula() -> None:
    rng = np.random.default_rng(0)
    sr = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
    hr = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
    expected = np.mean(np.sqrt((sr.astype(np.float64) - hr) ** 2 + 0.01**2))
    assert float(charbonnier(eps=0.01)(tf.constant(sr), tf.constant(hr))) == pytest.approx(
        expected, rel=1e-5
    )
    # A perfect reconstruction costs exactly eps.
    assert float(charbonnier(eps=0.01)(tf.constant(hr), tf.constant(hr))) == pytest.approx(0.01)


def test_charbonnier_under_mixed_precision_returns_float32() -> None:
    hr = tf.random.uniform((1, 8, 8, 3), -1, 1, seed=3)
    sr = tf.Variable(tf.cast(hr + 0.25, tf.bfloat16))
    with tf.GradientTape() as tape:
        value = charbonnier()(sr, tf.cast(hr, tf.bfloat16))
    assert value.dtype == tf.float32
    grad = tape.gradient(value, sr)
    assert grad is not None and bool(tf.reduce_all(grad > 0))


def test_charbonnier_refuses_non_positive_eps() -> None:
    with pytest.raises(ValueError, match="eps must be > 0"):
        charbonnier(eps=0.0)


def _rasgan_d(real: np.ndarray, fake: np.ndarray) -> float:
    """The paper's RaSGAN discriminator loss, in NumPy."""

    def sig(x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-x))

    return float(
        -np.mean(np.log(sig(real - fake.mean()))) - np.mean(np.log(1 - sig(fake - real.mean())))
    )


def test_relativistic_average_matches_the_paper() -> None:
    real = np.array([[2.0], [0.5], [1.0]], np.float32)
    fake = np.array([[-1.0], [0.3], [-0.2]], np.float32)
    loss = RelativisticAverage()
    d = float(loss.discriminator_loss(tf.constant(real), tf.constant(fake)))
    g = float(loss.generator_loss(tf.constant(fake), real_logits=tf.constant(real)))
    assert d == pytest.approx(_rasgan_d(real, fake), rel=1e-5)
    assert g == pytest.approx(_rasgan_d(fake, real), rel=1e-5)  # roles swapped
    assert g > d  # this discriminator is winning


def test_relativistic_average_without_real_logits_warns_and_is_non_saturating() -> None:
    fake = tf.constant([[0.0], [1.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(RelativisticAverage().generator_loss(fake))
    assert any("real_logits" in str(w.message) for w in caught)
    expected = np.mean([math.log(2.0), math.log(1 + math.exp(-1.0))])
    assert value == pytest.approx(expected, rel=1e-5)


def test_sigmoid_rampup_shape() -> None:
    schedule = sigmoid_rampup(start=0.0, end=2.0, begin=100, steps=100)
    assert schedule(0) == 0.0 and schedule(100) == 0.0
    assert schedule(150) == pytest.approx(2.0 * math.exp(-5 * 0.25))
    assert schedule(200) == 2.0 and schedule(10**9) == 2.0
    values = [schedule(s) for s in range(100, 201)]
    assert values == sorted(values)


def test_charbonnier_error_metric() -> None:
    hr = np.full((4, 4, 3), 100, np.uint8)
    sr = np.full((4, 4, 3), 151, np.uint8)
    assert charbonnier_error(eps=1e-3)(sr, hr) == pytest.approx(math.hypot(51 / 255, 1e-3))
    assert charbonnier_error.higher_is_better is False
