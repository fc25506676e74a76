"""A comparison: several experiments run one after another in dependency order, then reported.

``harness compare experiments/compare`` trains every experiment of the folder (files starting
with ``_`` are shared bases, not experiments), an experiment whose ``[generator] init`` or
``[discriminator] init`` names another one's run directory after that one, and then writes
``harness report`` over all their runs. Each training is its own ``harness run`` process (as a
sweep trial is), so a failure stops the chain with that run's message and a restart resumes:
finished runs are skipped, an interrupted one continues from its checkpoint.

With ``--seeds N`` (or ``[experiment] seeds``) each experiment trains N times, with seeds
``seed, seed + 1, ...``, each replicate a run ``<name>-seed<seed>`` whose ``[experiment] group``
is the experiment's name (the MLflow tag ``harness.group``, by which the report groups them).
An experiment that others of the comparison start from trains once: the base stays shared, and
every replicate of a fine-tune starts from the same generator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import config
from harness.errors import HarnessError
from harness.references import ModelReferenceError, parse_reference
from harness.rundir import RunDir

if TYPE_CHECKING:
    from harness.plugin_api.registry import Registry


@dataclass(frozen=True)
class Planned:
    """One experiment of a comparison."""

    path: Path
    exp: config.Experiment
    overrides: tuple[str, ...] = ()  # a replicate's own seed, name and group

    @property
    def run_dir(self) -> Path:
        return self.exp.run_dir


def experiment_files(specs: Sequence[str]) -> list[Path]:
    """Folders -> their ``*.toml`` files (sorted, ``_*.toml`` bases skipped); files as given."""
    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if not p.name.startswith("_"))
            if not found:
                raise HarnessError(
                    f"{path} holds no experiment files (*.toml not starting with _)."
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise HarnessError(f"{spec} is neither an experiment file nor a folder of them.")
    return files


def replicate_overrides(name: str, seed: int) -> tuple[str, ...]:
    """The ``--set`` items that make the replicate of experiment ``name`` with ``seed``."""
    return (
        f"experiment.seed={seed}",
        f'experiment.name="{name}-seed{seed}"',
        f'experiment.group="{name}"',
    )


def replicate(
    ordered: Sequence[Planned],
    sources: set[Path],
    overrides: Sequence[str],
    seeds: int | None,
    registry: Registry,
) -> list[Planned]:
    """Each experiment of ``ordered`` as its ``seeds`` (else its ``[experiment] seeds``)
    replicates; an init source of another (a path in ``sources``) stays one run."""
    out: list[Planned] = []
    for p in ordered:
        count = seeds or p.exp.experiment.seeds
        if count == 1 or p.path in sources:
            out.append(p)
            continue
        first, name = p.exp.experiment.seed, p.exp.experiment.name
        for seed in range(first, first + count):
            extra = replicate_overrides(name, seed)
            exp = config.load(p.path, [*overrides, *extra], registry=registry)
            out.append(Planned(p.path, exp, extra))
    return out


def plan(
    specs: Sequence[str],
    overrides: Sequence[str] = (),
    *,
    registry: Registry,
    seeds: int | None = None,
) -> list[Planned]:
    """The experiments of ``specs`` (loaded with ``overrides`` and the plugins of
    ``registry``), each after its init sources, each as ``seeds`` replicates (default: its
    ``[experiment] seeds``) unless others start from it."""
    if seeds is not None and seeds < 1:
        raise HarnessError(f"--seeds must be at least 1, not {seeds}.")
    planned = [
        Planned(p, config.load(p, list(overrides), registry=registry))
        for p in experiment_files(specs)
    ]
    dirs = {p.run_dir.resolve(): p for p in planned}
    names = [p.run_dir.resolve() for p in planned]
    if len(set(names)) != len(names):
        raise HarnessError(
            "two experiments of the comparison write the same run directory; give each its own "
            "[experiment] name."
        )

    def sources(p: Planned) -> list[Planned]:
        out = []
        for ref in (p.exp.generator.init, p.exp.discriminator.init):
            if not ref:
                continue
            try:
                local = parse_reference(ref).run_path
            except ModelReferenceError:  # loading it says what is wrong; it orders nothing
                continue
            target = local.resolve() if local is not None else None
            if target in dirs and dirs[target] is not p:
                out.append(dirs[target])
        return out

    ordered: list[Planned] = []
    visiting: set[Path] = set()

    def visit(p: Planned) -> None:
        if p in ordered:
            return
        if p.path in visiting:
            raise HarnessError(f"{p.path}: its init sources form a cycle.")
        visiting.add(p.path)
        for source in sources(p):
            visit(source)
        visiting.discard(p.path)
        ordered.append(p)

    for p in planned:
        visit(p)
    shared = {s.path for p in ordered for s in sources(p)}
    out = replicate(ordered, shared, overrides, seeds, registry)
    dirs_out = [p.run_dir.resolve() for p in out]
    if len(set(dirs_out)) != len(dirs_out):
        raise HarnessError(
            "two replicates of the comparison write the same run directory (an experiment "
            "named like another's <name>-seed<seed>); rename one [experiment] name."
        )
    return out


def start_files(planned: Sequence[Planned]) -> list[str]:
    """The ``.keras`` files (not runs of the comparison) that the planned experiments'
    generators start from, e.g. a committed base: the report scores them first, so that each
    fine-tune is measured against its start."""
    out: list[str] = []
    for p in planned:
        ref = p.exp.generator.init
        try:
            local = parse_reference(ref).path if ref else None
        except ModelReferenceError:  # training said what is wrong with it
            continue
        if local is not None and local.is_file() and local.suffix == ".keras" and ref not in out:
            out.append(ref)
    return out


def finished(p: Planned) -> bool:
    """The run reached ``train.steps`` and wrote its final generator."""
    import tensorflow as tf  # heavy: only reading a run's checkpoint state needs TensorFlow

    run = RunDir(p.run_dir)
    latest = tf.train.latest_checkpoint(str(run.checkpoints))
    if latest is None or not run.generator.is_file():
        return False
    return int(latest.rsplit("-", 1)[-1]) >= p.exp.train.steps


def run_all(
    planned: Sequence[Planned], overrides: Sequence[str] = (), say=print, quiet: bool = True
) -> None:
    """Train each planned experiment that is not finished, one process each, in order."""
    for i, p in enumerate(planned, 1):
        head = f"[{i}/{len(planned)}] {p.path} -> {p.run_dir}"
        if finished(p):
            say(f"{head}: finished, skipped")
            continue
        say(f"{head}: training")
        # -P: the working directory is not put first on sys.path, so a folder named like a
        # package there (a checkout of another version, say) cannot shadow the installed one
        cmd = [sys.executable, "-P", "-m", "harness.cli", "run", str(p.path)]
        for item in (*overrides, *p.overrides):
            cmd += ["--set", item]
        if quiet:
            cmd.append("--quiet")
        done = subprocess.run(cmd, env=dict(os.environ))
        if done.returncode != 0:
            raise HarnessError(
                f"{p.path} stopped with exit code {done.returncode} (its message is above). "
                "Fix it and run the same command again: finished runs are skipped and this one "
                "resumes from its checkpoint."
            )


__all__ = [
    "Planned",
    "experiment_files",
    "finished",
    "plan",
    "replicate",
    "replicate_overrides",
    "run_all",
    "start_files",
]
