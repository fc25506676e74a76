"""``harness report``: a self-contained comparison of trained runs, measured afresh.

Each RUN is resolved in this order (:func:`resolve_runs`):

1. an existing folder: a run directory (``experiment.toml``, ``generator.keras`` or
   ``mlflow_run_id`` inside), or a folder of run directories (``runs/``: all of them);
2. ``runs:/<id>/...`` or a 32-hex MLflow run id: that run, or, when other runs name it as their
   ``mlflow.parentRunId`` (a sweep), all its child runs;
3. an MLflow experiment name, then an experiment id: all its runs (sweep parents and earlier
   reports left out).

``RUN@best_lpips`` (or ``--model-kind``) evaluates a kept generator instead of the final one.
Nothing is copied from logs: every model and the bicubic baseline are scored here on each
benchmark set with :func:`harness.evaluation.protocol.evaluate` (PSNR-Y, SSIM-Y, and each metric
plugin on
its own declared protocol). The folder gets ``report.md``, ``report.html`` (figures embedded),
``report.json`` (every number, per image too), ``curves.png`` (validation curves from MLflow),
``perception_distortion.png`` and ``crops_<set>_<image>.png``, and is logged to MLflow as the
artifacts of a run named ``report``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.errors import HarnessError
from harness.evaluation import plots

DEFAULT_DATA: tuple[str, ...] = ("data/set5", "data/set14", "data/bsd100")
"""Where ``harness data download set5 set14 bsd100 --dest data`` puts the benchmark sets."""

DEFAULT_METRICS: tuple[str, ...] = ("lpips", "dists")
"""Perceptual metrics reported by default: those of these that are registered."""

FINAL = "final"
REPORT_TAG = "harness.report"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MLFLOW_RUN = re.compile(r"^runs:/([0-9a-f]{32})(/.*)?$")
KIND = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ReportError(HarnessError):
    """A RUN cannot be resolved, has no model, or the report cannot be written or logged."""


@dataclass
class RunInfo:
    """One reported run: where it lives, what it was and which model is evaluated."""

    ref: str
    label: str
    kind: str = FINAL
    run_id: str = ""
    run_dir: Path | None = None
    uri: str = ""
    mlflow_experiment: str = ""
    status: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    model_ref: str = ""
    model_step: int | None = None
    steps: int | None = None
    wall_s: float | None = None
    init_ref: str = ""
    init_run: str = ""
    init_label: str = ""
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    bicubic_val: float | None = None

    @property
    def scale(self) -> int:
        return int(self.params.get("data.scale", 4))

    def _table(self, prefix: str) -> str:
        skip = {"name", "init", "plugin", "weight"}
        return ", ".join(
            f"{k[len(prefix) :]}={v}"
            for k, v in self.params.items()
            if k.startswith(prefix) and k[len(prefix) :] not in skip and "." not in k[len(prefix) :]
        )

    @property
    def generator(self) -> str:
        params = self._table("generator.")
        return f"{self.params.get('generator.name', '?')} ({params})" if params else "?"

    @property
    def losses(self) -> str:
        keys = dict.fromkeys(
            k.split(".")[1] for k in self.params if k.startswith("losses.") and k.count(".") >= 2
        )
        out = []
        for key in keys:
            weight = self.params.get(f"losses.{key}.weight", "scheduled")
            plugin = self.params.get(f"losses.{key}.plugin", key)
            out.append(f"{key}{'' if plugin == key else f' ({plugin})'} x {weight}")
        return ", ".join(out) or "?"

    @property
    def adversarial(self) -> str:
        name = self.params.get("adversarial.name")
        if not name:
            return "none"
        return f"{name} x {self.params.get('adversarial.weight', 'scheduled')}"

    def facts(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "ref": self.ref,
            "model_kind": self.kind,
            "model": self.model_ref,
            "model_step": self.model_step,
            "mlflow_run_id": self.run_id,
            "mlflow_experiment": self.mlflow_experiment,
            "tracking_uri": self.uri,
            "run_dir": str(self.run_dir) if self.run_dir else "",
            "status": self.status,
            "description": self.params.get("experiment.description", ""),
            "generator": self.generator,
            "losses": self.losses,
            "adversarial": self.adversarial,
            "init": self.init_ref,
            "init_run": self.init_run,
            "init_label": self.init_label,
            "steps": self.steps,
            "wall_s": self.wall_s,
        }


# --------------------------------------------------------------------------- resolving RUNs


class _Resolver:
    def __init__(self, tracking_uri: str | None, model_kind: str, say: Callable[[str], Any]):
        self.explicit = tracking_uri or ""
        self.kind = model_kind
        self.say = say
        self.clients: dict[str, Any] = {}

    def uri(self, params: Mapping[str, str] | None = None) -> str:
        from harness.tracking import DEFAULT_URI, database_url

        raw = self.explicit or (params or {}).get("tracking.uri", "")
        return database_url(raw or os.environ.get("MLFLOW_TRACKING_URI", "") or DEFAULT_URI)

    def client(self, uri: str) -> Any:
        if uri not in self.clients:
            from mlflow.tracking import MlflowClient

            self.clients[uri] = MlflowClient(tracking_uri=uri)
        return self.clients[uri]

    def get_run(self, uri: str, run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        if not _store_exists(uri):
            return None
        try:
            return self.client(uri).get_run(run_id)
        except MlflowException:
            return None
        except Exception as exc:
            raise _store_error(uri, exc) from None

    def resolve(self, ref: str) -> list[RunInfo]:
        text, kind = str(ref), self.kind
        head, at, tail = text.rpartition("@")
        if at and KIND.match(tail) and not text.startswith(("runs:/", "models:/")):
            text, kind = head, tail
        kind = FINAL if kind in (FINAL, "generator") else kind
        path = Path(text).expanduser()
        if path.is_dir():
            if _is_run_dir(path):
                return [self.from_dir(path, kind, ref)]
            subs = sorted(p for p in path.iterdir() if p.is_dir() and _is_run_dir(p))
            if not subs:
                raise ReportError(
                    f'"{ref}" is a folder but neither a run directory (experiment.toml, '
                    "generator.keras or mlflow_run_id inside) nor a folder of them; give "
                    "runs/<name> as written by `harness run`."
                )
            return self.keep_with_models(
                [self.from_dir(p, kind, str(p), strict=False) for p in subs]
            )
        if path.exists():
            raise ReportError(f'"{ref}" is a file; give the run directory that holds it.')
        uri = self.uri()
        match = MLFLOW_RUN.match(text)
        run_id = match.group(1) if match else text if RUN_ID.match(text) else ""
        if run_id:
            run = self.get_run(uri, run_id)
            if run is not None:
                children = self.search(
                    uri, [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'"
                )
                if children:
                    self.say(f"{ref}: a sweep's parent run, reporting its {len(children)} trials")
                    return self.keep_with_models(
                        [
                            self.from_mlflow(c, uri, kind, c.info.run_id, strict=False)
                            for c in children
                        ]
                    )
                return [self.from_mlflow(run, uri, kind, ref)]
        experiment = self.experiment(uri, text)
        if experiment is not None:
            runs = self.search(uri, [experiment.experiment_id], "")
            parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
            runs = [
                r
                for r in runs
                if r.data.tags.get(REPORT_TAG) != "1" and r.info.run_id not in parents
            ]
            infos = self.keep_with_models(
                [self.from_mlflow(r, uri, kind, r.info.run_id, strict=False) for r in runs]
            )
            if not infos:
                raise ReportError(
                    f'MLflow experiment "{experiment.name}" ({uri}) holds no run with a model to '
                    "report; train one (harness run) or give another RUN."
                )
            self.say(f"{ref}: MLflow experiment {experiment.name}, {len(infos)} run(s)")
            return infos
        raise ReportError(
            f'unknown RUN "{ref}": not a run directory, an MLflow run id nor an MLflow experiment '
            f"name or id in {uri}; give runs/<name>, a run id or an experiment name, and "
            "--tracking-uri if the runs were logged to another store."
        )

    def experiment(self, uri: str, text: str) -> Any:
        from mlflow.exceptions import MlflowException

        if not _store_exists(uri):
            return None
        client = self.client(uri)
        try:
            found = client.get_experiment_by_name(text)
            if found is None and text.isdigit():
                found = client.get_experiment(text)
        except MlflowException:
            return None
        except Exception as exc:
            raise _store_error(uri, exc) from None
        return found if found is not None and found.lifecycle_stage == "active" else None

    def search(self, uri: str, experiment_ids: list[str], filter_string: str) -> list[Any]:
        client, out, token = self.client(uri), [], None
        while True:
            page = client.search_runs(
                experiment_ids,
                filter_string,
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            out.extend(page)
            token = page.token
            if not token:
                return out

    def keep_with_models(self, infos: list[RunInfo | None]) -> list[RunInfo]:
        return [i for i in infos if i is not None]

    def from_dir(self, path: Path, kind: str, ref: str, strict: bool = True) -> RunInfo | None:
        params = _read_params(path / "experiment.toml")
        info = RunInfo(
            ref=ref,
            label=path.resolve().name,
            kind=kind,
            run_dir=path,
            params=params,
            uri=self.uri(params),
        )
        info.init_ref = params.get("generator.init", "")
        id_file = path / "mlflow_run_id"
        if id_file.is_file():
            info.run_id = id_file.read_text().strip()
            run = self.get_run(info.uri, info.run_id)
            if run is None:
                self.say(
                    f"{ref}: MLflow run {info.run_id} not found in {info.uri}; no curves "
                    "or wall time for it (set --tracking-uri to its store)"
                )
            else:
                self.fill_mlflow(info, run)
        return self.local_model(info, strict)

    def from_mlflow(
        self, run: Any, uri: str, kind: str, ref: str, strict: bool = True
    ) -> RunInfo | None:
        info = RunInfo(
            ref=ref,
            label=run.info.run_name or run.info.run_id[:8],
            kind=kind,
            run_id=run.info.run_id,
            uri=uri,
        )
        self.fill_mlflow(info, run)
        p = info.params
        local = Path(p.get("experiment.runs_dir", "runs")) / p.get("experiment.name", "")
        if (local / "mlflow_run_id").is_file() and (
            (local / "mlflow_run_id").read_text().strip() == info.run_id
        ):
            info.run_dir = local
            return self.local_model(info, strict)
        tag = "generator_model_uri" if kind == FINAL else f"{kind}_model_uri"
        if tag not in info.tags:
            return self.no_model(
                info,
                f"it logged no {tag.removesuffix('_model_uri')} model to "
                f"MLflow and its run directory {local} is not here",
                strict,
            )
        info.model_ref = info.tags[tag]
        if kind == FINAL:
            info.model_step = info.steps
        return info

    def fill_mlflow(self, info: RunInfo, run: Any) -> None:
        client = self.client(info.uri)
        info.label = run.info.run_name or info.label
        info.status = run.info.status
        info.tags = dict(run.data.tags)
        info.params = info.params or dict(run.data.params)
        try:
            info.mlflow_experiment = client.get_experiment(run.info.experiment_id).name
        except Exception:
            info.mlflow_experiment = run.info.experiment_id
        if run.info.end_time and run.info.start_time:
            info.wall_s = (run.info.end_time - run.info.start_time) / 1000.0
        info.init_ref = info.tags.get(
            "harness.init.generator", info.params.get("generator.init", "")
        )
        info.init_run = info.tags.get("harness.init.generator_run", "")
        for key in run.data.metrics:
            if key.startswith("val/") and not key.startswith("val/bicubic_"):
                info.history[key] = [
                    (int(m.step), float(m.value))
                    for m in client.get_metric_history(run.info.run_id, key)
                ]
        info.bicubic_val = run.data.metrics.get("val/bicubic_psnr_y")
        steps = [s for s, _ in info.history.get("val/psnr_y", [])]
        if run.info.status == "FINISHED" and "train.steps" in info.params:
            info.steps = int(info.params["train.steps"])
        elif steps:
            info.steps = max(steps)

    def local_model(self, info: RunInfo, strict: bool) -> RunInfo | None:
        run_dir = info.run_dir
        assert run_dir is not None
        checkpoint = _latest_checkpoint(run_dir)
        if checkpoint is not None:
            info.steps = checkpoint
        if info.kind == FINAL:
            if not (run_dir / "generator.keras").is_file() and checkpoint is None:
                return self.no_model(
                    info, f"{run_dir} holds no generator.keras and no checkpoint yet", strict
                )
            info.model_ref, info.model_step = str(run_dir), info.steps
            return info
        if not (run_dir / f"{info.kind}.keras").is_file():
            kept = sorted(p.stem for p in run_dir.glob("best_*.keras"))
            return self.no_model(
                info,
                f"{run_dir} kept no {info.kind}.keras (kept: "
                f"{', '.join(kept) or 'none'}; use final or one of those)",
                strict,
            )
        info.model_ref = f"{run_dir}@{info.kind}"
        kept = _read_json(run_dir / "kept.json").get(info.kind, {})
        info.model_step = int(kept["step"]) if "step" in kept else None
        return info

    def no_model(self, info: RunInfo, why: str, strict: bool) -> None:
        what = "final" if info.kind == FINAL else info.kind
        if strict:
            raise ReportError(f'run "{info.ref}" has no {what} model to evaluate: {why}.')
        self.say(f"skipping {info.label}: no {what} model ({why})")


def _store_exists(uri: str) -> bool:
    """False for a SQLite store whose file does not exist (looking would create it)."""
    if not uri.startswith("sqlite:///"):
        return True
    path = uri.removeprefix("sqlite:///")
    return path == ":memory:" or Path(path).is_file()


def _store_error(uri: str, exc: Exception) -> ReportError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return ReportError(
        f"cannot read the MLflow store {uri} ({type(exc).__name__}: {first}); check "
        "--tracking-uri (or MLFLOW_TRACKING_URI)."
    )


def _is_run_dir(path: Path) -> bool:
    return any(
        (path / f).is_file() for f in ("experiment.toml", "generator.keras", "mlflow_run_id")
    )


def _read_params(path: Path) -> dict[str, str]:
    from harness.config.experiment import flatten

    if not path.is_file():
        return {}
    try:
        return flatten(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _latest_checkpoint(run_dir: Path) -> int | None:
    state = run_dir / "checkpoints" / "checkpoint"
    if not state.is_file():
        return None
    match = re.search(r'^model_checkpoint_path:\s*"[^"]*?(\d+)"', state.read_text(), re.M)
    return int(match.group(1)) if match else None


def resolve_runs(
    refs: Sequence[str | Path],
    *,
    tracking_uri: str | None = None,
    model_kind: str = FINAL,
    say: Callable[[str], Any] = print,
) -> list[RunInfo]:
    """Each RUN argument -> the runs it names (see the module docstring for the order tried),
    labelled uniquely, with each warm start's source named by its label when it is reported."""
    if not refs:
        raise ReportError(
            "no RUN to report: give run directories, MLflow run ids or an "
            "MLflow experiment name (e.g. harness report runs/srgan runs/srresnet)."
        )
    resolver = _Resolver(tracking_uri, model_kind, say)
    runs: list[RunInfo] = []
    seen: set[tuple[str, str]] = set()
    for ref in refs:
        for info in resolver.resolve(str(ref)):
            key = (info.run_id or str(info.run_dir.resolve() if info.run_dir else ""), info.kind)
            if key not in seen:
                seen.add(key)
                runs.append(info)
    for info in runs:
        if info.kind != FINAL:
            info.label = f"{info.label}@{info.kind}"
    labels = [r.label for r in runs]
    for info in runs:
        if labels.count(info.label) > 1 or info.label == "bicubic":
            info.label = f"{info.label} ({info.run_id[:8] or info.run_dir})"
    for info in runs:
        _name_source(info, runs, resolver)
    scales = sorted({r.scale for r in runs})
    if len(scales) > 1:
        raise ReportError(
            f"the runs upscale by different factors ({scales}); report runs of one scale together."
        )
    return runs


