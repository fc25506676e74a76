"""``harness report``: two tiny runs (the second warm-started from the first) reported on small
benchmark folders; every table number is a fresh ``harness.measures.scoring.evaluate`` of the
run's
model, the figures are PNGs, and the folder is logged to MLflow as a run named "report"."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from conftest import new_store
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service import utils as tracking_utils
from PIL import Image
from test_train import tiny

from harness.cli import cli
from harness.data.pipeline import load_folder
from harness.deploy.models import load_upscaler
from harness.errors import HarnessError
from harness.evaluation.report import ReportError, metric_functions, resolve_runs, write_report
from harness.measures.bicubic import bicubic_upscaler
from harness.measures.scoring import evaluate
from harness.plugin_api.metrics import PROTOCOL_MEASURES, format_value
from harness.training.loop import train

EXPERIMENT = "report-test"


def _write_set(folder: Path, count: int, offset: int) -> Path:
    """``count`` 48x48 crops of scikit-image's photos (real texture, so crops are meaningful)."""
    import skimage.data

    folder.mkdir(parents=True)
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee()]
    for i in range(count):
        photo = photos[(i + offset) % len(photos)]
        y, x = 60 + 37 * i, 80 + 23 * (i + offset)
        Image.fromarray(photo[y : y + 48, x : x + 48]).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory, registry):
    """Two finished tiny runs in one MLflow experiment: ``rep_base`` (MSE, validated with LPIPS
    at both steps) and ``rep_ft`` (GAN fine-tune whose generator starts from rep_base's)."""
    root = tmp_path_factory.mktemp("report")
    cwd = os.getcwd()
    os.chdir(root)  # MLflow artifacts (./mlruns) land in the temporary folder
    try:
        store = new_store(root)
        tracking = {"uri": store, "experiment": EXPERIMENT}
        base = tiny(
            root,
            experiment={"name": "rep_base", "description": "MSE base"},
            adversarial=None,
            train={"steps": 2},
            validation={"every": 1, "metrics": ["lpips"]},
            tracking=tracking,
        )
        base_result = train(base, registry=registry)
        ft = tiny(
            root,
            experiment={"name": "rep_ft", "description": "GAN fine-tune of the base"},
            generator={"init": str(base.run_dir)},
            adversarial={"name": "modified"},
            train={"steps": 2},
            tracking=tracking,
        )
        ft_result = train(ft, registry=registry)
        data = [
            str(_write_set(root / "data" / "set5", 3, 0)),
            str(_write_set(root / "data" / "set14", 2, 1)),
        ]
        yield {
            "root": root,
            "store": store,
            "base": base.run_dir,
            "ft": ft.run_dir,
            "base_id": base_result.run_id,
            "ft_id": ft_result.run_id,
            "data": data,
        }
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def cli_report(env):
    out = env["root"] / "out"
    args = ["report", str(env["base"]), str(env["ft"]), "-o", str(out)]
    args += [x for d in env["data"] for x in ("--data", d)]
    args += ["--tracking-uri", env["store"]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_number_is_a_fresh_evaluation(env, cli_report, registry):
    out, output = cli_report
    report = json.loads((out / "report.json").read_text())
    extra = metric_functions(registry, None)
    assert "lpips" in extra
    assert report["measures"] == ["psnr_y", "ssim_y", *extra]
    models = {
        "bicubic": bicubic_upscaler(4),
        "rep_base": load_upscaler(env["base"], registry=registry),
        "rep_ft": load_upscaler(env["ft"], registry=registry),
    }
    for spec in env["data"]:
        label = Path(spec).name
        images = load_folder(spec, 4)
        assert set(report["tables"][label]) == set(models)
        for row, upscale in models.items():
            direct = evaluate(upscale, images, 4, extra=extra)
            for measure, value in direct.means().items():
                if measure in report["measures"]:
                    assert report["tables"][label][row][measure] == pytest.approx(
                        value, rel=1e-9, abs=1e-12
                    ), (label, row, measure)
            per_image = report["sets"][label][row]["images"]
            assert [s["name"] for s in per_image] == [s.name for s in direct.images]
            cell = format_value(direct.mean("psnr_y"), PROTOCOL_MEASURES["psnr_y"])
            assert cell in output  # the printed table uses the protocol's 2 decimals
    assert "report:" in output and str(out / "report.md") in output


def test_report_files_name_the_runs_and_the_shared_start(env, cli_report):
    out, output = cli_report
    md = (out / "report.md").read_text()
    assert "rep_base" in md and "rep_ft" in md
    assert "GAN fine-tune of the base" in md and "modified x 0.001" in md
    assert f"generator from `{env['base']}` = rep_base" in md  # the init source, by its label
    assert "harness report" in md and "RGB, whole image, lower is better" in md
    assert "(`harness.measures`)" in md  # the module that holds the protocol
    assert "## Published references" in md and "SRResNet" in md and "32.05" in md
    assert "rep_ft starts from rep_base" in output
    report = json.loads((out / "report.json").read_text())
    ft = next(r for r in report["runs"] if r["label"] == "rep_ft")
    assert ft["init_run"] == env["base_id"] and ft["init_label"] == "rep_base"
    assert ft["steps"] == 2 and ft["wall_s"] > 0
    assert report["sets"]["set5"]["rep_ft"]["count"] == 3
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 + 4  # curves, plane, 2 crops x 2 sets

    sizes = {}
    for name in ["curves.png", "perception_distortion.png"] + [
        f"crops_{s}_img{i}.png" for s in ("set5", "set14") for i in (0, 1)
    ]:
        assert f"({name})" in md
        with Image.open(out / name) as img:
            assert img.format == "PNG"
            img.load()
            sizes[name] = img.size
    assert sizes["curves.png"][0] >= 1000  # two panels: PSNR-Y and LPIPS
    width, height = sizes["crops_set5_img0.png"]
    assert width >= 5 * 48 * 3 and height >= 48 * 3  # LR, bicubic, 2 runs, HR, zoomed
    assert not (out / "crops_set14_img2.png").exists()


def test_the_report_is_an_mlflow_run_with_the_files(env, cli_report):
    client = MlflowClient(env["store"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id], "tags.`harness.report` = '1'")
    assert run.info.run_name == "report"
    assert set(run.data.tags["harness.report.runs"].split(",")) == {env["base_id"], env["ft_id"]}
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "report.json", "report.html", "curves.png"} <= files
    assert {"perception_distortion.png", "crops_set5_img0.png"} <= files
    report = json.loads(Path(cli_report[0], "report.json").read_text())
    assert report["mlflow_run_id"] == run.info.run_id
    ft = client.get_run(env["ft_id"])
    assert ft.data.tags["harness.init.generator"] == str(env["base"])
    assert ft.data.tags["harness.init.generator_run"] == env["base_id"]
    # each evaluated run holds its scores as metrics, so MLflow's runs table sorts by them
    for label, run_id in (("rep_base", env["base_id"]), ("rep_ft", env["ft_id"])):
        metrics = client.get_run(run_id).data.metrics
        for data_set, rows in report["tables"].items():
            for measure, value in rows[label].items():
                assert metrics[f"eval/{data_set}/{measure}"] == pytest.approx(value)
        scores = sum(len(rows[label]) for rows in report["tables"].values())
        assert f"{label}: {scores} scores logged to MLflow run {run_id}" in cli_report[1]


