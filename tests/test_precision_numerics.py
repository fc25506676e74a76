"""The bf16 step computes the same losses as the float32 step, within bfloat16's tolerance.

The mixed_bfloat16 step is tuned for speed (which layers run in bf16, how the step is
compiled); these tests pin what that may change: the losses of a fixed batch, from the same
initial weights, against the float32 step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness_models import srresnet
from harness_models.layers import FusedBatchNorm

from harness import config
from harness.training import precision
from harness.training.step import Trainer

# bfloat16 keeps 8 significant bits (relative rounding 2**-9); a tiny network's losses, summed
# over a few thousand values, agree with float32 to well under 1%.
BF16_RTOL = 1e-2


def _batch(batch: int = 2, patch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 1, (batch, patch // 4, patch // 4, 3)).astype(np.float32)
    hr = rng.uniform(-1, 1, (batch, patch, patch, 3)).astype(np.float32)
    return lr, hr


def _first_losses(policy: str, registry, adversarial: bool) -> dict[str, float]:
    raw: dict = {
        "experiment": {"name": "numerics"},
        "data": {"patch": 32},
        "generator": {"name": "srresnet", "blocks": 1, "filters": 8},
        "losses": {"mse": {}},
        "train": {"steps": 2, "batch_size": 2, "precision": policy},
    }
    if adversarial:
        raw["discriminator"] = {"name": "srgan", "filters": 8, "dense": 16}
        raw["adversarial"] = {"name": "modified", "weight": 1e-3}
    trainer = Trainer(config.from_dict(raw, registry=registry), registry=registry)
    trainer.start_data(tf.data.Dataset.from_tensors(_batch()).repeat())
    return trainer.train_step()


@pytest.mark.slow
@pytest.mark.parametrize("adversarial", [False, True], ids=["mse", "gan"])
def test_bf16_step_losses_match_float32(registry, adversarial):
    f32 = _first_losses("float32", registry, adversarial)
    bf16 = _first_losses("mixed_bfloat16", registry, adversarial)
    assert f32.keys() == bf16.keys()
    for name, value in f32.items():
        assert np.isfinite(bf16[name]), name
        assert bf16[name] == pytest.approx(value, rel=BF16_RTOL, abs=1e-4), name


def test_srresnet_output_layer_computes_in_the_policy_dtype():
    lr, _ = _batch()
    with precision.policy_scope("float32"):
        keras.utils.set_random_seed(0)
        f32 = srresnet(scale=4, blocks=1, filters=8)
    with precision.policy_scope("mixed_bfloat16"):
        bf16 = srresnet(scale=4, blocks=1, filters=8)
    bf16.set_weights(f32.get_weights())
    assert bf16.get_layer("to_rgb").compute_dtype == "bfloat16"
    sr32, sr16 = np.asarray(f32(lr)), np.asarray(bf16(lr))
    assert sr16.dtype == np.float32
    # an 8-bit mantissa: the output (in [-1, 1]) is off by at most a few 2**-8 steps
    assert np.abs(sr16 - sr32).max() < 4 * 2.0**-8
    assert np.abs(sr16 - sr32).max() > 0  # the bf16 model really computes in bf16
    _, hr = _batch()
    mse32, mse16 = np.mean((sr32 - hr) ** 2), np.mean((sr16 - hr) ** 2)
    assert mse16 == pytest.approx(mse32, rel=BF16_RTOL)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras(policy):
    x = np.random.default_rng(1).normal(2.0, 3.0, (4, 5, 6, 8)).astype(np.float32)
    with precision.policy_scope(policy):
        ours, keras_bn = FusedBatchNorm(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    ours.build(x.shape)
    keras_bn.build(x.shape)
    gamma = np.linspace(0.5, 1.5, 8).astype(np.float32)
    for layer in (ours, keras_bn):
        layer.set_weights([gamma, -gamma, np.zeros(8, np.float32), np.ones(8, np.float32)])
    tol = 1e-5 if policy == "float32" else BF16_RTOL
    for training in (True, False):
        y1 = np.asarray(ours(x, training=training), np.float32)
        y2 = np.asarray(keras_bn(x, training=training), np.float32)
        assert y1.dtype == y2.dtype
        np.testing.assert_allclose(y1, y2, rtol=tol, atol=tol)
    for w1, w2 in zip(ours.get_weights(), keras_bn.get_weights(), strict=True):
        np.testing.assert_allclose(w1, w2, rtol=tol, atol=tol)  # the same moving statistics
