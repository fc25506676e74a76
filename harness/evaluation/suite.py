"""Evaluation suites: a model (or bicubic) scored on benchmark folders, as ``harness evaluate``
runs it and ``harness report`` reuses it.

A data spec is a folder of HR images, or a folder of clip folders of frames (the Vid4 layout:
one data set per clip, and their mean as a group). The protocol is
:mod:`harness.measures`; each metric plugin is measured on the protocol it declares.
The result prints as text tables and writes as JSON or CSV; :mod:`harness.evaluation.mlflow_log`
logs it to the model's MLflow run.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import diskwrite
from harness import references as refs
from harness.data import images
from harness.data.folders import SKIMAGE, folder_label, resolve
from harness.data.pairs import load_pairs
from harness.data.pipeline import load_folder
from harness.deploy import models
from harness.errors import HarnessError
from harness.evaluation.tables import format_measure, text_table
from harness.measures.bicubic import bicubic_upscaler
from harness.measures.quality import PSNR_CAP
from harness.measures.scoring import EvalResult, evaluate
from harness.plugin_api.metrics import MetricProtocol, build_metric, metric_protocol
from harness.references import ModelRef, parse_reference

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry

DEFAULT_METRICS: tuple[str, ...] = ("lpips", "dists")
"""Perceptual metrics a report measures by default: those of these that are registered."""


@dataclass(frozen=True)
class Suite:
    """One data set to score: a folder of images (or of video frames) and its label."""

    label: str
    spec: str
    group: str = ""  # the clip collection this folder belongs to ("" for a plain folder)
    lr: str = ""  # a folder of given LR images matching spec's HR by name ("" -> bicubic LR)

    def images(self, scale: int, limit: int = 0) -> list[Any]:
        """``(name, uint8 HR)``, or ``(name, uint8 HR, uint8 LR)`` with given LR images."""
        if self.lr:
            return list(load_pairs(self.spec, self.lr, scale, limit=limit))
        return list(load_folder(self.spec, scale, limit=limit))


def discover(specs: Sequence[str], lr_specs: Sequence[str] = ()) -> list[Suite]:
    """Folder specs -> data sets. A folder holding no images but subfolders of images (the Vid4
    layout: one folder of frames per clip) becomes one data set per clip, in a group.

    ``lr_specs`` (one per spec, in order, or none) are folders of given LR images; for a clip
    folder, the LR of clip ``c`` is ``<lr>/c``."""
    if lr_specs and len(lr_specs) != len(specs):
        raise HarnessError(
            f"{len(lr_specs)} --lr folders for {len(specs)} --data folders: give one --lr per "
            "--data folder, in the same order (or none, for bicubic LR)."
        )
    suites: list[Suite] = []
    for i, spec in enumerate(specs):
        lr = lr_specs[i] if lr_specs else ""
        if spec == SKIMAGE:
            suites.append(Suite(SKIMAGE, spec, lr=lr))
            continue
        folder = Path(spec).expanduser()
        files = resolve(spec)  # raises with a download hint when missing
        label = folder_label(spec)
        if files:
            suites.append(Suite(label, spec, lr=lr))
            continue
        clips = sorted(p for p in folder.iterdir() if p.is_dir() and images.list_images(p))
        if not clips:
            raise HarnessError(
                f"{folder} holds no images ({', '.join(images.IMAGE_SUFFIXES)}) and no "
                "subfolders of images (video frames)."
            )
        suites.extend(
            Suite(f"{label}/{clip.name}", str(clip), label, str(Path(lr) / clip.name) if lr else "")
            for clip in clips
        )
    labels = [s.label for s in suites]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise HarnessError(
            f"two data folders have the same name ({', '.join(dupes)}); give each data set a "
            "folder with a distinct name."
        )
    return suites


def metric_key(label: str, measure: str) -> str:
    """``eval/<data set>/<measure>`` with characters MLflow refuses replaced."""
    safe = re.sub(r"[^0-9A-Za-z_\-./ ]", "_", label)
    return f"eval/{safe}/{measure}"


def metric_functions(
    registry: Registry, names: Sequence[str] | None, where: str = "--metric"
) -> dict[str, Callable[..., float]]:
    """The metric plugins ``names`` (``None``: the registered ones of :data:`DEFAULT_METRICS`),
    built from ``registry`` with their declared protocols."""
    if names is None:
        names = [n for n in DEFAULT_METRICS if n in registry.names("metric")]
    return {n: build_metric(registry.factory("metric", n, where=where)) for n in names}


def load_model(
    ref: str | ModelRef, registry: Registry, scale: int | None = None, tile: int = 0
) -> tuple[Any, int]:
    """``(upscaler, scale)`` of a model reference, or of ``bicubic`` (scale 4 by default); a
    ``scale`` given for a model must be the model's."""
    ref = parse_reference(ref, bicubic=True)
    if ref.kind == refs.BICUBIC:
        scale = scale or 4
        return bicubic_upscaler(scale), scale

    upscaler = models.load_upscaler(ref, registry=registry, tile=tile)
    model_scale = int(upscaler.scale)
    if scale and scale != model_scale:
        raise HarnessError(
            f"--scale {scale} does not match the model's scale {model_scale}; drop --scale."
        )
    return upscaler, model_scale


