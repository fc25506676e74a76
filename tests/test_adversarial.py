"""Adversarial losses against their closed forms, computed by hand in NumPy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness_adversarial import (
    Hinge,
    LeastSquares,
    Minimax,
    Modified,
    Relativistic,
    Vanilla,
    Wasserstein,
)

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
    assert exp.adversarial.params == {
        "label_smoothing": 0.1,
        "generator_label_smoothing": 0.0,
        "r1_gamma": 0.0,
    }
    with pytest.raises(ConfigError, match="gradient_penalty"):
        config.from_dict(
            {"adversarial": {"name": "wasserstein", "gradient_penaltyy": 10}}, registry=registry
        )


# --------------------------------------------------------------------------- BasicSR's losses
# Each compared with its formula written in NumPy (float64) on fixed logits, per image and as
# 2x2 maps: tolerance rel 1e-5 (float32 arithmetic against float64).

MAP_REAL = np.array([[[[1.2], [-0.3]], [[0.8], [2.5]]], [[[-1.0], [0.1]], [[0.4], [-2.2]]]])
MAP_FAKE = np.array([[[[-0.7], [0.9]], [[-2.0], [0.3]]], [[[1.5], [-0.4]], [[0.0], [-1.1]]]])
SHAPES = [(REAL, FAKE), (MAP_REAL.astype(np.float32), MAP_FAKE.astype(np.float32))]


@pytest.mark.parametrize("real, fake", SHAPES, ids=["per_image", "map"])
def test_vanilla_is_bce_with_one_sided_smoothing(real, fake) -> None:
    assert both(Vanilla().generator_loss, fake) == pytest.approx(
        sigmoid_ce(fake, 1.0).mean(), rel=1e-5
    )
    expected_d = sigmoid_ce(real, 1.0).mean() + sigmoid_ce(fake, 0.0).mean()
    assert both(Vanilla().discriminator_loss, real, fake) == pytest.approx(expected_d, rel=1e-5)
    smoothed = sigmoid_ce(real, 0.9).mean() + sigmoid_ce(fake, 0.0).mean()
    value = both(Vanilla(label_smoothing=0.1).discriminator_loss, real, fake)
    assert value == pytest.approx(smoothed, rel=1e-5)


@pytest.mark.parametrize("real, fake", SHAPES, ids=["per_image", "map"])
def test_hinge_matches_its_formula(real, fake) -> None:
    relu = lambda x: np.maximum(np.asarray(x, np.float64), 0.0)  # noqa: E731
    assert both(Hinge().generator_loss, fake) == pytest.approx(-fake.mean(), rel=1e-5)
    expected_d = relu(1 - real).mean() + relu(1 + fake).mean()
    assert both(Hinge().discriminator_loss, real, fake) == pytest.approx(expected_d, rel=1e-5)


@pytest.mark.parametrize("real, fake", SHAPES, ids=["per_image", "map"])
def test_relativistic_matches_esrgan(real, fake) -> None:
    """ESRGAN eq. 1-2 with D_Ra(a, b) = sigmoid(C(a) - mean C(b)), as BasicSR averages its two
    terms; the means run over batch and map."""
    loss = Relativistic()
    real64, fake64 = real.astype(np.float64), fake.astype(np.float64)
    d_real, d_fake = real64 - fake64.mean(), fake64 - real64.mean()
    expected_d = 0.5 * (sigmoid_ce(d_real, 1.0).mean() + sigmoid_ce(d_fake, 0.0).mean())
    expected_g = 0.5 * (sigmoid_ce(d_real, 0.0).mean() + sigmoid_ce(d_fake, 1.0).mean())
    assert both(loss.discriminator_loss, real, fake) == pytest.approx(expected_d, rel=1e-5)
    g = both(lambda f, r: loss.generator_loss(f, real_logits=r), fake, real)
    assert g == pytest.approx(expected_g, rel=1e-5)
    with pytest.raises(ConfigError, match="needs the real logits"):
        loss.generator_loss(tf.constant(fake))


def test_relativistic_discriminator_gradient_is_basicsr_s() -> None:
    """BasicSR backpropagates each D term through its own logits only: d/dx_i of the loss is
    0.5 * (sigmoid(x_i - mean y) - 1) / n, with no term from the other side's mean."""
    real, fake = tf.Variable(REAL), tf.Variable(FAKE)
    with tf.GradientTape() as tape:
        value = Relativistic().discriminator_loss(real, fake)
    grad_real = tape.gradient(value, real).numpy()
    x = REAL.astype(np.float64) - FAKE.mean()
    expected = 0.5 * (1 / (1 + np.exp(-x)) - 1.0) / REAL.size
    assert np.allclose(grad_real, expected, rtol=1e-5, atol=1e-7)


def _quadratic_discriminator() -> keras.Model:
    """D(x) = sum over pixels of a * x^2 as a 2x2 logit map: grad = 2 a x, known in closed form."""
    image = keras.Input((2, 2, 3))
    conv = keras.layers.Conv2D(1, 1, use_bias=False)
    model = keras.Model(image, conv(keras.layers.Multiply()([image, image])))
    conv.set_weights([np.array([0.5, -1.0, 2.0], np.float32).reshape(1, 1, 3, 1)])
    return model


@pytest.mark.parametrize(
    "loss",
    [
        Vanilla(r1_gamma=10.0),
        Hinge(r1_gamma=10.0),
        Minimax(r1_gamma=10.0),
        Wasserstein(r1_gamma=10.0),
    ],
    ids=lambda x: type(x).__name__,
)
def test_r1_penalty_matches_closed_form(loss) -> None:
    """R1 = gamma / 2 * mean_i |grad_x sum D(x_i)|^2 (BasicSR's r1_penalty); for the quadratic
    map D the gradient is 2 a x. Tolerance rel 1e-5, eagerly and in tf.function. The penalty's
    gradient for the weights a (the second-order path the trainer uses) is checked against its
    closed form too, rel 1e-4."""
    disc = _quadratic_discriminator()
    rng = np.random.default_rng(2)
    hr = rng.uniform(-1, 1, (3, 2, 2, 3)).astype(np.float32)
    a = np.array([0.5, -1.0, 2.0])
    expected = 10.0 / 2 * np.mean(np.sum((2 * a * hr.astype(np.float64)) ** 2, axis=(1, 2, 3)))
    for fn in (loss.penalty, tf.function(loss.penalty)):
        assert float(fn(disc, tf.constant(hr), tf.constant(hr))) == pytest.approx(expected, 1e-5)
    with tf.GradientTape() as tape:
        value = loss.penalty(disc, tf.constant(hr), None)
    grad = tape.gradient(value, disc.trainable_variables[0]).numpy().ravel()
    # d/da_c of 5 * mean_i sum 4 a_c^2 x^2 = 40 a_c * mean_i sum_{pixels} x_c^2
    expected_grad = 40 * a * np.mean(np.sum(hr.astype(np.float64) ** 2, axis=(1, 2)), axis=0)
    assert np.allclose(grad, expected_grad, rtol=1e-4)


def test_r1_is_off_by_default_and_refuses_negative_gamma() -> None:
    assert float(Relativistic().penalty(None, None, None)) == 0.0
    with pytest.raises(ConfigError, match="r1_gamma must be >= 0"):
        Hinge(r1_gamma=-1.0)
    with pytest.raises(ConfigError, match="label_smoothing"):
        Vanilla(label_smoothing=1.0)
