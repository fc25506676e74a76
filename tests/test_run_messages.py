"""What a run says at a validation, in order, and the sample grid's legibility as a thumbnail."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from harness.measures.bicubic import bicubic_upscaler
from harness.training import callbacks as cb
from harness.training.validation import MIN_TILE, caption_height, sample_grid, tile_factor


def _run() -> SimpleNamespace:
    """The parts of a :class:`~harness.training.callbacks.Run` the validation callbacks read."""
    logged: list = []
    kept = SimpleNamespace(
        update=lambda model, step, metrics: ["best_psnr_y"],
        tracked={"best_psnr_y": ("val/psnr_y", True)},
    )
    return SimpleNamespace(
        exp=SimpleNamespace(
            train=SimpleNamespace(log_every=10, steps=4, batch_size=2, checkpoint_every=100),
            source="x.toml",
        ),
        tracker=SimpleNamespace(log_metrics=lambda m, step: logged.append(step)),
        validator=SimpleNamespace(samples=[]),
        kept=kept,
        trainer=SimpleNamespace(final_generator=None, step=0),
        checkpoints=None,
        chief=True,
        result=cb.TrainResult("", Path("."), 0, bicubic_metrics={"val/bicubic_psnr_y": 23.31}),
    )


def test_the_validation_line_comes_before_what_it_kept_and_bicubic_is_named(capsys):
    progress = cb.Progress(total=4, initial=0, quiet=True)
    run = _run()
    run.say = progress.write
    hooks = cb.CallbackList(cb.builtin_callbacks(run, progress, {}))
    hooks.on_train_begin(run)
    hooks.on_validation(2, {"val/psnr_y": 22.73, "val/ssim_y": 0.7448})
    hooks.on_validation(4, {"val/psnr_y": 24.5, "val/ssim_y": 0.8})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("step 2: validation PSNR-Y 22.73 dB (bicubic 23.31)")
    assert lines[1] == (
        "step 2: kept as best_psnr_y.keras (psnr_y 22.73, the run's highest so far but behind "
        "bicubic's 23.31)"
    )
    assert lines[3] == "step 4: kept as best_psnr_y.keras (psnr_y 24.5, the run's highest so far)"
    assert "best psnr_y so far" not in "\n".join(lines)


def test_sample_grid_captions_stay_legible_in_a_256_pixel_thumbnail():
    rng = np.random.default_rng(0)
    for side in (32, 128):
        hr = rng.integers(0, 256, (side, side, 3)).astype(np.float32)
        grid = sample_grid(bicubic_upscaler(4), [("img", hr)], 4)
        k = tile_factor(side)
        assert side * k >= MIN_TILE
        # two caption lines: at least 10 pixels each once the grid is shrunk to 256 wide
        assert caption_height(side * k) * 256 / grid.shape[1] >= 20
        assert grid.shape[:2] == (caption_height(side * k) + side * k, 4 * side * k + 12)
