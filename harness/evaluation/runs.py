"""The runs a report compares: each RUN argument resolved into :class:`RunInfo`.

Each RUN is resolved in this order (:func:`resolve_runs`):

1. an existing folder: a run directory (``experiment.toml``, ``generator.keras`` or
   ``mlflow_run_id`` inside), or a folder of run directories (``runs/``: all of them); an
   existing ``.keras`` file: that generator, a fixed model (the committed base a fine-tune's
   ``generator.init`` names, say);
2. ``runs:/<id>/...`` or a 32-hex MLflow run id: that run, or, when other runs name it as their
   ``mlflow.parentRunId`` (a sweep), all its child runs;
3. an MLflow experiment name, then an experiment id: all its runs (sweep parents and earlier
   reports left out).

``RUN@best_lpips`` (or ``--model-kind``) evaluates a kept generator instead of the final one
(:meth:`harness.rundir.RunDir.kept`). Each RUN is parsed by
:func:`harness.references.parse_reference` first.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import references as refs
from harness.config import flatten
from harness.evaluation.records import FINAL, REPORT_TAG, ReportError, RunInfo
from harness.evaluation.run_store import RunStore, store_uri
from harness.references import ModelReferenceError, parse_reference
from harness.rundir import EXPERIMENT_FILE, GENERATOR_FILE, RUN_ID_FILE, RunDir
from harness.rundir import FINAL as FINAL_KEPT


class _Resolver:
    def __init__(self, tracking_uri: str | None, model_kind: str, say: Callable[[str], Any]):
        self.explicit = tracking_uri or ""
        self.kind = model_kind
        self.say = say
        self.store = RunStore()

    def uri(self, params: dict[str, str] | None = None) -> str:
        return store_uri(self.explicit, (params or {}).get("tracking.uri", ""))

    def resolve(self, ref: str) -> list[RunInfo]:
        parsed, kind = parse_reference(ref), self.kind
        asked_kept = parsed.kind == refs.KEPT  # RUN@best_lpips, not --model-kind
        if asked_kept:
            parsed, kind = parse_reference(parsed.base), parsed.name
        text = parsed.text
        kind = FINAL if kind in (FINAL, FINAL_KEPT) else kind
        path = parsed.path
        if path is not None and path.is_dir():
            if RunDir(path).is_run():
                return [self.from_dir(path, kind, ref)]
            subs = sorted(p for p in path.iterdir() if p.is_dir() and RunDir(p).is_run())
            if not subs:
                raise ReportError(
                    f'"{ref}" is a folder but neither a run directory ({EXPERIMENT_FILE}, '
                    f"{GENERATOR_FILE} or {RUN_ID_FILE} inside) nor a folder of them; give "
                    "runs/<name> as written by `harness run`."
                )
            return _present([self.from_dir(p, kind, str(p), strict=False) for p in subs])
        if path is not None and path.is_file():
            return [self.from_file(path, ref, kind if asked_kept else FINAL)]
        if path is not None and path.exists():
            raise ReportError(f'"{ref}" is not a file or folder a model can be read from.')
        uri = self.uri()
        run_id = parsed.run_id
        if run_id:
            run = self.store.get_run(uri, run_id)
            if run is not None:
                children = self.store.search(
                    uri, [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'"
                )
                if children:
                    self.say(f"{ref}: a sweep's parent run, reporting its {len(children)} trials")
                    return _present(
                        [
                            self.from_mlflow(c, uri, kind, c.info.run_id, strict=False)
                            for c in children
                        ]
                    )
                return [self.from_mlflow(run, uri, kind, ref)]
        experiment = self.store.experiment(uri, text)
        if experiment is not None:
            runs = self.store.search(uri, [experiment.experiment_id], "")
            parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
            runs = [
                r
                for r in runs
                if r.data.tags.get(REPORT_TAG) != "1" and r.info.run_id not in parents
            ]
            infos = _present(
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

    def from_file(self, path: Path, ref: str, kind: str) -> RunInfo:
        """A model file (a committed base, say): one fixed model with no experiment, seed or
        curves, labelled by its file name; the runs whose ``generator.init`` names it are its
        fine-tunes. ``kind`` is what ``@<kept>`` asked of the file itself (``--model-kind``
        picks among runs' generators; a file has one)."""
        if path.suffix != ".keras":
            raise ReportError(
                f'"{ref}" is a file but not a .keras generator; give a .keras file or the run '
                "directory that holds the model."
            )
        if kind != FINAL:
            raise ReportError(
                f'"{ref}": a model file keeps no other generators; give the file alone.'
            )
        return RunInfo(ref=ref, label=path.stem, model_ref=str(path))

    def from_dir(self, path: Path, kind: str, ref: str, strict: bool = True) -> RunInfo | None:
        params = _read_params(RunDir(path).experiment_toml)
        info = RunInfo(
            ref=ref,
            label=path.resolve().name,
            kind=kind,
            run_dir=path,
            params=params,
            uri=self.uri(params),
        )
        info.init_ref = params.get("generator.init", "")
        if RunDir(path).run_id_file.is_file():
            info.run_id = RunDir(path).read_run_id()
            run = self.store.get_run(info.uri, info.run_id)
            if run is None:
                self.say(
                    f"{ref}: MLflow run {info.run_id} not found in {info.uri}; no curves "
                    "or wall time for it (set --tracking-uri to its store)"
                )
            else:
                self.store.fill(info, run)
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
        self.store.fill(info, run)
        kept = RunDir(info.tags.get("harness.run_dir", "")).experiment_toml
        if "harness.run_dir" in info.tags and kept.is_file():  # a sweep trial logs only its
            info.params = {**_read_params(kept), **info.params}  # sampled values as params
        p = info.params
        local = Path(p.get("experiment.runs_dir", "runs")) / p.get("experiment.name", "")
        if RunDir(local).run_id_file.is_file() and RunDir(local).read_run_id() == info.run_id:
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

    def local_model(self, info: RunInfo, strict: bool) -> RunInfo | None:
        run_dir = info.run_dir
        assert run_dir is not None
        run = RunDir(run_dir)
        checkpoint = run.latest_step()
        if checkpoint is not None:
            info.steps = checkpoint
        if info.kind == FINAL:
            if not run.generator.is_file() and checkpoint is None:
                return self.no_model(
                    info, f"{run_dir} holds no {GENERATOR_FILE} and no checkpoint yet", strict
                )
            info.model_ref, info.model_step = str(run_dir), info.steps
            return info
        model_ref = f"{run_dir}@{info.kind}"
        if not run.kept(info.kind).is_file():
            kept = run.kept_names()
            return self.no_model(
                info,
                f"{run_dir} kept no {info.kind}.keras (kept: "
                f"{', '.join(kept) or 'none'}; use final or one of those)",
                strict,
            )
        info.model_ref = model_ref
        kept = _read_json(run.kept_json).get(info.kind, {})
        info.model_step = int(kept["step"]) if "step" in kept else None
        return info

    def no_model(self, info: RunInfo, why: str, strict: bool) -> None:
        what = "final" if info.kind == FINAL else info.kind
        if strict:
            raise ReportError(f'run "{info.ref}" has no {what} model to evaluate: {why}.')
        self.say(f"skipping {info.label}: no {what} model ({why})")


def _place(info: RunInfo) -> Path | None:
    """Where a run of the report lives on disk, resolved: its run directory, or the model file
    it is (:meth:`_Resolver.from_file`); ``None`` for a run known only to MLflow."""
    if info.run_dir is not None:
        return info.run_dir.resolve()
    if info.run_id or not info.model_ref:
        return None
    return Path(info.model_ref).resolve()


def _present(infos: list[RunInfo | None]) -> list[RunInfo]:
    """The runs with a model (those without one were skipped with a message)."""
    return [i for i in infos if i is not None]


def _read_params(path: Path) -> dict[str, str]:
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
            key = (info.run_id or str(_place(info) or ""), info.kind)
            if key not in seen:
                seen.add(key)
                runs.append(info)
    for info in runs:
        info.group = info.params.get("experiment.group", "") or info.tags.get("harness.group", "")
        info.seed = info.params.get("experiment.seed", "")
        if info.kind != FINAL:
            info.label = f"{info.label}@{info.kind}"
            info.group = f"{info.group}@{info.kind}" if info.group else ""
    labels = [r.label for r in runs]
    for info in runs:
        if labels.count(info.label) > 1 or info.label == "bicubic":
            info.label = f"{info.label} ({info.run_id[:8] or info.run_dir or info.model_ref})"
    for info in runs:
        _name_source(info, runs, resolver)
    scales = sorted({r.scale for r in runs if r.scale is not None})
    if len(scales) > 1:
        raise ReportError(
            f"the runs upscale by different factors ({scales}); report runs of one scale together."
        )
    return runs


def _name_source(info: RunInfo, runs: Sequence[RunInfo], resolver: _Resolver) -> None:
    if not (info.init_ref or info.init_run):
        return
    source = None
    if info.init_ref:
        try:
            source = parse_reference(info.init_ref)
        except ModelReferenceError:  # a source MLflow refuses: named by its run id, if any
            source = None
    suffix = source.name if source is not None and source.kind == refs.KEPT else ""
    local = source.run_path if source is not None else None
    src_dir = local.resolve() if local is not None else None
    candidates = [
        o
        for o in runs
        if o is not info
        and (
            (info.init_run and o.run_id == info.init_run)
            or (src_dir is not None and _place(o) == src_dir)
        )
    ]
    if candidates:
        best = next((o for o in candidates if o.kind == (suffix or FINAL)), candidates[0])
        name = best.label.split("@")[0] if best.kind != FINAL else best.label
        info.init_label = f"{name}@{suffix}" if suffix else name
        return
    name = ""
    if info.init_run:
        run = resolver.store.get_run(info.uri, info.init_run)
        name = run.info.run_name if run is not None else ""
    info.init_label = f"{name or info.init_ref} (not in this report)"


__all__ = ["FINAL", "ReportError", "RunInfo", "resolve_runs"]
