"""Evaluation: the literature's protocol (PSNR/SSIM on Y, border crop, MATLAB bicubic), metric
protocols, reports and loss comparisons.
"""
