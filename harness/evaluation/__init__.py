"""Evaluation: the literature's protocol (PSNR/SSIM on Y, border crop, MATLAB bicubic) and metric
protocols (``protocol``), the suites ``harness evaluate`` runs (``suite``), reports of trained
runs (``runs``, ``run_store``, ``report``, ``plots``, ``crops``, ``markdown``, ``writing``,
``mlflow_log``), their per-image scores and paired statistics (``per_image``, ``stats``,
``stats_text``), replicates (``replicates``), held-out metrics (``heldout``) and interpolation
curves (``interpolation``), tables (``tables``) and loss comparisons (``compare``).
"""