def _name_source(info: RunInfo, runs: Sequence[RunInfo], resolver: _Resolver) -> None:
    if not (info.init_ref or info.init_run):
        return
    from harness.training.warmstart import run_dir_of

    base, _, suffix = info.init_ref.partition("@")
    found = run_dir_of(info.init_ref) if info.init_ref else None
    src_dir = (found or Path(base)).expanduser().resolve() if info.init_ref else None
    candidates = [
        o
        for o in runs
        if o is not info
        and (
            (info.init_run and o.run_id == info.init_run)
            or (src_dir is not None and o.run_dir is not None and o.run_dir.resolve() == src_dir)
        )
    ]
    if candidates:
        best = next((o for o in candidates if o.kind == (suffix or FINAL)), candidates[0])
        name = best.label.split("@")[0] if best.kind != FINAL else best.label
        info.init_label = f"{name}@{suffix}" if suffix else name
        return
    name = ""
    if info.init_run:
        run = resolver.get_run(info.uri, info.init_run)
        name = run.info.run_name if run is not None else ""
    info.init_label = f"{name or info.init_ref} (not in this report)"


# --------------------------------------------------------------------------- measuring


class _Recorder:
    """An upscaler that keeps its first ``keep`` outputs (as 8-bit images) for the crops."""

    def __init__(self, upscale: Callable[[np.ndarray], np.ndarray], keep: int) -> None:
        self.upscale, self.keep, self.outputs = upscale, keep, []

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        from harness.evaluation.protocol import to_uint8

        sr = np.asarray(self.upscale(lr))
        if len(self.outputs) < self.keep:
            self.outputs.append(to_uint8(sr[0]))
        return sr


