"""Real-ESRGAN's second-order degradation (Wang et al., "Real-ESRGAN: Training Real-World Blind
Super-Resolution with Pure Synthetic Data", ICCVW 2021), as BasicSR's ``degradations.py``,
Real-ESRGAN's ``RealESRGANDataset`` and ``RealESRGANModel.feed_data`` define it, written in
TensorFlow ops so it runs inside a ``tf.data`` map.

Every random draw is stateless and comes from the ``seed`` key handed to ``degrade``: the same
HR image and seed always give the same LR image. Blur kernels live on a fixed odd grid (21 x 21
with the defaults); a smaller kernel is zero outside its own window, so shapes stay static and no
branch is needed to build one. The departures from BasicSR are listed in ``docs/degradations.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from harness.errors import ConfigError

KERNELS = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
RESIZE_MODES = ("area", "bilinear", "bicubic")
# Per-kernel-type codes: shape family (0 Gaussian, 1 generalized Gaussian, 2 plateau), isotropic.
_FAMILY = {"iso": 0, "aniso": 0, "generalized_iso": 1, "generalized_aniso": 1}
_FAMILY |= {"plateau_iso": 2, "plateau_aniso": 2}
# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale and tf.image.rgb_to_grayscale.
_LUMA = (0.2989, 0.5870, 0.1140)

Degrade = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


# ----------------------------------------------------------------------------- random draws


class _Draws:
    """The random numbers of one image, all derived from one seed: a block of scalar uniforms
    drawn at once (one op, where a key per scalar made thousands of ops to trace), and an
    independent key per noise field."""

    SCALARS = 96

    def __init__(self, seed: tf.Tensor, stream: int = 0) -> None:
        self.seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), stream)
        self.scalars = tf.random.stateless_uniform([self.SCALARS], self.seed, dtype=tf.float32)
        self.count = 0
        self.keys = 0

    def key(self) -> tf.Tensor:
        self.keys += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.keys)

    def uniform(self, low: float | tf.Tensor = 0.0, high: float | tf.Tensor = 1.0) -> tf.Tensor:
        if self.count == self.SCALARS:
            raise RuntimeError("realesrgan drew more scalars than _Draws.SCALARS holds")
        u = self.scalars[self.count]
        self.count += 1
        return low + (high - low) * u

    def chance(self, p: float) -> tf.Tensor:
        """True with probability ``p`` (``uniform() < p``, as BasicSR)."""
        return self.uniform() < p

    def choice(self, probs: Sequence[float]) -> tf.Tensor:
        """An int32 index drawn with the given (not necessarily normalised) weights."""
        total = float(sum(probs))
        edges = tf.constant([sum(probs[: i + 1]) / total for i in range(len(probs) - 1)])
        return tf.reduce_sum(tf.cast(edges <= self.uniform(), tf.int32))

    def integer(self, n: int) -> tf.Tensor:
        """An int32 uniformly in ``[0, n)``."""
        return tf.minimum(tf.cast(self.uniform() * n, tf.int32), n - 1)

    def beta(self, beta_range: Sequence[float]) -> tf.Tensor:
        """BasicSR's shape parameter: half the time below 1, half the time above."""
        low, high = beta_range
        below = self.uniform(min(low, 1.0), 1.0)
        above = self.uniform(1.0, max(high, 1.0))
        return tf.where(self.chance(0.5), below, above)


# ----------------------------------------------------------------------------- kernels


