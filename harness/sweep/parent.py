"""The sweep's MLflow parent run (one per study, shared by every worker), its best trials and
the study's plots.

All MLflow calls go through :mod:`harness.tracking` (a :class:`~harness.tracking.Tracker` for
the parent run, :func:`~harness.tracking.annotate_run` for a finished trial's run).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from harness import diskwrite, tracking
from harness.run_context import experiment_url, run_url, ui_address, ui_command
from harness.rundir import EXPERIMENT_FILE
from harness.sweep.artifacts import artifact_dir
from harness.sweep.plan import Objective, Plan, SweepError, redact
from harness.sweep.storage import PARENT_ATTR, RUN_ATTR, counts, quiet_optuna
from harness.tracking import Tracker, run_is_active


class ParentRun:
    """The sweep's MLflow parent run: one per study, shared by every worker."""

    def __init__(self, p: Plan, study: optuna.Study) -> None:
        self.uri = tracking.tracking_uri(p.exp)
        self.experiment = tracking.experiment_name(p.exp)
        try:
            self.tracker = self._get_or_create(p, study)
        except tracking.TrackingError:
            raise  # names the store and the fix already
        except Exception as exc:
            raise SweepError(
                f"MLflow tracking store {self.uri} failed: {exc}. Check [tracking].uri or "
                "MLFLOW_TRACKING_URI."
            ) from exc
        self.run_id = self.tracker.run_id
        self.experiment_id = self.tracker.client.get_run(self.run_id).info.experiment_id
        self.ui = ui_address(self.uri)

    def run_url(self, run_id: str) -> str:
        """The MLflow UI page of ``run_id`` (model-training view; "" without a run id)."""
        return run_url(self.uri, self.experiment_id, run_id) if run_id else ""

    def note(self, trial_run_id: str = "") -> str:
        """Markdown links to MLflow, for optuna-dashboard's note of a trial (its run, the
        parent run) or, without ``trial_run_id``, of the study."""
        lines = ["**MLflow**", ""]
        if trial_run_id:
            lines.append(f"- [this trial's run]({self.run_url(trial_run_id)}) `{trial_run_id}`")
        lines += [
            f"- [the sweep's parent run]({self.run_url(self.run_id)}) `{self.run_id}`",
            f"- [the experiment's runs]({experiment_url(self.uri, self.experiment_id)}) "
            f"`{self.experiment}`",
            "",
            f"Open them with `{ui_command(self.uri)}` running." if ui_command(self.uri) else "",
        ]
        return "\n".join(lines).rstrip() + "\n"

    def link(self, p: Plan, study: Any) -> None:
        """Study user attributes that lead to MLflow (and to the artifact store), so
        optuna-dashboard shows where the trials' runs are."""
        attrs = {
            "mlflow_tracking_uri": redact(self.uri),
            "mlflow_experiment": self.experiment,
            "mlflow_experiment_id": self.experiment_id,
            PARENT_ATTR: self.run_id,
            "artifact_dir": str(artifact_dir(p)),
        }
        attrs["mlflow_url"] = experiment_url(self.uri, self.experiment_id)
        attrs["mlflow_parent_run_url"] = self.run_url(self.run_id)
        known = study.user_attrs
        for key, value in attrs.items():
            if known.get(key) != value:
                study.set_user_attr(key, value)
        save_note(study, self.note())

    @staticmethod
    def _get_or_create(p: Plan, study: optuna.Study) -> Tracker:
        known = study.user_attrs.get(PARENT_ATTR)
        if known and run_is_active(p.exp, known):
            return Tracker(p.exp, run_id=known)
        tracker = Tracker(
            p.exp,
            run_name=f"sweep {p.study_name}",
            tags={
                "optuna.study": p.study_name,
                "optuna.storage": redact(p.storage_url),
                "harness.sweep": "parent",
            },
        )
        # Two workers starting together may both create one: a run another worker recorded
        # meanwhile wins; else the last writer's run is kept (writes within a second).
        for wait in (0.0, 1.0):
            if wait:
                study.set_user_attr(PARENT_ATTR, tracker.run_id)
                time.sleep(wait)
            kept = study.user_attrs.get(PARENT_ATTR)
            if kept and kept != tracker.run_id and run_is_active(p.exp, kept):
                tracker.delete()
                return Tracker(p.exp, run_id=kept)
        _log_setup(p, tracker)
        return tracker

    def summarise(self, p: Plan, study: optuna.Study) -> None:
        """Best trial(s), counts and plots onto the parent run (each worker, at its end).

        Metrics are logged at the step "trials done", so they read as the study's progress.
        """
        c = counts(study)
        metrics: dict[str, float] = {f"sweep/trials_{k}": v for k, v in c.items()}
        best = best_trials(study, p.objectives)
        if best:
            top = best[0]
            tags = {
                "best.trial_number": top.number,
                "best.mlflow_run_id": top.user_attrs.get(RUN_ATTR, ""),
                **{f"best.params.{k}": v for k, v in top.params.items()},
            }
            self.tracker.set_tags(tags)
            if len(p.objectives) == 1:
                metrics[f"best/{p.objectives[0].metric}"] = top.values[0]
        self.tracker.log_metrics(metrics, step=c["done"])
        with tempfile.TemporaryDirectory() as tmp:
            report = [
                {
                    "number": t.number,
                    "values": dict(zip([o.metric for o in p.objectives], t.values, strict=True)),
                    "params": t.params,
                    RUN_ATTR: t.user_attrs.get(RUN_ATTR),
                }
                for t in best
            ]
            (Path(tmp) / "best_trials.json").write_text(json.dumps(report, indent=2))
            self.tracker.log_artifact(Path(tmp) / "best_trials.json")
            for path in save_plots(study, p.objectives, Path(tmp) / "plots"):
                self.tracker.log_artifact(path, "plots")

    def end(self, status: str = "FINISHED") -> None:
        """Mark the parent run FINISHED or KILLED (never raises: the sweep's result matters)."""
        with contextlib.suppress(Exception):
            self.tracker.end(status)


