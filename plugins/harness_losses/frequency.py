"""The focal frequency loss (Jiang, Dai, Wu and Loy, "Focal Frequency Loss for Image
Reconstruction and Synthesis", ICCV 2021), as the authors' ``focal-frequency-loss`` package
defines it.

Both images are cut into ``patch_factor**2`` patches, each channel is Fourier transformed
(orthonormal 2-D DFT), and the squared distance of the spectra ``|F_sr - F_hr|^2`` is weighted
per frequency by the spectrum weight matrix ``w = |F_sr - F_hr|^alpha`` (optionally ``log(w +
1)``), scaled to ``[0, 1]`` by its maximum (per patch and channel, or over the whole batch with
``batch_matrix``) and held constant (no gradient), then averaged.
"""

from __future__ import annotations

import tensorflow as tf

from harness.errors import ConfigError
from harness.plugin_api.losses import Loss


def spectrum(images, patch_factor: int) -> tf.Tensor:
    """``(N, P, C, h, w)`` complex64 orthonormal DFT of each patch and channel of NHWC
    ``images`` (the patches in row order, as the reference's ``tensor2freq``)."""
    x = tf.transpose(tf.cast(images, tf.float32), [0, 3, 1, 2])  # NCHW
    h, w = x.shape[2] // patch_factor, x.shape[3] // patch_factor
    patches = [
        x[:, :, i * h : (i + 1) * h, j * w : (j + 1) * w]
        for i in range(patch_factor)
        for j in range(patch_factor)
    ]
    y = tf.stack(patches, 1)
    return tf.signal.fft2d(tf.complex(y, tf.zeros_like(y))) / tf.cast(
        tf.sqrt(float(h * w)), tf.complex64
    )


def focal_frequency(
    alpha: float = 1.0,
    patch_factor: int = 1,
    ave_spectrum: bool = False,
    log_matrix: bool = False,
    batch_matrix: bool = False,
) -> Loss:
    """The focal frequency loss; the parameters and defaults are the reference's.

    Args:
        alpha: the exponent of the spectrum weight matrix.
        patch_factor: cut each image into ``patch_factor x patch_factor`` patches.
        ave_spectrum: compare the batch-mean spectra.
        log_matrix: weight by ``log(|F_sr - F_hr|^alpha + 1)``.
        batch_matrix: normalise the weights by the batch maximum, not per patch and channel.
    """
    if patch_factor < 1:
        raise ConfigError(f"focal_frequency: patch_factor must be >= 1, not {patch_factor}.")

    def loss(sr, hr):
        f_sr, f_hr = spectrum(sr, patch_factor), spectrum(hr, patch_factor)
        if ave_spectrum:
            f_sr = tf.reduce_mean(f_sr, 0, keepdims=True)
            f_hr = tf.reduce_mean(f_hr, 0, keepdims=True)
        diff = f_sr - f_hr
        distance = tf.square(tf.math.real(diff)) + tf.square(tf.math.imag(diff))
        matrix = tf.stop_gradient(tf.sqrt(distance) ** alpha)
        if log_matrix:
            matrix = tf.math.log(matrix + 1.0)
        if batch_matrix:
            matrix = matrix / tf.reduce_max(matrix)
        else:
            matrix = matrix / tf.reduce_max(matrix, axis=[-2, -1], keepdims=True)
        matrix = tf.where(tf.math.is_nan(matrix), tf.zeros_like(matrix), matrix)
        matrix = tf.stop_gradient(tf.clip_by_value(matrix, 0.0, 1.0))
        return tf.reduce_mean(matrix * distance)

    return loss
