"""Section 2, traceability and reproducibility: retraining and rollback (statements 27-28).

"Regularly" means something runs the work on a schedule: a scheduled workflow, an active
CronJob, an Airflow DAG with a schedule.
"""

from __future__ import annotations

import re

from noria.maturity import _evidence as ev
from noria.maturity._context import Context
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_documentation import filled

RUN_TRAINING = r"noria\s+(monitor\s+run|pipeline\s+run)|kubectl\b.*\bcreate\s+job|\bpipeline\b.*\brun\b"


def scheduled(ctx: Context, pattern: str) -> list[Evidence]:
    """Something that runs ``pattern`` regularly: a scheduled workflow, an active CronJob, a DAG with a schedule."""
    rx = re.compile(pattern, re.I | re.M)
    found = [
        ev.workflow(w, f"scheduled ({', '.join(w.schedules)})")
        for w in ctx.workflows
        if w.schedules and rx.search(w.commands)
    ]
    for path, doc in ctx.kinds("CronJob"):
        spec = doc.get("spec") or {}
        if not spec.get("suspend") and rx.search(str(spec.get("jobTemplate"))):
            found.append(ev.file(ctx, path, f"CronJob {doc.get('metadata', {}).get('name')} ({spec.get('schedule')})"))
    for base in ctx.bases():
        for dag in sorted((base / "dags").glob("*.py")) if (base / "dags").is_dir() else []:
            if rx.search(ctx.text(dag)) and "schedule" in ctx.text(dag):
                found.append(ev.file(ctx, dag, "an Airflow DAG with a schedule"))
    return found


@check(27, "A motivated retraining strategy exists.")
def retraining_strategy(ctx: Context) -> Finding:
    policy = ctx.project.config.monitoring.policy
    triggers = [
        name
        for name, on in (
            ("drift on an important feature", policy.on_drift),
            (f"live metric {policy.metric_drop} below the holdout", policy.metric_drop is not None),
            (f"every {policy.every_windows} windows", policy.every_windows is not None),
        )
        if on
    ]
    if not policy.enabled or not triggers:
        return Finding(
            Status.NOT_MET,
            (ev.config(ctx, "monitoring", "policy", detail="no retraining trigger on"),),
            "set monitoring.policy (on_drift, metric_drop, every_windows) in noria.yaml",
        )
    evidence = [ev.config(ctx, "monitoring", "policy", detail=f"retrain on {'; '.join(triggers)}")]
    done, _ = filled(ctx.sections(r"retrain"))
    evidence += [ev.section(s, "the strategy's motivation") for s in done[:1]]
    runs = scheduled(ctx, RUN_TRAINING)
    evidence += runs[:2]
    decisions = ctx.records.decisions
    if decisions:
        evidence.append(
            ev.record(ctx.rel(ctx.records.monitoring_dir / "decisions.jsonl"), f"{len(decisions)} decisions")
        )
    todo = []
    if not done:
        todo.append("write why and when the model is retrained (docs/runbooks/retrain.md)")
    if not runs:
        todo.append("run `noria monitor run` on a schedule (a scheduled workflow or CronJob)")
    if todo:
        return Finding(Status.PARTIAL, tuple(evidence), "; ".join(todo))
    return Finding(Status.MET, tuple(evidence))


@check(28, "A rollback to the previous model version exists.")
def rollback(ctx: Context) -> Finding:
    done, _ = filled(ctx.sections(r"roll ?back"))
    evidence = [ev.section(s, "rollback runbook") for s in done[:1]]
    view = ctx.records.registry
    previous = [e for e in view.events if e.get("from") is not None or e.get("action") == "rollback"]
    if previous:
        last = previous[-1]
        evidence.append(
            ev.record(
                f"registry: {view.model} champion history",
                f"{last.get('action')} v{last.get('from')} -> v{last.get('version')}",
            )
        )
    todo = []
    if not done:
        todo.append(f"write the rollback runbook (docs/runbooks/rollback.md: noria rollback {view.model} --reason ...)")
    if not previous:
        todo.append("there is no previous champion to return to yet (promote a second version through the gate)")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(Status.PARTIAL if evidence else Status.NOT_MET, tuple(evidence), "; ".join(todo))
