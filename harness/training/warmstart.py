"""Warm starts: a new run's networks start from another run's weights.

``[generator] init = "runs/base"`` (and ``[discriminator] init``) is BasicSR's
``pretrain_network_g`` / ``pretrain_network_d``: the weights are copied into the freshly built
network before the first step of a *new* run; the optimizer, the step counter and the schedules
start afresh. A resumed run restores its own checkpoint instead and never reads ``init``.

A source is any model reference (:func:`harness.references.parse_reference`): a run directory,
with ``@best_psnr_y`` or another kept generator after it, a checkpoint, a ``.keras`` file or an
MLflow model. For a discriminator, a run directory (its ``discriminator.keras``, else its newest
readable checkpoint: a truncated newer one is skipped with a warning, as for the generator), a
checkpoint or a ``.keras`` file. The shapes must agree weight by weight; a
mismatch is one error naming both models. :func:`lineage` says which MLflow run a source came
from, so the comparison of several fine-tunes can show that they share a start.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from harness import references as refs
from harness.deploy import models
from harness.deploy.models import load_keras_file
from harness.errors import HarnessError, HarnessWarning
from harness.references import ModelRef, ModelReferenceError, parse_reference
from harness.rundir import (
    CHECKPOINTS,
    DISCRIMINATOR_FILE,
    RunDir,
    checkpoint_readable,
    intact_checkpoint,
)
from harness.training import precision
from harness.training.step import config_text

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry


class WarmStartError(HarnessError):
    """An ``init`` source cannot be loaded or does not fit the network."""


@dataclass(frozen=True)
class Source:
    """Where a warm start came from: the reference as written and its MLflow run, if known."""

    network: str  # "generator" or "discriminator"
    ref: str
    run_id: str = ""


def lineage(ref: str | ModelRef) -> str:
    """The MLflow run id a model reference belongs to ("" when it cannot be told)."""
    try:
        parsed = parse_reference(ref)
    except ModelReferenceError:
        return ""
    run = parsed.run
    return parsed.run_id or (run.read_run_id() if run is not None else "")


def _describe(model: Any) -> str:
    return f'"{model.name}" ({len(model.weights)} weights, {model.count_params():,} parameters)'


def copy_weights(target: Any, source: Any, network: str, ref: str, target_desc: str) -> None:
    """Copy ``source``'s weights into ``target`` (same architecture), or raise naming both."""
    t_weights, s_weights = target.weights, source.weights
    problem = ""
    if len(t_weights) != len(s_weights):
        problem = f"{len(s_weights)} weights against {len(t_weights)}"
    else:
        for tw, sw in zip(t_weights, s_weights, strict=True):
            if tuple(tw.shape) != tuple(sw.shape):
                problem = (
                    f"first difference: {sw.path} has shape {tuple(sw.shape)} in the source, "
                    f"{tw.path} has {tuple(tw.shape)} here"
                )
                break
    if problem:
        raise WarmStartError(
            f"[{network}] init: the {network} in {ref} is {_describe(source)}, but this "
            f"experiment builds {target_desc}, {_describe(target)}; {problem}. Give an init "
            f"source trained with the same [{network}] table, or change [{network}] to match it."
        )
    target.set_weights(source.get_weights())


def load_generator(ref: str | ModelRef, registry: Registry, tracking_uri: str | None = None) -> Any:
    """The generator ``ref`` names (any model reference; an MLflow one in ``tracking_uri``)."""
    try:
        return models.load_generator(ref, registry=registry, tracking_uri=tracking_uri)
    except ModelReferenceError as exc:
        raise WarmStartError(f"[generator] init: {exc}") from None


