"""Every registered plugin keeps its hook's contract; the checks themselves catch breakage."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from harness.plugin_api import contracts
from harness.plugin_api.contracts import ContractError
from harness.plugin_api.registry import Entry, Registry, build_registry

ENTRIES = build_registry().entries()  # at collection, for the parameter ids


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.kind}:{e.name}" for e in ENTRIES])
def test_registered_plugin_keeps_its_contract(entry: Entry) -> None:
    contracts.check_entry(entry)


def test_a_distribution_is_checked_entry_by_entry_with_its_params(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check_distribution`` hands each entry of the distribution to ``check_entry`` (whose
    checks the test above runs on every registered plugin) with its ``kind:name`` params."""
    seen: dict[tuple[str, str], object] = {}
    monkeypatch.setattr(
        contracts, "check_entry", lambda e, params=None: seen.setdefault((e.kind, e.name), params)
    )
    small = {"blocks": 1, "filters": 4}
    checked = contracts.check_distribution(
        "SRGAN_harness", registry, params={"generator:srresnet": small}
    )
    names = {(e.kind, e.name) for e in checked}
    assert set(seen) == names
    assert names == {
        (e.kind, e.name)
        for e in registry.entries()
        if e.distribution.replace("_", "-").lower() == "srgan-harness"
    }
    assert {
        ("generator", "srresnet"),
        ("content_loss", "vgg54"),
        ("schedule", "piecewise"),
        ("adversarial_loss", "wasserstein"),
    } <= names
    assert seen[("generator", "srresnet")] == small
    assert seen[("schedule", "piecewise")] is None
    with pytest.raises(ContractError, match='distribution "no-such-dist"'):
        contracts.check_distribution("no-such-dist", registry)


def test_params_override_reaches_the_factory(registry: Registry) -> None:
    entry = registry.get("content_loss", "vgg54")
    with pytest.raises(ContractError, match="unknown layer.*srgan-harness"):
        contracts.check_entry(entry, {"layer": "block9_conv9"})


# --------------------------------------------------------------------------- broken plugins


def _upscale_by_two(scale: int = 4) -> keras.Model:
    lr = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(12, 3, padding="same", activation="tanh")(lr)
    return keras.Model(lr, keras.layers.UpSampling2D(2)(x[..., :3]))


def _lambda_generator(scale: int = 2) -> keras.Model:
    lr = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3 * scale * scale, 3, padding="same", activation="tanh")(lr)
    return keras.Model(lr, keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, scale))(x))


def _unbounded_generator(scale: int = 2) -> keras.Model:
    lr = keras.Input((None, None, 3))
    return keras.Model(lr, keras.layers.UpSampling2D(scale)(lr * 5.0 - 10.0))


def test_generator_check_catches_wrong_size_range_and_lambda() -> None:
    with pytest.raises(ContractError, match="expected"):
        contracts.check_generator(_upscale_by_two, name="bad")
    with pytest.raises(ContractError, match="expected \\[-1, 1\\]"):
        contracts.check_generator(_unbounded_generator, scale=2, name="bad")
    with pytest.raises(ContractError, match="safe mode"):
        contracts.check_generator(_lambda_generator, scale=2, name="bad")


def test_discriminator_check_catches_wrong_logit_shape() -> None:
    def flat_logits(patch: int = 16) -> keras.Model:
        image = keras.Input((patch, patch, 3))
        logits = keras.layers.Dense(1)(keras.layers.Flatten()(image))
        return keras.Model(image, keras.layers.Flatten()(keras.layers.Dense(1)(logits))[:, 0])

    with pytest.raises(ContractError, match=r"shape \(3,\) for 3 images, expected \(3, \.\.\.\)"):
        contracts.check_discriminator(flat_logits, name="bad")


def test_discriminator_check_accepts_a_logit_map() -> None:
    def patch_logits(patch: int = 16) -> keras.Model:
        image = keras.Input((patch, patch, 3))
        return keras.Model(image, keras.layers.Conv2D(1, 4, strides=4)(image))

    contracts.check_discriminator(patch_logits, name="map")


def test_content_loss_check_catches_vectors_nans_and_no_gradient() -> None:
    def per_image():
        return lambda sr, hr: tf.reduce_mean(tf.square(sr - hr), axis=[1, 2, 3])

    def nan():
        return lambda sr, hr: tf.reduce_mean(sr) * math.nan

    def constant():
        return lambda sr, hr: tf.constant(1.0)

    def float64():
        return lambda sr, hr: tf.reduce_mean(tf.cast(sr - hr, tf.float64))

    with pytest.raises(ContractError, match="expected a scalar"):
        contracts.check_content_loss(per_image, name="bad")
    with pytest.raises(ContractError, match="finite value"):
        contracts.check_content_loss(nan, name="bad")
    with pytest.raises(ContractError, match="no gradient"):
        contracts.check_content_loss(constant, name="bad")
    with pytest.raises(ContractError, match="expected float32"):
        contracts.check_content_loss(float64, name="bad")


def test_adversarial_check_catches_missing_methods() -> None:
    class HalfLoss:
        def generator_loss(self, fake_logits):
            return tf.reduce_mean(fake_logits)

    with pytest.raises(ContractError, match="no method discriminator_loss"):
        contracts.check_adversarial_loss(HalfLoss, name="bad")


def test_schedule_check_catches_non_finite_values() -> None:
    def blows_up():
        return lambda step: 1.0 / (step - 1000) if step != 1000 else math.inf

    with pytest.raises(ContractError, match="at step 1000"):
        contracts.check_schedule(blows_up, name="bad")


def test_metric_check() -> None:
    def psnr():
        def metric(sr, hr):
            err = np.mean((sr.astype(np.float64) - hr) ** 2)
            return 10 * np.log10(255.0**2 / err)

        return metric

    contracts.check_metric(psnr, name="psnr")
    with pytest.raises(ContractError, match="expected a float"):
        contracts.check_metric(lambda: lambda sr, hr: "high", name="bad")


def test_check_entry_names_the_distribution() -> None:
    entry = Entry("schedule", "bad", lambda: lambda step: math.nan, "acme", "acme-sr", "1.2")
    with pytest.raises(ContractError, match=r"plugin 'acme' from acme-sr 1\.2"):
        contracts.check_entry(entry)
