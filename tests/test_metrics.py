"""The evaluation protocol: MATLAB bicubic, Y channel, PSNR, SSIM, and the published baselines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from harness.data import images
from harness.data.images import to_uint8
from harness.errors import HarnessError
from harness.measures.bicubic import (
    bicubic_downsample,
    bicubic_upsample,
    bicubic_upscaler,
    imresize,
    resize_matrix,
)
from harness.measures.quality import PSNR_CAP, psnr, ssim
from harness.measures.scoring import evaluate
from harness.plugin_api.metrics import MetricProtocol, metric_protocol, rgb_to_y

PUBLISHED_BICUBIC_X4 = {"set5": 28.43, "set14": 26.09, "bsd100": 25.96}


def _load(folder) -> list[tuple[str, np.ndarray]]:
    return [(p.stem, images.read_image(p)) for p in images.list_images(folder)]


@pytest.mark.parametrize("name", ["set5", "set14"])
def test_bicubic_baseline_reproduces_published_figures(shared_data, name):
    result = evaluate(bicubic_upscaler(4), _load(shared_data / name), 4)
    assert abs(result.psnr_y - PUBLISHED_BICUBIC_X4[name]) <= 0.02, result.psnr_y
    assert 0.6 < result.ssim_y < 0.9
    assert result.psnr_rgb < result.psnr_y  # RGB keeps the chroma error the Y channel drops


def _pil_resize(x: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(x.astype(np.float32), mode="F").resize(size_wh, 3))


def test_resize_matches_pillow_bicubic_away_from_the_edges():
    # Pillow's BICUBIC is the same a=-0.5 kernel, widened when shrinking; only the edge
    # handling differs (Pillow renormalises, MATLAB mirrors), so compare the interior.
    x = np.random.default_rng(0).uniform(0, 255, (64, 48))
    down = imresize(x[:, :, None], 0.25, (16, 12))[:, :, 0]
    np.testing.assert_allclose(down[2:-2, 2:-2], _pil_resize(x, (12, 16))[2:-2, 2:-2], atol=1e-3)
    up = imresize(x[:, :, None], 4, (256, 192))[:, :, 0]
    np.testing.assert_allclose(up[8:-8, 8:-8], _pil_resize(x, (192, 256))[8:-8, 8:-8], atol=1e-3)


def test_resize_preserves_constants_and_mirrors_edges():
    for in_len, out_len, scale in [(96, 24, 0.25), (24, 96, 4.0), (10, 5, 0.5)]:
        m = resize_matrix(in_len, out_len, scale)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    # a left-right mirrored image downsamples to the mirror of the downsampled image
    x = np.random.default_rng(1).integers(0, 256, (32, 40, 3)).astype(np.uint8)
    a = bicubic_downsample(x, 4)
    b = bicubic_downsample(x[:, ::-1].copy(), 4)
    np.testing.assert_array_equal(a, b[:, ::-1])


def test_bicubic_downsample_is_8bit_and_checks_divisibility():
    x = np.random.default_rng(2).integers(0, 256, (2, 16, 24, 3)).astype(np.uint8)
    lr = bicubic_downsample(x, 4)
    assert lr.shape == (2, 4, 6, 3) and lr.dtype == np.float32
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    assert lr.min() >= 0.0 and lr.max() <= 1.0
    with pytest.raises(HarnessError, match="multiple of scale 4"):
        bicubic_downsample(x[:, :15], 4)


def test_bicubic_upsample_shape_and_range():
    lr = np.random.default_rng(3).uniform(0, 1, (1, 5, 7, 3)).astype(np.float32)
    sr = bicubic_upsample(lr, 4)
    assert sr.shape == (1, 20, 28, 3) and sr.dtype == np.float32
    assert sr.min() >= 0.0 and sr.max() <= 1.0
    assert bicubic_upsample(lr[0], 2).shape == (10, 14, 3)


def test_to_uint8_rounds_half_up_and_clips():
    x = np.array([-0.1, 0.0, 0.5 / 255, 0.49 / 255, 1.0, 1.3])
    np.testing.assert_array_equal(to_uint8(x), [0, 0, 1, 0, 255, 255])


def test_y_channel_is_bt601_studio_swing():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    y = rgb_to_y(rgb)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16 + 65.481], atol=1e-9)


def test_psnr_known_value_and_identity():
    a = np.zeros((4, 4))
    assert psnr(a, a) == PSNR_CAP == 100.0
    assert psnr(a, a + 1.0) == pytest.approx(20 * math.log10(255.0))


def _wang_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM as Wang et al. (2004) define it, in NumPy: an 11x11 Gaussian window (sigma 1.5),
    K1 = 0.01, K2 = 0.03, L = 255, the mean of the map over the positions where the window
    fits (what MATLAB's ``ssim_index`` and the SR literature report)."""
    g = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(x: np.ndarray) -> np.ndarray:
        views = np.lib.stride_tricks.sliding_window_view(x, (11, 11))
        return np.einsum("ijkl,kl->ij", views, window)

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())


