"""``[sweep] pruner = "wilcoxon"``: a trial reports each validation image's score, keyed by
(validation, image), and Optuna's WilcoxonPruner stops it once it is surely worse than the
best trial on the same images."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import optuna

from harness.config.schema import SweepConfig
from harness.measures.scoring import EvalResult, ImageScore
from harness.sweep.plan import Objective, make_pruner
from harness.sweep.trial import _Reporter
from harness.training.callbacks import StopTraining


def _validator(psnr: np.ndarray) -> SimpleNamespace:
    scores = tuple(ImageScore(f"img{i}", float(v), 0.9, float(v)) for i, v in enumerate(psnr))
    return SimpleNamespace(last=EvalResult(scores, 4, 4))


def test_a_trial_worse_on_every_image_is_pruned_and_an_equal_one_is_not():
    pruner = make_pruner(SweepConfig(pruner="wilcoxon", pruner_options={"n_startup_steps": 0}))
    assert isinstance(pruner, optuna.pruners.WilcoxonPruner)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    objective = [Objective(metric="val/psnr_y", direction="maximize")]
    psnr = np.random.default_rng(0).uniform(24, 30, 8)

    def run(values: np.ndarray) -> _Reporter:
        trial = study.ask()
        reporter = _Reporter(trial, objective, per_image=True)
        reporter.on_train_begin(SimpleNamespace(validator=_validator(values)))
        try:
            reporter.on_validation(10, {"val/psnr_y": float(values.mean())})
        except StopTraining:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return reporter
        study.tell(trial, float(values.mean()))
        return reporter

    best = run(psnr)
    assert best.pruned_at is None
    assert sorted(study.trials[0].intermediate_values) == list(range(8))
    assert run(psnr - 0.5).pruned_at == 10  # worse on all 8 images: p = 0.004 < 0.1
    mixed = psnr + np.where(np.arange(8) % 2 == 0, 0.3, -0.3)  # as good on average
    assert run(mixed).pruned_at is None
