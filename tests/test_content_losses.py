"""The pixel, structural, spectral and LDL content losses, each against a NumPy implementation
of its published formula written here (or scikit-image's SSIM), on fixed random images.

Each test says what it compares and its tolerance; docs/plugins-builtin.md lists them too.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from harness_losses import charbonnier, focal_frequency, gradient, l1, ldl, ms_ssim, ssim
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import structural_similarity

from harness.errors import ConfigError
from harness.plugin_api.metrics import rgb_to_y

RNG = np.random.default_rng(7)
# SR near HR (as in training), so SSIM and the artifact map are in their usual ranges.
HR = RNG.uniform(-1, 1, (2, 52, 48, 3)).astype(np.float32)
SR = np.clip(HR + RNG.normal(0, 0.2, HR.shape), -1, 1).astype(np.float32)
EMA = np.clip(HR + RNG.normal(0, 0.2, HR.shape), -1, 1).astype(np.float32)


def value(loss, *args) -> float:
    out = loss(*args)
    assert out.dtype == tf.float32 and out.shape == ()
    return float(out)


def test_l1_and_charbonnier_are_the_published_formulas() -> None:
    """l1 = mean|sr - hr| and charbonnier = mean(sqrt((sr - hr)^2 + eps)) (BasicSR's
    CharbonnierLoss), in [-1, 1]; relative tolerance 1e-6."""
    d = SR.astype(np.float64) - HR
    assert value(l1(), SR, HR) == pytest.approx(np.abs(d).mean(), rel=1e-6)
    for eps in (1e-12, 1e-6, 1e-2):
        want = np.sqrt(d**2 + eps).mean()
        assert value(charbonnier(eps), SR, HR) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ConfigError, match="eps"):
        charbonnier(0.0)


def np_sobel_l1(sr: np.ndarray, hr: np.ndarray) -> float:
    gx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)
    out = []
    for img in (sr, hr):
        pad = np.pad(img.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="symmetric")
        win = sliding_window_view(pad, (3, 3), axis=(1, 2))  # (N, H, W, C, 3, 3)
        out.append([np.einsum("nhwcij,ij->nhwc", win, k) for k in (gx, gx.T)])
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(*out, strict=True)]))


def test_gradient_loss_is_the_sobel_l1() -> None:
    """gradient = mean |Sobel_x(sr) - Sobel_x(hr)| and the same for y, per channel, edges
    replicated by mirroring; relative tolerance 1e-5. A constant offset has no edges."""
    assert value(gradient(), SR, HR) == pytest.approx(np_sobel_l1(SR, HR), rel=1e-5)
    assert value(gradient(), HR + 0.25, HR) == pytest.approx(0.0, abs=1e-6)


def skimage_ssim(sr: np.ndarray, hr: np.ndarray, channel: str) -> float:
    if channel == "y":
        to = lambda x: rgb_to_y((x.astype(np.float64) + 1) * 127.5) / 255.0  # noqa: E731
        pairs = [(to(a), to(b), None) for a, b in zip(sr, hr, strict=True)]
    else:
        pairs = [((a + 1.0) / 2, (b + 1.0) / 2, -1) for a, b in zip(sr, hr, strict=True)]
    return float(
        np.mean(
            [
                structural_similarity(
                    a.astype(np.float64),
                    b.astype(np.float64),
                    channel_axis=axis,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    data_range=1.0,
                )
                for a, b, axis in pairs
            ]
        )
    )


@pytest.mark.parametrize("channel", ["rgb", "y"])
def test_ssim_loss_is_one_minus_scikit_image_ssim(channel: str) -> None:
    """ssim = 1 - SSIM with scikit-image's ``structural_similarity`` (Gaussian window 11 /
    sigma 1.5, K1 0.01, K2 0.03, population covariance, data range 1; Y is the protocol's
    ``rgb_to_y`` / 255); absolute tolerance 2e-5."""
    want = 1.0 - skimage_ssim(SR, HR, channel)
    assert value(ssim(channel), SR, HR) == pytest.approx(want, abs=2e-5)
    assert value(ssim(channel), HR, HR) == pytest.approx(0.0, abs=1e-6)


def np_ssim_terms(x: np.ndarray, y: np.ndarray, size: int = 11, sigma: float = 1.5):
    c = np.arange(size) - (size - 1) / 2
    g = np.exp(-(c**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def blur(a):
        return np.einsum("nhwcij,ij->nhwc", sliding_window_view(a, (size, size), axis=(1, 2)), w)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ss = (2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs
    return ss.mean((1, 2)), cs.mean((1, 2))


def np_ms_ssim(sr: np.ndarray, hr: np.ndarray, weights) -> float:
    x, y = (sr.astype(np.float64) + 1) / 2, (hr.astype(np.float64) + 1) / 2
    value = np.ones(x.shape[::3])
    for i, w in enumerate(weights):
        ss, cs = np_ssim_terms(x, y)
        value = value * (ss if i == len(weights) - 1 else cs) ** w
        n, h, wd, c = x.shape
        x = x[:, : h // 2 * 2, : wd // 2 * 2].reshape(n, h // 2, 2, wd // 2, 2, c).mean((2, 4))
        y = y[:, : h // 2 * 2, : wd // 2 * 2].reshape(n, h // 2, 2, wd // 2, 2, c).mean((2, 4))
    return float(1.0 - value.mean())


def test_ms_ssim_loss_is_the_published_product() -> None:
    """ms_ssim = 1 - mean over images and channels of prod_i cs_i^w_i * ssim_M^w_M with 2x2
    average downsampling (Wang et al. 2003), three scales on 52x48 images; NumPy reference
    written here; absolute tolerance 2e-5. Too small an image for the scales is refused."""
    weights = (0.3, 0.3, 0.4)
    want = np_ms_ssim(SR, HR, weights)
    assert value(ms_ssim(weights=weights), SR, HR) == pytest.approx(want, abs=2e-5)
    with pytest.raises(ConfigError, match="176 px"):
        ms_ssim()(SR, HR)


def np_ffl(sr, hr, alpha, patch_factor, ave_spectrum, log_matrix, batch_matrix) -> float:
    def freq(img):
        x = img.astype(np.float64).transpose(0, 3, 1, 2)
        h, w = x.shape[2] // patch_factor, x.shape[3] // patch_factor
        p = [
            x[:, :, i * h : (i + 1) * h, j * w : (j + 1) * w]
            for i in range(patch_factor)
            for j in range(patch_factor)
        ]
        return np.fft.fft2(np.stack(p, 1), norm="ortho")

    fs, fh = freq(sr), freq(hr)
    if ave_spectrum:
        fs, fh = fs.mean(0, keepdims=True), fh.mean(0, keepdims=True)
    d = np.abs(fs - fh) ** 2
    m = np.sqrt(d) ** alpha
    if log_matrix:
        m = np.log(m + 1.0)
    m = m / (m.max() if batch_matrix else m.max(axis=(-2, -1), keepdims=True))
    m = np.clip(np.nan_to_num(m, nan=0.0), 0, 1)
    return float((m * d).mean())


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"alpha": 2.0, "log_matrix": True},
        {"patch_factor": 2, "batch_matrix": True},
        {"ave_spectrum": True, "alpha": 0.5},
    ],
)
def test_focal_frequency_loss_matches_the_reference_formula(options) -> None:
    """focal_frequency against the reference's ``loss_formulation`` written in NumPy (ortho
    FFT of each patch and channel, weight |dF|^alpha, optional log, max-normalised per patch
    and channel or per batch, clipped, times |dF|^2, mean); relative tolerance 1e-4."""
    args = {
        "alpha": 1.0,
        "patch_factor": 1,
        "ave_spectrum": False,
        "log_matrix": False,
        "batch_matrix": False,
        **options,
    }
    want = np_ffl(SR, HR, **args)
    assert value(focal_frequency(**args), SR, HR) == pytest.approx(want, rel=1e-4)


def test_focal_frequency_weight_matrix_gets_no_gradient() -> None:
    """The spectrum weight matrix is a constant: the gradient is that of ``mean(w |dF|^2)``
    with ``w`` fixed, so it is zero for identical images and finite otherwise."""
    sr = tf.Variable(SR)
    with tf.GradientTape() as tape:
        out = focal_frequency()(sr, HR)
    grad = tape.gradient(out, sr)
    assert bool(tf.reduce_all(tf.math.is_finite(grad)))
    assert float(focal_frequency()(HR, HR)) == 0.0


def np_ldl(sr, hr, ema, ksize) -> float:
    s, h, e = ((a.astype(np.float64) + 1) / 2 for a in (sr, hr, ema))
    r = np.abs(h - s).sum(-1)
    r_ema = np.abs(h - e).sum(-1)
    patch = r.reshape(len(r), -1).var(axis=1, ddof=1) ** 0.2
    p = (ksize - 1) // 2
    padded = np.pad(r, ((0, 0), (p, p), (p, p)), mode="reflect")
    local = sliding_window_view(padded, (ksize, ksize), axis=(1, 2)).var(axis=(-2, -1), ddof=1)
    weight = patch[:, None, None] * local
    weight[r < r_ema] = 0.0
    return float(np.abs(weight[..., None] * s - weight[..., None] * h).mean())


@pytest.mark.parametrize("ksize", [7, 3])
def test_ldl_loss_matches_the_reference_artifact_map(ksize: int) -> None:
    """ldl against LDL's ``get_refined_artifact_map`` + L1 written in NumPy: residual summed
    over channels, patch variance (unbiased) ^ 1/5 times the unbiased local variance in a
    reflect-padded ksize window, zero where the EMA residual is larger; images in [0, 1];
    relative tolerance 1e-4."""
    want = np_ldl(SR, HR, EMA, ksize)
    assert value(ldl(ksize), SR, HR, EMA) == pytest.approx(want, rel=1e-4)
    assert value(ldl(ksize), SR, HR, SR) == pytest.approx(np_ldl(SR, HR, SR, ksize), rel=1e-4)
    with pytest.raises(ConfigError, match="odd"):
        ldl(4)
