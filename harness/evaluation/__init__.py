"""Evaluation: the literature's protocol (PSNR/SSIM on Y, border crop, MATLAB bicubic) and metric
protocols (``protocol``), the suites ``harness evaluate`` runs (``suite``), reports of trained
runs (``runs``, ``run_store``, ``report``, ``plots``, ``crops``, ``markdown``, ``writing``,
``mlflow_log``), tables (``tables``) and loss comparisons (``compare``).
"""