def metric_functions(names: Sequence[str] | None) -> dict[str, Callable[..., float]]:
    """The perceptual metrics to report: ``names``, or the registered ones of
    :data:`DEFAULT_METRICS`, built with their declared protocols."""
    from harness.evaluation.protocol import build_metric
    from harness.plugin_api.registry import build_registry

    registry = build_registry()
    if names is None:
        names = [n for n in DEFAULT_METRICS if n in registry.names("metric")]
    return {n: build_metric(registry.factory("metric", n, where="--metric")) for n in names}


@dataclass
class Report:
    """What :func:`write_report` wrote: the folder, its files and every number."""

    out: Path
    markdown: Path
    html: Path
    json: Path
    runs: list[RunInfo]
    tables: dict[str, dict[str, dict[str, float]]]
    results: dict[str, dict[str, Any]]
    figures: list[Path]
    measures: tuple[str, ...]
    protocols: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str = ""


def load_references() -> dict[str, Any]:
    """``harness/references.toml``: ``{"sources": {...}, "methods": {name: {source, set: {}}}}``."""
    text = (
        resources.files("harness.evaluation")
        .joinpath("references.toml")
        .read_text(encoding="utf-8")
    )
    return tomllib.loads(text)


def write_report(
    refs: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    data: Sequence[str] = DEFAULT_DATA,
    metrics: Sequence[str] | None = None,
    tracking_uri: str | None = None,
    crops: int = 2,
    model_kind: str = FINAL,
    log_to_mlflow: bool = True,
    say: Callable[[str], Any] = print,
    command: str = "",
    progress: bool = True,
) -> Report:
    """Evaluate each run of ``refs`` and bicubic on ``data`` and write the report to ``out``
    (default ``reports/<date-time>``). ``metrics`` are metric plugin names (default: the
    registered ones of :data:`DEFAULT_METRICS`); ``crops`` images per set get a crop figure."""
    from tqdm import tqdm

    from harness.commands.evaluate import discover
    from harness.data.pipeline import load_folder
    from harness.deploy.models import ModelReferenceError, load_upscaler
    from harness.evaluation import protocol as m

    now = _dt.datetime.now().astimezone()
    suites = discover(list(data))
    runs = resolve_runs(refs, tracking_uri=tracking_uri, model_kind=model_kind, say=say)
    extra = metric_functions(metrics)
    protocols = {
        **{k: m.PROTOCOL_MEASURES[k] for k in ("psnr_y", "ssim_y")},
        **{k: m.metric_protocol(f) for k, f in extra.items()},
    }
    measures = tuple(protocols)
    scale = runs[0].scale
    folder = Path(out) if out else Path("reports") / now.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)

    images = {s.label: load_folder(s.spec, scale) for s in suites}
    results: dict[str, dict[str, m.EvalResult]] = {s.label: {} for s in suites}
    outputs: dict[str, dict[str, list[np.ndarray]]] = {s.label: {} for s in suites}
    rows = [("bicubic", None), *((r.label, r) for r in runs)]
    bar = tqdm(total=len(rows) * len(suites), desc="evaluating", unit="set", disable=not progress)
    try:
        for label, run in rows:
            if run is None:
                upscale: Any = m.bicubic_upscaler(scale)
            else:
                if re.match(r"^(runs|models):/", run.model_ref):
                    import mlflow

                    mlflow.set_tracking_uri(run.uri)  # MLflow models load through the global URI
                try:
                    upscale = load_upscaler(run.model_ref)
                except ModelReferenceError as exc:
                    raise ReportError(f'run "{run.label}": {exc}') from None
                if upscale.scale != scale:
                    raise ReportError(
                        f'run "{run.label}" upscales x{upscale.scale}, its experiment '
                        f"says x{scale}; was experiment.toml edited?"
                    )
            for suite in suites:
                bar.set_postfix_str(f"{label} on {suite.label}")
                recorder = _Recorder(upscale, crops)
                results[suite.label][label] = m.evaluate(
                    recorder, images[suite.label], scale, extra=extra
                )
                outputs[suite.label][label] = recorder.outputs
                bar.update(1)
            del upscale
    finally:
        bar.close()

    tables = {
        s: {row: {k: r.mean(k) for k in measures} for row, r in res.items()}
        for s, res in results.items()
    }
    references = load_references()
    figures = [_curves(runs, folder / "curves.png", extra)]
    perceptual = "lpips" if "lpips" in extra else next(iter(extra), "ssim_y")
    figures.append(
        plots.plot_perception_distortion(
            tables,
            {
                k: {s: v for s, v in meth.items() if isinstance(v, dict)}
                for k, meth in references.get("methods", {}).items()
            },
            folder / "perception_distortion.png",
            y=perceptual,
            y_label=plots.measure_name(perceptual),
            lower_is_better=not protocols[perceptual].higher_is_better,
        )
    )
    figures += _crops(folder, images, results, outputs, scale, perceptual)

    report = Report(
        out=folder,
        markdown=folder / "report.md",
        html=folder / "report.html",
        json=folder / "report.json",
        runs=runs,
        tables=tables,
        results=results,
        figures=figures,
        measures=measures,
        protocols=protocols,
    )
    client = None
    if log_to_mlflow:
        client, report.mlflow_run_id = _start_mlflow(runs, say)
    try:
        _write_files(
            report,
            command or _python_call(refs, folder),
            now,
            protocols,
            references,
            {s.label: s.spec for s in suites},
            scale,
        )
    except BaseException:
        if client is not None:
            client.set_terminated(report.mlflow_run_id, "FAILED")
        raise
    if client is not None:
        try:
            client.log_artifacts(report.mlflow_run_id, str(folder))
            client.set_terminated(report.mlflow_run_id, "FINISHED")
        except Exception as exc:
            client.set_terminated(report.mlflow_run_id, "FAILED")
            raise ReportError(
                f"the report is in {folder} but logging it to MLflow failed "
                f"({type(exc).__name__}: {exc}); pass --no-mlflow."
            ) from None
        say(f"logged to MLflow run {report.mlflow_run_id} (report)")
    return report