def test_an_experiment_name_reports_all_its_runs(env, cli_report, registry):
    """(After the CLI test: the earlier "report" run of the experiment is not reported.)"""
    out = env["root"] / "by_experiment"
    report = write_report(
        [EXPERIMENT],
        out,
        registry=registry,
        data=env["data"][:1],
        metrics=["lpips"],
        tracking_uri=env["store"],
        crops=0,
        log_to_mlflow=False,
        say=lambda _: None,
        progress=False,
    )
    assert [r.label for r in report.runs] == ["rep_base", "rep_ft"]
    assert report.runs[0].run_dir == env["base"] and report.runs[1].init_label == "rep_base"
    assert set(report.tables["set5"]) == {"bicubic", "rep_base", "rep_ft"}
    assert list(report.tables["set5"]["rep_ft"]) == ["psnr_y", "ssim_y", "lpips"]
    assert report.markdown.is_file() and not list(out.glob("crops_*"))
    assert report.mlflow_run_id == ""


def test_run_ids_kept_generators_and_sweep_parents_resolve(env):
    store = env["store"]
    (run,) = resolve_runs([env["base_id"]], tracking_uri=store, say=lambda _: None)
    assert run.run_dir == env["base"] and run.model_ref == str(env["base"])
    (kept,) = resolve_runs([f"{env['base']}@best_lpips"], tracking_uri=store, say=lambda _: None)
    assert kept.model_ref == f"{env['base']}@best_lpips" and kept.label == "rep_base@best_lpips"
    assert kept.model_step in (1, 2)
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    parent = client.create_run(experiment.experiment_id, run_name="sweep").info.run_id
    for child in (env["base_id"], env["ft_id"]):
        client.set_tag(child, "mlflow.parentRunId", parent)
    try:
        runs = resolve_runs([parent], tracking_uri=store, say=lambda _: None)
        assert [r.run_id for r in runs] == [env["base_id"], env["ft_id"]]
    finally:
        for child in (env["base_id"], env["ft_id"]):
            client.delete_tag(child, "mlflow.parentRunId")
        client.delete_run(parent)