def test_ssim_matches_the_published_formula(shared_data):
    hr = images.read_image(shared_data / "set5" / "baby.png")
    y = rgb_to_y(hr)[:200, :180]
    rng = np.random.default_rng(4)
    for noisy in (np.clip(y + rng.normal(0, 8, y.shape), 0, 255), y[::-1], y * 0.7 + 20):
        assert ssim(y, noisy) == pytest.approx(_wang_ssim(y, noisy), abs=1e-6)
    assert ssim(y, y) == pytest.approx(1.0)
    with pytest.raises(HarnessError, match="at least 11x11"):
        ssim(y[:8, :8], y[:8, :8])


def _hr_set() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    return [
        ("a", rng.integers(0, 256, (50, 42, 3)).astype(np.uint8)),
        ("b", rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)),
    ]


def test_evaluate_crops_to_scale_and_reports_per_image_and_mean():
    seen = []

    def oracle(lr: np.ndarray) -> np.ndarray:
        seen.append(lr.shape)
        return bicubic_upsample(lr, 4)

    result = evaluate(oracle, _hr_set(), 4)
    assert seen == [(1, 12, 10, 3), (1, 10, 10, 3)]  # 50x42 cropped to 48x40
    assert [s.name for s in result.images] == ["a", "b"]
    assert result.psnr_y == pytest.approx(np.mean([s.psnr_y for s in result.images]))
    report = result.to_dict()
    assert report["count"] == 2 and set(report["mean"]) == {"psnr_y", "ssim_y", "psnr_rgb"}


def test_evaluate_scores_the_rounded_output_and_extra_metrics():
    hr = _hr_set()[1][1]

    def perfect(lr: np.ndarray) -> np.ndarray:
        return (hr[None].astype(np.float32) + 0.4) / 255.0  # rounds back to hr exactly

    def mean_abs(sr: np.ndarray, ref: np.ndarray) -> float:
        assert sr.shape == (32, 32, 3)  # border-cropped
        return float(np.abs(sr.astype(int) - ref).mean())

    result = evaluate(perfect, [("b", hr)], 4, extra={"mae": mean_abs})
    assert result.psnr_y == PSNR_CAP and result.ssim_y == pytest.approx(1.0)
    assert result.mean("mae") == 0.0 and result.measures[-1] == "mae"


def test_a_flat_image_caps_its_psnr_says_so_and_the_mean_stays_finite():
    rng = np.random.default_rng(0)
    flat = np.full((32, 32, 3), 128, np.uint8)  # bicubic of a flat image is the same image
    textured = rng.integers(0, 256, (32, 32, 3), np.uint8)
    result = evaluate(bicubic_upscaler(4), [("flat", flat), ("textured", textured)], 4)
    capped, other = result.images
    assert capped.psnr_y == PSNR_CAP and capped.capped == ("psnr_y", "psnr_rgb")
    assert "capped at 100 dB" in capped.as_dict()["note"] and "note" not in other.as_dict()
    assert result.psnr_y == pytest.approx((PSNR_CAP + other.psnr_y) / 2)
    json.dumps(result.to_dict(), allow_nan=False)  # standard JSON: no Infinity


def test_evaluate_rejects_a_wrong_output_shape():
    with pytest.raises(HarnessError, match="expected .*scale 4"):
        evaluate(lambda lr: bicubic_upsample(lr, 2), _hr_set(), 4)


def test_tables_print_each_measure_with_its_protocols_decimals():
    from harness_metrics.lpips import PROTOCOL

    from harness.evaluation.tables import format_measure as _fmt

    assert _fmt(28.4321, "psnr_y") == "28.43"
    assert _fmt(0.81134, "ssim_y") == "0.8113"
    assert _fmt(0.340712, "lpips", {"lpips": PROTOCOL}) == "0.3407"
    assert _fmt(0.340712, "some_metric") == "0.3407"
    assert _fmt(float("inf"), "psnr_y") == "inf"


def test_a_bad_protocol_declaration_is_named():
    def metric(sr, hr):
        return 0.0

    metric.protocol = {"crop_border": False}
    with pytest.raises(HarnessError, match="MetricProtocol"):
        metric_protocol(metric)
    with pytest.raises(HarnessError, match='"rgb" or "y"'):
        MetricProtocol(color="lab")