def _intact_prefix(path: Path, ref: str | ModelRef) -> str | None:
    """The newest readable checkpoint of the run directory or checkpoint folder ``path``, as
    the generator's ``init`` and a resumed run choose it: an unreadable newer one is skipped
    with a warning; none readable is an error; ``None`` when there is no checkpoint."""
    for directory in (RunDir(path).checkpoints, path):
        prefix, skipped = intact_checkpoint(directory)
        if prefix is None and skipped:
            raise WarmStartError(
                f'[discriminator] init: no checkpoint in {directory} ("{ref}") can be read '
                f"({', '.join(skipped)}: truncated or corrupt) and the run has no "
                f"{DISCRIMINATOR_FILE}. Give another source, or drop [discriminator] init."
            )
        if skipped:
            warnings.warn(
                f"[discriminator] init: could not read {', '.join(skipped)} in {directory} "
                f"(truncated or corrupt); loaded the older {Path(prefix).name}",
                HarnessWarning,
                stacklevel=4,
            )
        if prefix is not None:
            return prefix
    return None


def load_discriminator(ref: str | ModelRef, build: Any, registry: Registry) -> Any:
    """The discriminator ``ref`` names; ``build()`` makes an empty one to restore a checkpoint
    into."""
    try:
        parsed = parse_reference(ref)
    except ModelReferenceError as exc:
        raise WarmStartError(f"[discriminator] init: {exc}") from None
    path, prefix = parsed.path, None
    folder = path is not None and path.is_dir()
    if parsed.kind == refs.KERAS:
        return load_keras_file(path, registry=registry)
    if folder and RunDir(path).discriminator.is_file():
        return load_keras_file(RunDir(path).discriminator, registry=registry)
    if parsed.kind == refs.CHECKPOINT and not folder:
        prefix = str(path)
        if not checkpoint_readable(prefix):
            raise WarmStartError(
                f"[discriminator] init: checkpoint {prefix} cannot be read (truncated or "
                "corrupt); give the run directory or its checkpoints/ folder to load the newest "
                "intact one."
            )
    elif folder:
        prefix = _intact_prefix(path, ref)
    if prefix is None:
        raise WarmStartError(
            f'[discriminator] init: "{ref}" is neither a run directory (with '
            f"{DISCRIMINATOR_FILE} or {CHECKPOINTS}/), a checkpoint nor a .keras file."
        )
    model = build()
    try:
        status = tf.train.Checkpoint(discriminator=model).read(prefix).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError) as exc:
        raise WarmStartError(
            f"[discriminator] init: checkpoint {prefix} holds no discriminator that fits "
            f"{_describe(model)} ({str(exc).splitlines()[0][:200]})."
        ) from None
    return model


def warm_start(trainer: Any) -> list[Source]:
    """Copy ``[generator] init`` / ``[discriminator] init`` weights into a fresh
    :class:`~harness.training.step.Trainer`'s networks (a new run only); the sources used."""
    exp, sources = trainer.exp, []
    if exp.generator.init:
        # an MLflow model of the experiment's own store, as its run's lineage is read there
        source = load_generator(exp.generator.init, trainer.registry, exp.tracking.uri or None)
        desc = f"[generator] {exp.generator.name} ({config_text(exp.generator.params)})"
        copy_weights(trainer.generator, source, "generator", exp.generator.init, desc)
        if trainer.ema_generator is not None:
            trainer.ema_generator.set_weights(trainer.generator.get_weights())
        sources.append(Source("generator", exp.generator.init, lineage(exp.generator.init)))
    if exp.discriminator.init and trainer.discriminator is not None:
        d_factory = trainer.registry.factory("discriminator", exp.discriminator.name)

        def build() -> Any:
            with precision.policy_scope(trainer.policy):
                return d_factory(patch=exp.data.patch, **exp.discriminator.params)

        source = load_discriminator(exp.discriminator.init, build, trainer.registry)
        desc = f"[discriminator] {exp.discriminator.name} ({config_text(exp.discriminator.params)})"
        copy_weights(trainer.discriminator, source, "discriminator", exp.discriminator.init, desc)
        sources.append(
            Source("discriminator", exp.discriminator.init, lineage(exp.discriminator.init))
        )
    return sources


__all__ = [
    "Source",
    "WarmStartError",
    "copy_weights",
    "lineage",
    "load_discriminator",
    "load_generator",
    "warm_start",
]