def test_unknown_run_is_one_line_error(env):
    args = ["report", "no-such-run", "--data", env["data"][0], "--tracking-uri", env["store"]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: unknown RUN "no-such-run"')
    assert "--tracking-uri" in lines[0] and "Traceback" not in result.output


def test_an_unknown_baseline_is_one_line_error_before_any_evaluation(env, tmp_path):
    out = tmp_path / "never"
    args = ["report", str(env["base"]), str(env["ft"]), "--baseline", "rep_base"]
    args += ["--baseline", "rep_nope", "--data", env["data"][0], "--no-mlflow", "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", env["store"]])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: --baseline "rep_nope" is none of')
    assert "bicubic, rep_base, rep_ft" in lines[0]
    assert not any(out.iterdir())  # nothing evaluated, nothing written


def test_missing_data_and_missing_model_are_clear_errors(env, tmp_path):
    result = CliRunner().invoke(
        cli, ["report", str(env["base"]), "--data", str(tmp_path / "set5"), "--no-mlflow"]
    )
    assert result.exit_code == 2
    assert "error: data folder" in result.output and "harness data download set5" in result.output
    empty = tmp_path / "runs" / "unfinished"
    empty.mkdir(parents=True)
    (empty / "experiment.toml").write_text((env["base"] / "experiment.toml").read_text())
    with pytest.raises(ReportError, match="has no final model to evaluate: .* no generator.keras"):
        resolve_runs([empty], tracking_uri=env["store"], say=lambda _: None)
    with pytest.raises(HarnessError, match="kept no best_dists.keras"):
        resolve_runs([f"{env['base']}@best_dists"], tracking_uri=env["store"], say=lambda _: None)


@pytest.fixture(scope="module")
def logged_only(env, registry):
    """A finished run of env's store that only MLflow knows (its run directory moved away):
    ``(run id, experiment)``."""
    cwd = os.getcwd()
    os.chdir(env["root"])  # MLflow artifacts (./mlruns) land in the temporary folder
    try:
        exp = tiny(
            env["root"] / "logged",
            experiment={"name": "rep_logged"},
            adversarial=None,
            train={"steps": 1},
            validation={"every": 1},
            tracking={"uri": env["store"], "experiment": "report-logged", "log_model": True},
        )
        result = train(exp, registry=registry)
    finally:
        os.chdir(cwd)
    shutil.move(exp.run_dir, env["root"] / "logged" / "moved")
    return result.run_id, exp


def test_a_run_known_only_to_mlflow_is_reported_from_its_logged_model(
    env, logged_only, tmp_path, registry
):
    run_id, _ = logged_only
    report = write_report(
        [run_id],
        tmp_path / "out",
        registry=registry,
        data=env["data"][:1],
        metrics=[],
        tracking_uri=env["store"],
        crops=1,
        say=lambda _: None,
        progress=False,
    )
    (run,) = report.runs
    assert run.run_dir is None and run.model_ref.startswith("models:/")
    assert report.measures == ("psnr_y", "ssim_y")
    model = load_upscaler(run.model_ref, registry=registry, tracking_uri=env["store"])
    direct = evaluate(model, load_folder(env["data"][0], 4), 4)
    assert report.tables["set5"]["rep_logged"]["psnr_y"] == pytest.approx(direct.psnr_y, rel=1e-9)
    logged = MlflowClient(env["store"]).get_run(report.mlflow_run_id)
    assert logged.data.tags["harness.report.runs"] == run_id
    assert (tmp_path / "out" / "crops_set5_img0.png").is_file()