@dataclass
class SuiteResult:
    """A model's scores on each data set, the clip groups' means and the metric protocols."""

    model: str
    scale: int
    border: int
    results: dict[str, EvalResult]
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    protocols: dict[str, MetricProtocol] = field(default_factory=dict)

    @property
    def measures(self) -> tuple[str, ...]:
        return next(iter(self.results.values())).measures

    def to_dict(self) -> dict[str, Any]:
        """The JSON report: every number, per image too."""
        return {
            "model": self.model,
            "scale": self.scale,
            "border": self.border,
            "protocols": {name: dataclasses.asdict(p) for name, p in self.protocols.items()},
            "datasets": {label: res.to_dict() for label, res in self.results.items()},
            "groups": self.groups,
        }

    def metric_values(self) -> dict[str, float]:
        """``eval/<data set>/<measure>`` -> mean, for the data sets and the clip groups."""
        values = {
            metric_key(label, m): res.mean(m)
            for label, res in self.results.items()
            for m in self.measures
        }
        values.update({metric_key(g, m): v[m] for g, v in self.groups.items() for m in v})
        return values

    def _cell(self, value: float, measure: str) -> str:
        return format_measure(value, measure, self.protocols)

    def text(self, summary: bool = False) -> str:
        """The tables ``harness evaluate`` prints: per image for each set (unless ``summary``),
        then the mean of each data set and clip group."""
        measures = self.measures
        out = []
        if not summary:
            for label, res in self.results.items():
                head = (
                    f"{label}  ({len(res.images)} images, scale {self.scale}, border {self.border})"
                )
                rows = [
                    [
                        s.name + ("*" if s.capped else ""),
                        *(self._cell(s.as_dict()[m], m) for m in measures),
                    ]
                    for s in res.images
                ]
                rows.append(["mean", *(self._cell(res.mean(m), m) for m in measures)])
                out += [head, text_table(["image", *measures], rows), ""]
        rows = [
            [label, str(len(res.images)), *(self._cell(res.mean(m), m) for m in measures)]
            for label, res in self.results.items()
        ]
        rows += [
            [f"{g} (mean of clips)", "", *(self._cell(v[m], m) for m in measures)]
            for g, v in self.groups.items()
        ]
        out.append(
            f"model: {self.model}  scale {self.scale}  border {self.border}  (Y: BT.601 16..235)"
        )
        out += [f"{name}: {protocol.describe()}" for name, protocol in self.protocols.items()]
        out.append(text_table(["data set", "images", *measures], rows))
        capped = [f"{k}/{s.name}" for k, r in self.results.items() for s in r.images if s.capped]
        if capped:
            out.append(
                f"* {', '.join(capped)}: SR equal to HR, PSNR infinite, counted as "
                f"{PSNR_CAP:g} dB (the cap) in the means."
            )
        return "\n".join(out)

    def write_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        diskwrite.write_json(path, self.to_dict(), null=True)

    def write_csv(self, path: str | Path) -> None:
        """One row per image, then the mean of each set, then each group's mean of clips."""
        measures = self.measures
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with diskwrite.atomic(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["dataset", "image", *measures])
            for label, res in self.results.items():
                for s in res.images:
                    writer.writerow([label, s.name, *(s.as_dict()[m] for m in measures)])
                writer.writerow([label, "mean", *(res.mean(m) for m in measures)])
            for g, v in self.groups.items():
                writer.writerow([g, "mean of clips", *(v[m] for m in measures)])


def group_means(
    suites: Sequence[Suite], results: Mapping[str, EvalResult]
) -> dict[str, dict[str, float]]:
    """Each clip collection's mean of its clips' means (Vid4: the mean over the four clips)."""
    groups: dict[str, dict[str, float]] = {}
    for group in dict.fromkeys(s.group for s in suites if s.group):
        members = [results[s.label] for s in suites if s.group == group]
        groups[group] = {
            m: sum(r.mean(m) for r in members) / len(members) for m in members[0].measures
        }
    return groups


def evaluate_folders(
    model_ref: str | ModelRef,
    specs: Sequence[str],
    registry: Registry,
    *,
    scale: int | None = None,
    border: int | None = None,
    limit: int = 0,
    tile: int = 0,
    metrics: Sequence[str] = (),
    lr_specs: Sequence[str] = (),
) -> SuiteResult:
    """Score ``model_ref`` (``bicubic`` or any model reference) on the data sets of ``specs``:
    the protocol's measures plus the metric plugins ``metrics`` of ``registry``. With
    ``lr_specs`` (one folder per spec) the given LR images are upscaled instead of bicubic LR
    (``bicubic`` then upscales them with MATLAB bicubic)."""
    if not specs:
        raise HarnessError(
            "no data to evaluate on: give folders with --data DIR (e.g. --data data/set5); "
            "`harness data download set5 --dest data` fetches one."
        )
    if scale is not None and scale < 1:
        raise HarnessError(f"--scale must be at least 1, not {scale}.")
    suites = discover(specs, lr_specs)
    upscale, scale = load_model(model_ref, registry, scale, tile)
    border = scale if border is None else border
    extra = metric_functions(registry, list(metrics))
    results = {
        suite.label: evaluate(upscale, suite.images(scale, limit), scale, border, extra)
        for suite in suites
    }
    return SuiteResult(
        model=str(model_ref),
        scale=scale,
        border=border,
        results=results,
        groups=group_means(suites, results),
        protocols={name: metric_protocol(fn) for name, fn in extra.items()},
    )


__all__ = [
    "DEFAULT_METRICS",
    "Suite",
    "SuiteResult",
    "discover",
    "evaluate_folders",
    "group_means",
    "load_model",
    "metric_functions",
    "metric_key",
]
