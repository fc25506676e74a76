"""The protocol's image-quality figures: PSNR, scikit-image's SSIM, and the border crop.

SSIM is Wang et al.'s Gaussian-window SSIM (11x11, sigma 1.5, K1 0.01, K2 0.03, L 255), the mean
of the "valid" SSIM map, computed by scikit-image. Both run on whatever channel they are given;
the protocol gives them the BT.601 luma (:func:`harness.plugin_api.metrics.rgb_to_y`).
"""

from __future__ import annotations

import math

import numpy as np

from harness.errors import HarnessError

PSNR_CAP = 100.0
"""The most PSNR a comparison can score, in dB. Identical images have an infinite PSNR, which
would make a set's mean infinite (one flat image among a hundred) and is not a JSON number;
capping it (as many SR toolkits do) keeps the mean finite and the image's weight bounded. An
8-bit error of one level in one pixel of a 10-megapixel image is 118 dB, so the cap only ever
meets images equal, or all but equal, to their reference."""


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, at most :data:`PSNR_CAP` (identical images)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return PSNR_CAP
    return min(10.0 * math.log10(data_range * data_range / mse), PSNR_CAP)


SSIM_WINDOW = 11
"""The SSIM window's side: scikit-image's Gaussian window of sigma 1.5 (cut at 3.5 sigma)."""


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Wang et al. (2004) SSIM of two 2-D images, the literature's configuration.

    scikit-image computes it: an 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, population
    (not sample) covariances, ``data_range`` 255 for the Y channel, the mean of the map without
    the 5-pixel margin the window cannot cover (the "valid" map of the MATLAB script).
    """
    from skimage.metrics import structural_similarity  # SciPy-heavy: loaded when SSIM runs

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise HarnessError(f"ssim needs two 2-D images of equal shape, got {x.shape}, {y.shape}.")
    if min(x.shape) < SSIM_WINDOW:
        raise HarnessError(
            f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (after the border "
            f"crop), got {x.shape[1]}x{x.shape[0]}."
        )
    return float(
        structural_similarity(
            x,
            y,
            gaussian_weights=True,
            sigma=1.5,
            win_size=SSIM_WINDOW,
            K1=0.01,
            K2=0.03,
            use_sample_covariance=False,
            data_range=data_range,
        )
    )


def crop_border(image: np.ndarray, border: int) -> np.ndarray:
    """``image`` without ``border`` pixels on each side."""
    if border <= 0:
        return image
    return image[border:-border, border:-border]
