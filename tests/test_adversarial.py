"""Adversarial losses against their closed forms, computed by hand in NumPy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness_adversarial import LeastSquares, Minimax, Modified, Wasserstein

from harness import config
from harness.errors import ConfigError

REAL = np.array([[2.0], [-0.5], [0.3], [4.0]], np.float32)
FAKE = np.array([[-1.5], [0.7], [-3.0], [0.0]], np.float32)


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, np.float64))


def sigmoid_ce(logits, label):
    """Sigmoid cross entropy: label * softplus(-x) + (1 - label) * softplus(x)."""
    return label * softplus(-np.asarray(logits)) + (1 - label) * softplus(logits)


def both(fn, *args):
    """The value eagerly and inside tf.function (they must agree)."""
    eager = float(fn(*map(tf.constant, args)))
    traced = float(tf.function(fn)(*map(tf.constant, args)))
    assert eager == pytest.approx(traced, rel=1e-6, abs=1e-6)
    return eager


def test_minimax_matches_closed_form_with_tfgan_defaults() -> None:
    loss = Minimax()
    # the discriminator's real label is smoothed to 1 - 0.25 / 2 = 0.875
    expected_d = sigmoid_ce(REAL, 0.875).mean() + sigmoid_ce(FAKE, 0.0).mean()
    # saturating generator loss log(1 - D(G(z))), written as minus the discriminator loss with a
    # real logit of 1: it carries the constant -softplus(-1)
    expected_g = -(softplus(-1.0) + softplus(FAKE).mean())
    assert both(loss.discriminator_loss, REAL, FAKE) == pytest.approx(expected_d, rel=1e-5)
    assert both(loss.generator_loss, FAKE) == pytest.approx(expected_g, rel=1e-5)


def test_minimax_label_smoothing_is_configurable() -> None:
    loss = Minimax(label_smoothing=0.0, generator_label_smoothing=0.2)
    expected_d = sigmoid_ce(REAL, 1.0).mean() + sigmoid_ce(FAKE, 0.0).mean()
    expected_g = -(sigmoid_ce(1.0, 0.9) + softplus(FAKE).mean())
    assert both(loss.discriminator_loss, REAL, FAKE) == pytest.approx(expected_d, rel=1e-5)
    assert both(loss.generator_loss, FAKE) == pytest.approx(expected_g, rel=1e-5)


def test_modified_is_non_saturating() -> None:
    loss = Modified()
    expected_g = softplus(-FAKE).mean()  # -log(sigmoid(D(G(z))))
    expected_d = sigmoid_ce(REAL, 0.875).mean() + sigmoid_ce(FAKE, 0.0).mean()
    assert both(loss.generator_loss, FAKE) == pytest.approx(expected_g, rel=1e-5)
    assert both(loss.discriminator_loss, REAL, FAKE) == pytest.approx(expected_d, rel=1e-5)


def test_wasserstein_matches_closed_form() -> None:
    loss = Wasserstein()
    assert both(loss.generator_loss, FAKE) == pytest.approx(-FAKE.mean(), rel=1e-6)
    assert both(loss.discriminator_loss, REAL, FAKE) == pytest.approx(
        FAKE.mean() - REAL.mean(), rel=1e-6
    )
    assert float(loss.penalty(None, None, None)) == 0.0  # off by default: nothing is computed


def test_least_squares_has_the_half_factor() -> None:
    loss = LeastSquares()
    assert both(loss.generator_loss, FAKE) == pytest.approx(((FAKE - 1) ** 2).mean() / 2, rel=1e-6)
    expected_d = ((REAL - 1) ** 2).mean() / 2 + (FAKE**2).mean() / 2
    assert both(loss.discriminator_loss, REAL, FAKE) == pytest.approx(expected_d, rel=1e-6)
    custom = LeastSquares(real_label=0.9, fake_label=-1.0)
    expected_d = ((REAL - 0.9) ** 2).mean() / 2 + ((FAKE + 1) ** 2).mean() / 2
    assert both(custom.discriminator_loss, REAL, FAKE) == pytest.approx(expected_d, rel=1e-6)


def _linear_discriminator(w: np.ndarray) -> keras.Model:
    """D(x) = <w, x> + b: its input gradient is w at every interpolate."""
    image = keras.Input((2, 2, 3))
    dense = keras.layers.Dense(1)
    model = keras.Model(image, dense(keras.layers.Flatten()(image)))
    dense.set_weights([w.reshape(12, 1), np.array([0.3], np.float32)])
    return model


@pytest.mark.parametrize("one_sided", [False, True])
@pytest.mark.parametrize("norm", [0.5, 3.0])
def test_gradient_penalty_matches_closed_form(norm: float, one_sided: bool) -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=12).astype(np.float32)
    w *= norm / np.linalg.norm(w)
    disc = _linear_discriminator(w)
    hr = tf.constant(rng.uniform(-1, 1, (3, 2, 2, 3)).astype(np.float32))
    sr = tf.constant(rng.uniform(-1, 1, (3, 2, 2, 3)).astype(np.float32))
    loss = Wasserstein(gradient_penalty=10.0, one_sided=one_sided)
    deviation = np.sqrt(norm**2 + 1e-10) - 1.0
    expected = 10.0 * (max(deviation, 0.0) if one_sided else deviation) ** 2

    def run(hr, sr):
        with tf.GradientTape() as tape:
            value = loss.penalty(disc, hr, sr)
        return value, tape.gradient(value, disc.trainable_variables[0])

    for fn in (run, tf.function(run)):
        value, grad = fn(hr, sr)
        assert float(value) == pytest.approx(expected, rel=1e-4, abs=1e-6)
        # d/dw of 10 (|w| - 1)^2 = 20 (|w| - 1) w / |w|
        if expected > 0:
            expected_grad = 20.0 * deviation * w / norm
            assert np.allclose(np.asarray(grad).ravel(), expected_grad, rtol=1e-3, atol=1e-5)


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="label smoothing"):
        Minimax(label_smoothing=1.5)
    with pytest.raises(ConfigError, match="gradient_penalty"):
        Wasserstein(gradient_penalty=-1.0)


def test_adversarial_table_is_checked_against_the_class_signature(registry) -> None:
    exp = config.from_dict(
        {"adversarial": {"name": "minimax", "label_smoothing": 0.1}}, registry=registry
    )
    assert exp.adversarial is not None
    assert exp.adversarial.params == {"label_smoothing": 0.1, "generator_label_smoothing": 0.0}
    with pytest.raises(ConfigError, match="gradient_penalty"):
        config.from_dict(
            {"adversarial": {"name": "wasserstein", "gradient_penaltyy": 10}}, registry=registry
        )
