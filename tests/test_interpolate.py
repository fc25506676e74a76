"""``harness interpolate``: ESRGAN's network interpolation between two generators of one
architecture; alpha 0 and 1 reproduce A and B exactly, the others mix the weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.deploy.interpolate import parse_alphas
from harness.deploy.models import load_generator
from harness.errors import HarnessError


@pytest.fixture(scope="module")
def pair(tmp_path_factory, registry):
    """Two tiny SRResNets of one architecture (different random weights) and a wider one."""
    root = tmp_path_factory.mktemp("interp")
    build = registry.factory("generator", "srresnet")
    models = {}
    for name, filters in (("a", 8), ("b", 8), ("wide", 16)):
        models[name] = build(scale=4, blocks=1, filters=filters)
        models[name].save(root / f"{name}.keras")
    return root, models


def test_alpha_0_and_1_reproduce_a_and_b_exactly(pair, registry):
    pair, models = pair
    out = pair / "out"
    args = ["interpolate", str(pair / "a.keras"), str(pair / "b.keras"), "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, "--alpha", "0,0.5,1"], obj={"registry": registry})
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "interpolation.json").read_text())
    assert manifest["models"] == {
        "0": "alpha_0.keras",
        "0.5": "alpha_0.5.keras",
        "1": "alpha_1.keras",
    }
    lr = np.random.default_rng(0).uniform(0, 1, (1, 12, 12, 3)).astype(np.float32)
    for alpha, name in (("0", "a"), ("1", "b")):
        mixed = load_generator(out / f"alpha_{alpha}.keras", registry=registry)
        assert np.array_equal(np.asarray(mixed(lr)), np.asarray(models[name](lr)))
    half = load_generator(out / "alpha_0.5.keras", registry=registry).get_weights()
    for w, wa, wb in zip(half, models["a"].get_weights(), models["b"].get_weights(), strict=True):
        np.testing.assert_allclose(w, 0.5 * wa + 0.5 * wb, rtol=1e-6, atol=1e-7)


def test_different_architectures_and_bad_alphas_are_one_error_line(pair, registry):
    pair, _ = pair
    args = ["interpolate", str(pair / "a.keras"), str(pair / "wide.keras"), "-o", str(pair / "x")]
    result = CliRunner().invoke(cli, args, obj={"registry": registry})
    assert result.exit_code != 0
    assert "are not the same architecture" in result.output
    assert parse_alphas("0,0.2,...,1") == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert parse_alphas("0, 0.5") == [0.0, 0.5]
    for bad in ("0,x", "0,0.5,...", "0,1.5", "0.5,0.2,...,1"):
        with pytest.raises(HarnessError, match="--alpha"):
            parse_alphas(bad)