def _write_files(
    report: Report,
    command: str,
    now: _dt.datetime,
    protocols: Mapping[str, Any],
    references: Mapping[str, Any],
    data: Mapping[str, str],
    scale: int,
) -> None:
    date = now.isoformat(timespec="seconds")
    head = {
        "command": command,
        "date": date,
        "scale": scale,
        "data": dict(data),
        "protocols": {k: dataclasses.asdict(p) for k, p in protocols.items()},
        "references": dict(references),
    }
    report.json.write_text(json.dumps(to_json(report, **head), indent=2) + "\n", encoding="utf-8")
    text = plots.render_markdown(
        report,
        command=command,
        date=date,
        protocols=protocols,
        references=references,
        data=data,
        scale=scale,
    )
    report.markdown.write_text(text, encoding="utf-8")
    title = text.splitlines()[0].lstrip("# ")
    report.html.write_text(plots.markdown_to_html(text, report.out, title), encoding="utf-8")


def _python_call(refs: Sequence[str | Path], folder: Path) -> str:
    return f"write_report({[str(r) for r in refs]!r}, {str(folder)!r})"


def _curves(runs: Sequence[RunInfo], path: Path, extra: Mapping[str, Any]) -> Path:
    perceptual = next((k for k in extra if any(f"val/{k}" in r.history for r in runs)), "lpips")
    curves = [plots.Curves(r.label, r.history, r.bicubic_val) for r in runs]
    return plots.plot_curves(curves, path, perceptual)