def test_runs_of_two_stores_are_read_from_each_and_mlflows_process_uri_stays(
    env, logged_only, tmp_path, monkeypatch, registry
):
    """A run directory logging to one store and a run known only to MLflow in another, in one
    report: each is read from (and its model downloaded from) its own store, and MLflow's
    process-wide tracking URI and ``MLFLOW_TRACKING_URI`` are what they were."""
    monkeypatch.chdir(tmp_path)
    other = new_store(tmp_path, "other.db")
    exp = tiny(
        tmp_path,
        experiment={"name": "rep_other"},
        adversarial=None,
        train={"steps": 1},
        validation={"every": 1},
        tracking={"uri": other, "experiment": "report-other"},
    )
    train(exp, registry=registry)
    run_id, _ = logged_only
    # A process-wide URI naming neither store (what mlflow.set_tracking_uri sets), and bare
    # run ids resolved in env's store through MLFLOW_TRACKING_URI.
    process = f"sqlite:///{tmp_path / 'process.db'}"
    monkeypatch.setattr(tracking_utils, "_tracking_uri", process)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["store"])
    report = write_report(
        [str(exp.run_dir), run_id],
        tmp_path / "out",
        registry=registry,
        data=env["data"][:1],
        metrics=[],
        crops=0,
        say=lambda _: None,
        progress=False,
    )
    assert mlflow.get_tracking_uri() == process
    assert os.environ["MLFLOW_TRACKING_URI"] == env["store"]
    assert not (tmp_path / "process.db").exists() and not (tmp_path / "mlflow.db").exists()
    here, logged = report.runs
    assert (here.label, here.uri, here.run_dir) == ("rep_other", other, exp.run_dir)
    assert (logged.label, logged.uri, logged.run_dir) == ("rep_logged", env["store"], None)
    assert here.history["val/psnr_y"] and logged.history["val/psnr_y"]  # curves of each store
    assert set(report.tables["set5"]) == {"bicubic", "rep_other", "rep_logged"}
    # the report's own run goes to the first run's store
    assert MlflowClient(other).get_run(report.mlflow_run_id).info.run_name == "report"


def test_statistics_equal_scipy_on_the_per_image_table_the_report_wrote(env, cli_report):
    """Every p-value and interval of report.json, recomputed directly with SciPy from
    scores.csv; the same table is an MLflow table of the report's run. rep_ft starts from
    rep_base: the base is a fixed model for it, so images are the unit (Wilcoxon)."""
    from test_stats import recompute

    from harness.evaluation.per_image import read_csv

    out, output = cli_report
    report = json.loads((out / "report.json").read_text())
    rows, measures = read_csv(out / "scores.csv")
    assert measures == tuple(report["measures"])
    for s, by_run in report["sets"].items():  # the table holds every per-image score
        for run, result in by_run.items():
            mine = [r for r in rows if r["set"] == s and r["run"] == run]
            assert [r["psnr_y"] for r in mine] == [i["psnr_y"] for i in result["images"]]
    statistics = report["statistics"]
    assert report["baselines"] == ["rep_base"]
    assert {(c["run"], c["baseline"]) for c in statistics} == {("rep_ft", "rep_base")}
    assert {c["set"] for c in statistics} == {"set5", "set14", "all sets"}
    recompute(statistics, rows, list(report["sets"]))
    for c in statistics:
        assert (c["level"], c["test"], c["baseline_fixed"]) == ("model", "wilcoxon", True)
        assert c["too_small"] and not c["significant"]  # 2, 3 and 5 images: p >= 0.0625
    md = (out / "report.md").read_text()
    assert "## Paired statistics" in md and "### rep_ft against rep_base" in md
    assert "set5 is too small to tell rep_ft from rep_base" in md
    assert '<details markdown="1">' in md and "## Per-image scores" in md
    html = (out / "report.html").read_text()
    assert "<details>" in html and "<summary>PSNR-Y, per image</summary>" in html
    assert "<td>set5 / img0</td>" in html  # the folded table is rendered, not left as text
    client = MlflowClient(env["store"])
    names = {a.path for a in client.list_artifacts(report["mlflow_run_id"])}
    assert {"scores.csv", "scores.json"} <= names


