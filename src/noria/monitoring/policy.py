"""The retraining policy: ``noria monitor run`` looks at the newest monitoring results and acts once.

Retrain when (``monitoring.policy`` in noria.yaml):

* drift raised an alert on an important feature (or the score) for the serving model, or
* the live AUC on delayed labels fell more than ``auc_drop`` below the model's holdout AUC, or
* the champion's newest training month is more than ``every_months`` behind the newest
  labelled month (the schedule).

A retrain runs the training pipeline on the newest window of the latest data snapshot (train on
``train_months`` months, judge on the ``test_months`` after them) and goes through the same
promotion gate as every training run: the candidate becomes champion only if it beats the
current champion on the same holdout. Every evaluation is recorded (why retrain, or why not,
and what came of it) in the monitoring store's ``decisions.jsonl`` (maturity item 27).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from noria.monitoring.store import MonitoringStore

if TYPE_CHECKING:
    from rich.console import Console

    from noria.config import Project

HOLDOUT_METRIC = "test_roc_auc"  # what the training pipeline logs for the holdout (noria.training)


@dataclass
class Decision:
    """One evaluation of the policy: the evidence, the action and its outcome."""

    window: str | None
    action: str  # "retrain" | "none" | "disabled"
    reasons: list[str]
    checks: dict[str, Any] = field(default_factory=dict)
    model_name: str = ""
    model_version_before: int | None = None
    train_window: str | None = None
    test_window: str | None = None
    pipeline_run_id: str | None = None
    candidate_version: int | None = None
    promoted: bool | None = None
    gate_reason: str | None = None
    model_version_after: int | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _month_index(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7]) - 1


def _month(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _champion(project: Project) -> tuple[int | None, dict[str, str], dict[str, float]]:
    """The champion's version, its training run's params and metrics (empty when there is none)."""
    from noria.errors import NotFoundError
    from noria.registry import get_version
    from noria.registry._client import get_client

    client = get_client(project)
    try:
        info = get_version(project, f"{project.config.model.name}@champion", client=client)
    except NotFoundError:
        return None, {}, {}
    if not info.run_id:
        return info.version, {}, {}
    run = client.get_run(info.run_id)
    return info.version, dict(run.data.params), dict(run.data.metrics)


def _newest(records: list[dict[str, Any]], version: int | None, window: str | None) -> dict[str, Any] | None:
    """The newest record of ``version`` (at ``window`` if given)."""
    mine = [r for r in records if r.get("model_version") == version and (window is None or r.get("window") == window)]
    return mine[-1] if mine else None


def evaluate_policy(project: Project, window: str | None = None) -> Decision:
    """Decide (without acting) whether to retrain, from the stored drift and performance records."""
    policy = project.config.monitoring.policy
    store = MonitoringStore.of(project)
    name = project.config.model.name
    version, params, metrics = _champion(project)
    drift = _newest(store.records("drift"), version, window)
    performance = _newest(store.records("performance"), version, window)
    window = window or max((r["window"] for r in (drift, performance) if r), default=None)
    decision = Decision(window=window, action="none", reasons=[], model_name=name, model_version_before=version)
    if not policy.enabled:
        decision.action = "disabled"
        decision.reasons.append("the retraining policy is disabled (monitoring.policy.enabled: false)")
        return decision
    if version is None:
        decision.reasons.append(f"no champion of {name} yet: train one first (noria pipeline run training)")
        return decision
    checks: dict[str, Any] = {}
    wanted: list[str] = []
    # 1. drift on important features
    if drift is not None:
        alerts = list(drift.get("alerts") or [])
        checks["drift_window"] = drift["window"]
        checks["drift_alerts"] = alerts
        checks["drift_share"] = drift.get("drift_share")
        if alerts and policy.on_drift:
            wanted.append(f"drift on important features in {drift['window']}: {', '.join(alerts)}")
        elif alerts:
            decision.reasons.append(f"drift alerts ({', '.join(alerts)}) do not retrain (policy.on_drift: false)")
        else:
            decision.reasons.append(f"no drift alert in {drift['window']}")
    else:
        decision.reasons.append(f"no drift record for version {version}" + (f" in {window}" if window else ""))
    # 2. performance on delayed labels
    holdout = metrics.get(HOLDOUT_METRIC)
    live = None if performance is None else (performance.get("metrics") or {}).get("roc_auc")
    checks.update({"holdout_auc": holdout, "live_auc": live})
    if performance is not None and live is not None and holdout is not None and policy.auc_drop is not None:
        drop = holdout - live
        checks["auc_drop"] = drop
        if drop > policy.auc_drop:
            wanted.append(
                f"live AUC {live:.3f} in {performance['window']} is {drop:.3f} below the holdout AUC {holdout:.3f}"
                f" (threshold {policy.auc_drop})"
            )
        else:
            decision.reasons.append(f"live AUC {live:.3f} is within {policy.auc_drop} of the holdout AUC {holdout:.3f}")
    elif performance is None:
        decision.reasons.append("no labelled performance record yet")
    # 3. the schedule
    trained_to = params.get("test_to") or params.get("train_to")
    newest = _newest_month(project)
    checks.update({"champion_trained_to": trained_to, "newest_data_month": newest})
    if policy.every_months is not None and trained_to and newest:
        behind = _month_index(newest) - _month_index(trained_to)
        checks["months_behind"] = behind
        if behind > policy.every_months:
            wanted.append(f"the champion learned from data up to {trained_to}, {behind} months behind {newest}")
    # the newest data must hold a window the champion has not seen
    if wanted and trained_to and newest and newest <= trained_to:
        decision.reasons.extend(wanted)
        decision.reasons.append(f"but the champion already learned from data up to {newest}: nothing newer to train on")
        decision.checks = checks
        return decision
    if wanted:
        decision.action = "retrain"
        decision.reasons = wanted
        if newest:
            test_end = _month_index(newest)
            test_start = test_end - policy.test_months + 1
            decision.train_window = f"{_month(test_start - policy.train_months)}..{_month(test_start - 1)}"
            decision.test_window = f"{_month(test_start)}..{newest}"
    decision.checks = checks
    return decision


def _newest_month(project: Project) -> str | None:
    from noria.data.snapshots import get_record
    from noria.errors import NotFoundError

    try:
        record = get_record(project, "latest")
    except NotFoundError:
        return None
    return record.months[-1] if record.months else None


def run_policy(
    project: Project, window: str | None = None, *, act: bool = True, console: Console | None = None
) -> Decision:
    """Evaluate the policy once, retrain through the pipeline and gate when it says so, record it."""
    import time

    started = time.perf_counter()
    decision = evaluate_policy(project, window)
    if decision.action == "retrain" and act and decision.train_window and decision.test_window:
        from noria.pipelines import run_project_pipeline

        train_from, train_to = decision.train_window.split("..")
        test_from, test_to = decision.test_window.split("..")
        params: dict[str, Any] = {
            "train_from": train_from,
            "train_to": train_to,
            "test_from": test_from,
            "test_to": test_to,
        }
        trials = project.config.monitoring.policy.trials
        if trials is not None:
            params["trials"] = trials
        result = run_project_pipeline(project, "training", params=params, console=console, progress=console is not None)
        decision.pipeline_run_id = result.run_id
        registered = result.load("register")
        gate = result.load("gate")
        decision.candidate_version = int(registered["version"])
        decision.promoted = bool(gate["promoted"])
        decision.gate_reason = str(gate["reason"])
        decision.model_version_after = gate["champion"]
    elif decision.action == "retrain":
        decision.reasons.append("not acted on (dry run)")
    decision.seconds = round(time.perf_counter() - started, 2)
    MonitoringStore.of(project).append_decision(decision.to_dict() | {"acted": act})
    return decision


__all__ = ["Decision", "evaluate_policy", "run_policy"]