def _crops(
    folder: Path,
    images: Mapping[str, Any],
    results: Mapping[str, Any],
    outputs: Mapping[str, Any],
    scale: int,
    perceptual: str,
) -> list[Path]:
    from harness.evaluation.protocol import bicubic_downsample, to_uint8

    paths = []
    for set_label, hrs in images.items():
        for i, (name, hr) in enumerate(hrs):
            if any(len(o) <= i for o in outputs[set_label].values()):
                break
            y, x, side = plots.crop_window(hr, scale)
            lr = to_uint8(bicubic_downsample(hr, scale))
            s = scale
            lr_crop = lr[y // s : (y + side) // s, x // s : (x + side) // s]
            tiles = [plots.Tile(f"LR x{s} (nearest)", plots.nearest_up(lr_crop, s))]
            for row, res in results[set_label].items():
                score = res.images[i].as_dict()
                lines = [f"PSNR-Y {score['psnr_y']:.2f} dB"]
                if perceptual in score and perceptual != "psnr_y":
                    lines.append(f"{plots.measure_name(perceptual)} {score[perceptual]:.4f}")
                sr = outputs[set_label][row][i]
                tiles.append(plots.Tile(row, sr[y : y + side, x : x + side], tuple(lines)))
            tiles.append(plots.Tile("HR", hr[y : y + side, x : x + side], ("ground truth",)))
            safe = re.sub(r"[^0-9A-Za-z_.-]+", "_", f"{set_label}_{name}")
            heading = (
                f"{set_label}/{name}: {side}x{side} HR window at x={x}, y={y} (highest "
                "gradient energy); scores of the whole image"
            )
            paths.append(plots.crop_figure(tiles, folder / f"crops_{safe}.png", heading))
    return paths


def _start_mlflow(runs: Sequence[RunInfo], say: Callable[[str], Any]) -> tuple[Any, str]:
    tracked = [r for r in runs if r.run_id and r.mlflow_experiment]
    if not tracked:
        say("not logged to MLflow: none of the runs has an MLflow run")
        return None, ""
    from mlflow.tracking import MlflowClient

    first = tracked[0]
    try:
        client = MlflowClient(tracking_uri=first.uri)
        experiment_id = client.get_run(first.run_id).info.experiment_id
        ids = ",".join(r.run_id for r in runs if r.run_id)
        tags = {
            REPORT_TAG: "1",
            "harness.version": __version__,
            "harness.report.runs": ids[:5000],
            "harness.report.labels": ", ".join(r.label for r in runs)[:5000],
        }
        run = client.create_run(experiment_id, tags=tags, run_name="report")
    except Exception as exc:
        raise ReportError(
            f"cannot create the report's MLflow run in {first.uri} "
            f"({type(exc).__name__}: {exc}); pass --no-mlflow."
        ) from None
    return client, run.info.run_id


def to_json(report: Report, **extra: Any) -> dict[str, Any]:
    """Every number of the report, per set, per row, per measure and per image."""
    return {
        **extra,
        "harness_version": __version__,
        "measures": list(report.measures),
        "runs": [r.facts() for r in report.runs],
        "tables": report.tables,
        "sets": {
            s: {row: res.to_dict() for row, res in rows.items()}
            for s, rows in report.results.items()
        },
        "figures": [p.name for p in report.figures],
        "mlflow_run_id": report.mlflow_run_id,
    }


__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_METRICS",
    "Report",
    "ReportError",
    "RunInfo",
    "load_references",
    "metric_functions",
    "resolve_runs",
    "to_json",
    "write_report",
]