@pytest.mark.slow
def test_interpolation_curves_end_at_the_base_and_the_fine_tune(
    env, registry, tmp_path, monkeypatch
):
    """``--interpolate 3``: the fine-tune's curve starts at its base's scores (alpha 0) and
    ends at its own (alpha 1), reused from the table (the ends are those two models exactly);
    only the midpoint is evaluated, and it is the blend ``harness interpolate`` writes. The
    base, with no base of its own, gets none."""
    from harness.deploy.interpolate import blend
    from harness.deploy.models import load_generator
    from harness.deploy.upscaler import Upscaler
    from harness.evaluation import interpolation

    calls = []

    def counted(*args, **kwargs):
        calls.append(args[1])
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(interpolation, "evaluate", counted)
    report = write_report(
        [str(env["base"]), str(env["ft"])],
        tmp_path / "interp",
        registry=registry,
        data=env["data"][:1],
        metrics=[],
        tracking_uri=env["store"],
        crops=0,
        log_to_mlflow=False,
        say=lambda _: None,
        progress=False,
        interpolate=3,
    )
    assert list(report.interpolation) == ["rep_ft"]
    points = report.interpolation["rep_ft"]["set5"]
    assert [p["alpha"] for p in points] == [0.0, 0.5, 1.0]
    table = report.tables["set5"]
    for point, row in ((points[0], "rep_base"), (points[-1], "rep_ft")):
        for measure in ("psnr_y", "ssim_y"):
            assert point[measure] == pytest.approx(table[row][measure], abs=1e-9), (row, measure)
    assert len(calls) == 1  # alpha 0.5 on set5; alpha 0 and 1 are the table's rows
    base = load_generator(env["base"], registry=registry)
    tuned = load_generator(env["ft"], registry=registry)
    base.set_weights(blend(base.get_weights(), tuned.get_weights(), 0.5))
    mid = evaluate(Upscaler.from_generator(base), load_folder(env["data"][0], 4), 4)
    assert points[1]["psnr_y"] == pytest.approx(mid.mean("psnr_y"), abs=1e-9)
    assert points[1]["psnr_y"] != pytest.approx(points[0]["psnr_y"], abs=1e-6)
    assert "Network interpolation (ESRGAN): rep_ft" in report.markdown.read_text()
    assert "--interpolate 3" in report.markdown.read_text()


def test_a_model_file_is_a_fixed_model_and_the_start_of_the_runs_that_name_it(
    env, registry, tmp_path
):
    """A ``.keras`` file (a committed base) is reported as one fixed model, labelled by its
    name; a run whose ``generator.init`` names the file is its fine-tune, measured against it
    image by image."""
    base_file = tmp_path / "models" / "base_x4.keras"
    base_file.parent.mkdir()
    shutil.copy(env["base"] / "generator.keras", base_file)
    ft = tmp_path / "runs" / "ft_of_file"
    ft.mkdir(parents=True)
    shutil.copy(env["ft"] / "generator.keras", ft / "generator.keras")
    toml = (env["ft"] / "experiment.toml").read_text()
    assert str(env["base"]) in toml
    (ft / "experiment.toml").write_text(toml.replace(str(env["base"]), str(base_file)))
    report = write_report(
        [str(base_file), str(ft)],
        tmp_path / "out",
        registry=registry,
        data=env["data"][:1],
        metrics=[],
        crops=0,
        log_to_mlflow=False,
        say=lambda _: None,
        progress=False,
    )
    by_label = {r.label: r for r in report.runs}
    assert set(by_label) == {"base_x4", "ft_of_file"}
    assert by_label["base_x4"].model_ref == str(base_file) and not by_label["base_x4"].seed
    assert by_label["ft_of_file"].init_label == "base_x4"
    assert report.baselines == ["base_x4"]
    upscale = load_upscaler(base_file, registry=registry)
    direct = evaluate(upscale, load_folder(env["data"][0], 4), 4)
    assert report.tables["set5"]["base_x4"]["psnr_y"] == pytest.approx(direct.mean("psnr_y"))
    (psnr,) = [c for c in report.comparisons if c.measure == "psnr_y" and c.run == "ft_of_file"]
    assert psnr.baseline == "base_x4" and psnr.baseline_fixed and not psnr.run_fixed
    md = report.markdown.read_text()
    assert f"generator from `{base_file}` = base_x4" in md
    assert "### base_x4\n\n- a model with no recorded experiment" in md and "step ?" not in md
    with pytest.raises(ReportError, match="keeps no other generators"):
        resolve_runs([f"{base_file}@best_lpips"], say=lambda _: None)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ReportError, match="not a .keras generator"):
        resolve_runs([str(tmp_path / "notes.txt")], say=lambda _: None)