def save_note(study_or_trial: Any, body: str) -> bool:
    """``body`` (Markdown) as optuna-dashboard's note of a study or a trial, where its links
    are clickable (user attributes show as plain text); ``False`` without optuna-dashboard
    (the dashboard extra) or when the storage refuses it."""
    try:
        from optuna_dashboard import save_note as save  # optional: the dashboard extra
    except ImportError:
        return False
    try:
        save(study_or_trial, body)
    except Exception:  # noqa: BLE001 - the links are also user attributes
        return False
    return True


def _log_setup(p: Plan, tracker: Tracker) -> None:
    """The sweep's setup as the parent run's parameters, and the resolved experiment."""
    s = p.sweep
    params = {
        "sweep.study": p.study_name,
        "sweep.mode": s.mode,
        "sweep.sampler": s.sampler,
        "sweep.pruner": s.pruner if len(p.objectives) == 1 else "none",
        "sweep.objectives": json.dumps([o.__dict__ for o in p.objectives]),
    }
    for key, spec in s.params.items():
        params[f"sweep.params.{key}"] = json.dumps(spec)
    tracker.log_params(params)
    tracker.log_bytes(p.exp.to_toml().encode("utf-8"), EXPERIMENT_FILE)


def save_plots(study: optuna.Study, objectives: Sequence[Objective], folder: Path) -> list[Path]:
    """The study's plots as PNG files (matplotlib backend; plots that cannot be drawn yet, say
    parameter importances with one finished trial, are skipped)."""
    import matplotlib  # heavy, and only when a worker summarises: imported here, headless

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # as above
    import optuna.visualization.matplotlib as vis  # as above

    quiet_optuna()
    folder.mkdir(parents=True, exist_ok=True)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    names = [o.metric for o in objectives]
    jobs: list[tuple[str, Any]] = []
    if len(objectives) == 1:
        jobs += [
            ("optimization_history", lambda: vis.plot_optimization_history(study)),
            ("param_importances", lambda: vis.plot_param_importances(study)),
            ("intermediate_values", lambda: vis.plot_intermediate_values(study)),
        ]
    else:
        for i, name in enumerate(names):
            slug = name.replace("/", "_")
            jobs += [
                (
                    f"optimization_history_{slug}",
                    lambda i=i, name=name: vis.plot_optimization_history(
                        study, target=lambda t: t.values[i], target_name=name
                    ),
                ),
                (
                    f"param_importances_{slug}",
                    lambda i=i, name=name: vis.plot_param_importances(
                        study, target=lambda t: t.values[i], target_name=name
                    ),
                ),
            ]
        if len(objectives) in (2, 3):
            jobs.append(("pareto_front", lambda: vis.plot_pareto_front(study, target_names=names)))
    saved = []
    for name, draw in jobs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = draw()
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            path = folder / f"{name}.png"
            with diskwrite.atomic(path) as tmp:
                figure.savefig(tmp, dpi=100)
            saved.append(path)
        except Exception:  # noqa: S112 - a plot that cannot be drawn yet is left out
            continue
        finally:
            plt.close("all")
    optuna.logging.set_verbosity(verbosity)
    return saved


def best_trials(study: optuna.Study, objectives: Sequence[Objective]) -> list[Any]:
    """The best trial first (one objective: sorted by value), or the Pareto front."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return []
    if len(objectives) > 1:
        return sorted(study.best_trials, key=lambda t: t.number)
    sign = -1.0 if objectives[0].direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * t.values[0], t.number))