def _grid(grid: int) -> tuple[tf.Tensor, tf.Tensor]:
    """x (columns) and y (rows) offsets from the centre of a (grid, grid) kernel, as constants."""
    ax = np.arange(-(grid // 2), grid // 2 + 1, dtype=np.float32)
    xx, yy = np.meshgrid(ax, ax)
    return tf.constant(xx), tf.constant(yy)


def _window(size: tf.Tensor, grid: int) -> tf.Tensor:
    """1 inside the centred ``size`` x ``size`` window of the grid, 0 outside."""
    ax = np.abs(np.arange(-(grid // 2), grid // 2 + 1))
    chebyshev = tf.constant(np.maximum.outer(ax, ax).astype(np.int32))
    return tf.cast(chebyshev <= tf.cast(size, tf.int32) // 2, tf.float32)


def _normalise(kernel: tf.Tensor, size: tf.Tensor, grid: int) -> tf.Tensor:
    kernel = kernel * _window(size, grid)
    return kernel / tf.reduce_sum(kernel)


def mixed_kernel(
    family: tf.Tensor | int,
    sigma_x: tf.Tensor | float,
    sigma_y: tf.Tensor | float,
    theta: tf.Tensor | float,
    beta: tf.Tensor | float,
    size: tf.Tensor | int,
    grid: int = 21,
) -> tf.Tensor:
    """A normalised (grid, grid) blur kernel, zero outside its centred ``size`` window.

    ``family`` 0 is the bivariate Gaussian ``exp(-q / 2)``, 1 the generalized Gaussian
    ``exp(-q**beta / 2)`` (beta = 1 is the Gaussian), 2 the plateau ``1 / (1 + q**beta)``, where
    ``q = x' S^-1 x`` and ``S`` is the covariance with standard deviations ``sigma_x``,
    ``sigma_y`` rotated by ``theta`` radians (BasicSR's ``bivariate_*`` kernels).
    """
    sigma_x = tf.cast(sigma_x, tf.float32)
    sigma_y = tf.cast(sigma_y, tf.float32)
    theta = tf.cast(theta, tf.float32)
    beta = tf.cast(beta, tf.float32)
    xx, yy = _grid(grid)
    # Coordinates in the rotated frame: S^-1 = U diag(1/sx^2, 1/sy^2) U^T.
    c, s = tf.cos(theta), tf.sin(theta)
    u = c * xx + s * yy
    v = -s * xx + c * yy
    q = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    q_beta = tf.pow(q, beta)
    kernels = tf.stack([tf.exp(-0.5 * q), tf.exp(-0.5 * q_beta), 1.0 / (q_beta + 1.0)])
    return _normalise(tf.gather(kernels, family), tf.convert_to_tensor(size), grid)


def sinc_kernel(cutoff: tf.Tensor | float, size: tf.Tensor | int, grid: int = 21) -> tf.Tensor:
    """A normalised (grid, grid) 2D sinc (circular low-pass) kernel with cutoff frequency
    ``cutoff`` radians, zero outside its centred ``size`` window (BasicSR's
    ``circular_lowpass_kernel``: ``cutoff J1(cutoff r) / (2 pi r)``)."""
    cutoff = tf.cast(cutoff, tf.float32)
    xx, yy = _grid(grid)
    r = tf.sqrt(xx**2 + yy**2)
    safe_r = tf.where(r > 0, r, tf.ones_like(r))
    kernel = cutoff * tf.math.special.bessel_j1(cutoff * safe_r) / (2.0 * math.pi * safe_r)
    kernel = tf.where(r > 0, kernel, cutoff**2 / (4.0 * math.pi))
    return _normalise(kernel, tf.convert_to_tensor(size), grid)


# ----------------------------------------------------------------------------- image ops


def _reflect_indices(n: tf.Tensor, pad: int) -> tf.Tensor:
    """Indices of a reflect-padded axis (``a b c | b a`` as ``torch.nn.functional.pad``),
    folding again when ``pad`` exceeds the axis, so any size works."""
    idx = tf.range(-pad, n + pad)
    period = tf.maximum(2 * (n - 1), 1)
    idx = tf.math.floormod(idx, period)
    return tf.where(idx >= n, period - idx, idx)


def filter2d(image: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """Correlate an (H, W, C) image with a square odd (K, K) kernel per channel, reflect padding
    (BasicSR's ``filter2D``, an ``F.conv2d``); the output has the input's size.

    It multiplies spectra (``rfft2d``) instead of calling a convolution: on a CPU, a 21 x 21
    depthwise convolution is ten times slower than the FFT of a training crop."""
    k = kernel.shape[0]
    pad = k // 2
    shape = tf.shape(image)
    padded = tf.gather(image, _reflect_indices(shape[0], pad), axis=0)
    padded = tf.gather(padded, _reflect_indices(shape[1], pad), axis=1)
    height, width = shape[0] + 2 * pad, shape[1] + 2 * pad
    planes = tf.transpose(padded, [2, 0, 1])
    # Circular convolution with the flipped kernel; its valid part starts at K - 1.
    flipped = tf.pad(kernel[::-1, ::-1], [[0, height - k], [0, width - k]])
    spectrum = tf.signal.rfft2d(planes) * tf.signal.rfft2d(flipped)
    out = tf.signal.irfft2d(spectrum, fft_length=[height, width])[:, k - 1 :, k - 1 :]
    return tf.ensure_shape(tf.transpose(out, [1, 2, 0]), image.shape)


def _resize(image: tf.Tensor, size: tf.Tensor, mode: tf.Tensor, modes: Sequence[str]) -> tf.Tensor:
    """Resize to ``size`` with ``modes[mode]`` (no antialiasing, as ``F.interpolate``)."""
    size = tf.maximum(tf.cast(size, tf.int32), 1)

    def branch(name: str) -> Callable[[], tf.Tensor]:
        return lambda: tf.image.resize(image, size, method=name)

    out = tf.switch_case(mode, [branch(m) for m in modes]) if len(modes) > 1 else branch(modes[0])()
    return tf.ensure_shape(out, [None, None, image.shape[-1]])


def _gray(image: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(image * tf.constant(_LUMA), axis=-1, keepdims=True)


def _poisson_noise(image: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """BasicSR's Poisson noise: the image on 8-bit levels, scaled by the next power of two
    above its count of distinct levels, sampled as photon counts; returns sample - image."""
    levels = tf.clip_by_value(tf.round(image * 255.0), 0.0, 255.0)
    distinct = tf.math.count_nonzero(tf.math.bincount(tf.cast(levels, tf.int32), minlength=256))
    vals = tf.pow(2.0, tf.math.ceil(tf.math.log(tf.cast(distinct, tf.float32)) / math.log(2.0)))
    image = levels / 255.0
    return _poisson(image * vals, key) / vals - image


EXACT_POISSON_BELOW = 32.0
"""Mean photon count below which Poisson noise is sampled exactly; above it, from the rounded
normal approximation N(lam, lam), whose skew (1 / sqrt(lam) < 0.18) no image shows, at a
seventh of the cost of TensorFlow's Poisson sampler."""


def _poisson(lam: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """Poisson samples of mean ``lam``: exact for the dark pixels (below
    ``EXACT_POISSON_BELOW``), the rounded normal approximation for the others."""
    normal_key = tf.random.experimental.stateless_fold_in(key, 1)
    poisson_key = tf.random.experimental.stateless_fold_in(key, 2)
    approx = tf.round(lam + tf.sqrt(lam) * tf.random.stateless_normal(tf.shape(lam), normal_key))
    dark = tf.where(lam < EXACT_POISSON_BELOW)
    rates = tf.gather_nd(lam, dark)
    exact = tf.random.stateless_poisson(tf.shape(rates), poisson_key, rates, dtype=tf.float32)
    return tf.tensor_scatter_nd_update(tf.maximum(approx, 0.0), dark, exact)


def _noise(image: tf.Tensor, draws: _Draws, p_gauss: float, sigma, poisson, p_gray) -> tf.Tensor:
    """Gaussian noise (probability ``p_gauss``, sigma in 8-bit units) or Poisson noise, gray
    (the same on all channels) with probability ``p_gray``; clipped to [0, 1]."""
    gray = draws.chance(p_gray)
    use_gauss = draws.chance(p_gauss)
    std = draws.uniform(*sigma) / 255.0
    scale = draws.uniform(*poisson)
    gauss_key, poisson_key = draws.key(), draws.key()

    def one_plane(noise: tf.Tensor) -> tf.Tensor:
        """Gray noise: the first channel's field on every channel."""
        return tf.where(gray, noise[..., :1], noise)

    def gaussian() -> tf.Tensor:
        return one_plane(tf.random.stateless_normal(tf.shape(image), gauss_key) * std)

    def shot() -> tf.Tensor:
        source = tf.where(gray, _gray(image), image)  # gray noise counts the gray image's photons
        return one_plane(_poisson_noise(source, poisson_key)) * scale

    out = image + tf.cond(use_gauss, gaussian, shot)
    return tf.clip_by_value(out, 0.0, 1.0)


def _jpeg_quality(draws: _Draws, quality_range: Sequence[float]) -> tf.Tensor:
    """A JPEG quality drawn from ``quality_range``, rounded to an integer."""
    low, high = quality_range
    return tf.cast(tf.round(draws.uniform(float(low), float(high))), tf.int32)


def _jpeg(image: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
    """A JPEG round trip (libjpeg, 4:2:0 chroma) of the image clipped to [0, 1]."""
    image = tf.clip_by_value(image, 0.0, 1.0)
    return tf.ensure_shape(tf.image.adjust_jpeg_quality(image, quality), image.shape)


# ----------------------------------------------------------------------------- the factory


def realesrgan(
    scale: int = 4,
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1),
    resize_range: tuple[float, float] = (0.15, 1.5),
    gaussian_noise_prob: float = 0.5,
    noise_range: tuple[float, float] = (1.0, 30.0),
    poisson_scale_range: tuple[float, float] = (0.05, 3.0),
    gray_noise_prob: float = 0.4,
    jpeg_range: tuple[float, float] = (30.0, 95.0),
    second_blur_prob: float = 0.8,
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3),
    resize_range2: tuple[float, float] = (0.3, 1.2),
    gaussian_noise_prob2: float = 0.5,
    noise_range2: tuple[float, float] = (1.0, 25.0),
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5),
    gray_noise_prob2: float = 0.4,
    jpeg_range2: tuple[float, float] = (30.0, 95.0),
    kernel_list: tuple[str, ...] = KERNELS,
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
    sinc_prob: float = 0.1,
    blur_sigma: tuple[float, float] = (0.2, 3.0),
    betag_range: tuple[float, float] = (0.5, 4.0),
    betap_range: tuple[float, float] = (1.0, 2.0),
    kernel_list2: tuple[str, ...] = KERNELS,
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
    sinc_prob2: float = 0.1,
    blur_sigma2: tuple[float, float] = (0.2, 1.5),
    betag_range2: tuple[float, float] = (0.5, 4.0),
    betap_range2: tuple[float, float] = (1.0, 2.0),
    final_sinc_prob: float = 0.8,
    kernel_size_range: tuple[int, int] = (7, 21),
    resize_modes: tuple[str, ...] = RESIZE_MODES,
) -> Degrade:
    """Real-ESRGAN's second-order degradation: (blur, random resize, Gaussian or Poisson noise,
    JPEG) twice, then the resize to the LR size with a sinc filter and a last JPEG in random
    order (Wang et al., ICCVW 2021). Defaults are Real-ESRGAN's ``train_realesrgan_x4plus.yml``.

    Args:
        scale: downscaling factor (from ``[data] scale``).
        resize_prob: weights of resizing up, down, or keeping the size in the first stage.
        resize_range: the first stage's resize factor range (down: ``[low, 1]``, up:
            ``[1, high]``).
        gaussian_noise_prob: probability of Gaussian noise, else Poisson noise, in the first
            stage.
        noise_range: the first stage's Gaussian noise sigma range, in 8-bit levels.
        poisson_scale_range: the first stage's Poisson noise scale range.
        gray_noise_prob: probability that the first stage's noise is gray (one plane for all
            channels).
        jpeg_range: the first stage's JPEG quality range (1-100).
        second_blur_prob: probability that the second stage blurs.
        resize_prob2: as ``resize_prob``, second stage (factor relative to the LR size).
        resize_range2: as ``resize_range``, second stage.
        gaussian_noise_prob2: as ``gaussian_noise_prob``, second stage.
        noise_range2: as ``noise_range``, second stage.
        poisson_scale_range2: as ``poisson_scale_range``, second stage.
        gray_noise_prob2: as ``gray_noise_prob``, second stage.
        jpeg_range2: JPEG quality range of the final compression.
        kernel_list: the first stage's blur kernel types, from ``iso``, ``aniso``,
            ``generalized_iso``, ``generalized_aniso``, ``plateau_iso``, ``plateau_aniso``.
        kernel_prob: weights of the ``kernel_list`` entries.
        sinc_prob: probability that the first stage's blur is a 2D sinc kernel instead.
        blur_sigma: the first stage's kernel standard deviation range, in pixels (each axis of
            an anisotropic kernel draws its own).
        betag_range: shape parameter range of the generalized Gaussian kernels (beta = 1 is
            the Gaussian; half the draws fall below 1, half above).
        betap_range: shape parameter range of the plateau kernels.
        kernel_list2: as ``kernel_list``, second stage.
        kernel_prob2: as ``kernel_prob``, second stage.
        sinc_prob2: as ``sinc_prob``, second stage.
        blur_sigma2: as ``blur_sigma``, second stage.
        betag_range2: as ``betag_range``, second stage.
        betap_range2: as ``betap_range``, second stage.
        final_sinc_prob: probability of the sinc filter after the final resize.
        kernel_size_range: odd smallest and largest kernel size; each kernel draws an odd size
            in it (Real-ESRGAN: 7 to 21).
        resize_modes: interpolations a resize draws from (``area``, ``bilinear``,
            ``bicubic``).
    """
    _check(locals())
    grid = int(kernel_size_range[1])
    sizes = list(range(int(kernel_size_range[0]), grid + 1, 2))
    modes = tuple(resize_modes)

    def random_kernel(draws: _Draws, kinds, probs, sigma, betag, betap, p_sinc) -> tf.Tensor:
        """One stage's blur kernel (``RealESRGANDataset.__getitem__``)."""
        size = tf.gather(sizes, draws.integer(len(sizes)))
        kind = draws.choice(probs)
        family = tf.gather([_FAMILY[k] for k in kinds], kind)
        isotropic = tf.gather([k.endswith("_iso") or k == "iso" for k in kinds], kind)
        sigma_x = draws.uniform(*sigma)
        sigma_y = tf.where(isotropic, sigma_x, draws.uniform(*sigma))
        theta = tf.where(isotropic, 0.0, draws.uniform(-math.pi, math.pi))
        beta = tf.where(family == 2, draws.beta(betap), draws.beta(betag))
        blur = mixed_kernel(family, sigma_x, sigma_y, theta, beta, size, grid)
        low = tf.where(size < 13, math.pi / 3, math.pi / 5)
        sinc = sinc_kernel(draws.uniform(low, math.pi), size, grid)
        return tf.where(draws.chance(p_sinc), sinc, blur)

    def random_factor(draws: _Draws, probs, factor_range) -> tf.Tensor:
        way = draws.choice(probs)  # 0 up, 1 down, 2 keep
        up = draws.uniform(1.0, factor_range[1])
        down = draws.uniform(factor_range[0], 1.0)
        return tf.gather(tf.stack([up, down, 1.0]), way)

    # Plain TensorFlow ops throughout: AutoGraph has nothing to convert, and converting this
    # much code on every trace (each tf.data map, each tf.function) took seconds.
    @tf.autograph.experimental.do_not_convert
    def degrade(hr: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        hr = tf.ensure_shape(tf.convert_to_tensor(hr, tf.float32), [None, None, 3])
        draws = _Draws(seed)
        shape = tf.shape(hr)
        height, width = shape[0], shape[1]
        lr_size = tf.stack([height // scale, width // scale])

        # The first stage.
        kernel1 = random_kernel(
            draws, kernel_list, kernel_prob, blur_sigma, betag_range, betap_range, sinc_prob
        )
        out = filter2d(hr, kernel1)
        factor = random_factor(draws, resize_prob, resize_range)
        size = tf.cast(tf.cast(tf.stack([height, width]), tf.float32) * factor, tf.int32)
        out = _resize(out, size, draws.integer(len(modes)), modes)
        out = _noise(
            out, draws, gaussian_noise_prob, noise_range, poisson_scale_range, gray_noise_prob
        )
        out = _jpeg(out, _jpeg_quality(draws, jpeg_range))

        # The second stage.
        kernel2 = random_kernel(
            draws, kernel_list2, kernel_prob2, blur_sigma2, betag_range2, betap_range2, sinc_prob2
        )
        blurred = draws.chance(second_blur_prob)
        out = tf.cond(blurred, lambda: filter2d(out, kernel2), lambda: tf.identity(out))
        factor = random_factor(draws, resize_prob2, resize_range2)
        size = tf.cast(tf.cast(tf.stack([height, width]), tf.float32) / scale * factor, tf.int32)
        out = _resize(out, size, draws.integer(len(modes)), modes)
        out = _noise(
            out, draws, gaussian_noise_prob2, noise_range2, poisson_scale_range2, gray_noise_prob2
        )

        # The final resize + sinc filter and JPEG, in random order.
        final_size = tf.gather(sizes, draws.integer(len(sizes)))
        final_sinc = sinc_kernel(draws.uniform(math.pi / 3, math.pi), final_size, grid)
        filtered = draws.chance(final_sinc_prob)
        final_mode = draws.integer(len(modes))
        quality = _jpeg_quality(draws, jpeg_range2)
        jpeg_first = draws.chance(0.5)

        def maybe_jpeg(image: tf.Tensor, now: tf.Tensor) -> tf.Tensor:
            return tf.cond(now, lambda: _jpeg(image, quality), lambda: tf.identity(image))

        out = maybe_jpeg(out, jpeg_first)
        out = _resize(out, lr_size, final_mode, modes)
        out = tf.cond(filtered, lambda: filter2d(out, final_sinc), lambda: tf.identity(out))
        out = maybe_jpeg(out, tf.logical_not(jpeg_first))
        static = hr.shape
        lr_shape = [None if n is None else n // scale for n in static[:2]]
        return tf.ensure_shape(out, [*lr_shape, 3])

    return degrade


# ----------------------------------------------------------------------------- checks


PROBABILITIES = (
    "gaussian_noise_prob",
    "gray_noise_prob",
    "second_blur_prob",
    "gaussian_noise_prob2",
    "gray_noise_prob2",
    "sinc_prob",
    "sinc_prob2",
    "final_sinc_prob",
)
# Range parameters: lowest allowed low, highest allowed high (None: unbounded).
RANGES = {
    "resize_range": (0.0, None),
    "resize_range2": (0.0, None),
    "noise_range": (0.0, None),
    "noise_range2": (0.0, None),
    "poisson_scale_range": (0.0, None),
    "poisson_scale_range2": (0.0, None),
    "jpeg_range": (1.0, 100.0),
    "jpeg_range2": (1.0, 100.0),
    "blur_sigma": (0.0, None),
    "blur_sigma2": (0.0, None),
    "betag_range": (0.0, None),
    "betag_range2": (0.0, None),
    "betap_range": (0.0, None),
    "betap_range2": (0.0, None),
}
# Ranges whose low end may be 0 (no noise); the others must stay above 0.
ZERO_ALLOWED = ("noise_range", "noise_range2", "poisson_scale_range", "poisson_scale_range2")


def _check(params: dict) -> None:
    """One clear error per bad parameter, naming the key of ``[data.degradation]``."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f'data.degradation.{key} of "realesrgan" {message}')

    if not isinstance(params["scale"], int) or params["scale"] < 1:
        fail("scale", f"must be a positive integer, not {params['scale']!r}.")
    for key in PROBABILITIES:
        value = params[key]
        if isinstance(value, bool) or not 0.0 <= value <= 1.0:
            fail(key, f"is a probability: give a number in [0, 1], not {value!r}.")
    for key in ("resize_prob", "resize_prob2", "kernel_prob", "kernel_prob2"):
        weights = params[key]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            fail(key, f"must be weights >= 0 with a positive sum, not {list(weights)}.")
    for key in ("resize_prob", "resize_prob2"):
        if len(params[key]) != 3:
            fail(key, f"takes three weights (up, down, keep), not {list(params[key])}.")
    for kinds, probs in (("kernel_list", "kernel_prob"), ("kernel_list2", "kernel_prob2")):
        unknown = [k for k in params[kinds] if k not in KERNELS]
        if unknown or not params[kinds]:
            fail(kinds, f"has unknown kernel types {unknown}; known: {', '.join(KERNELS)}.")
        if len(params[kinds]) != len(params[probs]):
            fail(probs, f"needs one weight per entry of {kinds} ({len(params[kinds])}).")
    for key, (floor, ceiling) in RANGES.items():
        value = params[key]
        if len(value) != 2 or value[0] > value[1]:
            fail(key, f"must be [low, high] with low <= high, not {list(value)}.")
        if ceiling is None:
            ok, bounds = value[0] >= floor, f">= {floor:g}"
            if floor == 0.0 and key not in ZERO_ALLOWED:
                ok, bounds = value[0] > 0.0, "> 0"
        else:
            ok, bounds = floor <= value[0] and value[1] <= ceiling, f"[{floor:g}, {ceiling:g}]"
        if not ok:
            fail(key, f"must lie in {bounds}, not {list(value)}.")
    sizes = list(params["kernel_size_range"])
    if len(sizes) != 2 or not (
        sizes[0] % 2 == 1 and sizes[1] % 2 == 1 and 1 <= sizes[0] <= sizes[1]
    ):
        fail("kernel_size_range", f"must be two odd sizes, low <= high, not {sizes}.")
    modes = params["resize_modes"]
    if not modes or any(m not in RESIZE_MODES for m in modes):
        fail("resize_modes", f"must be a non-empty list of {', '.join(RESIZE_MODES)}.")
