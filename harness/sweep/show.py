"""``harness sweep --show``: the study's best trials as a text table, from the storage alone
(no MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.evaluation.tables import text_table
from harness.sweep import preferential
from harness.sweep.parent import best_trials
from harness.sweep.plan import Plan, SweepError, redact
from harness.sweep.storage import RUN_ATTR, counts, open_storage, open_study


def show(p: Plan, top: int = 10) -> str:
    """The best trials (one objective) or the Pareto front, under a line of counts."""
    if p.storage_url.startswith("sqlite:///"):
        path = Path(p.storage_url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise SweepError(
                f"there is no sweep storage {path}: run `harness sweep {p.path}` first, or name "
                "the storage with --storage."
            )
    if p.sweep.mode == "preferential":
        return preferential.show(p, top)
    study = open_study(p, open_storage(p.storage_url), create=False)
    c = counts(study)
    best = best_trials(study, p.objectives)
    head = (
        f'study "{p.study_name}" in {redact(p.storage_url)}: {c["complete"]} complete, '
        f"{c['pruned']} pruned, {c['failed']} failed, {c['running']} running"
        + (f", {c['retry']} interrupted" if c["retry"] else "")
        + (f", {c['waiting']} queued" if c["waiting"] else "")
    )
    if not best:
        return head + "\nno complete trial yet"
    title = "Pareto front" if len(p.objectives) > 1 else f"best {min(top, len(best))}"
    rows = best[:top] if len(p.objectives) == 1 else best
    keys = sorted({k for t in rows for k in t.params})
    header = [
        "rank",
        "trial",
        *(f"{o.metric} ({'max' if o.direction == 'maximize' else 'min'})" for o in p.objectives),
        *keys,
        "mlflow run",
    ]
    table = [
        [
            i,
            t.number,
            *(f"{v:.4f}" for v in t.values),
            *(_cell(t.params.get(k)) for k in keys),
            t.user_attrs.get(RUN_ATTR, ""),
        ]
        for i, t in enumerate(rows, 1)
    ]
    return "\n".join([head, f"{title}:", text_table(header, table)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
