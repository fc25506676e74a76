"""Sweeps: an Optuna study whose trials are training runs, one process per trial."""
