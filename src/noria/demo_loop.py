"""The demo's closed loop: July-December 2013 replayed month by month through the running service.

For each month: the month's data is ingested (weather and flights arrive), its flights are
sent as real HTTP traffic to ``noria serve`` (in batches, as a booking system would), the
prediction log is checked for drift against the serving model's reference profile, the
flights' outcomes arrive as delayed labels and are scored, and the retraining policy decides;
a retrain goes through the promotion gate and the service hot-swaps a promoted model.

Feature values are sent inline with each flight, computed point in time by the feature store
(the same values the online store would have held at each flight's booking time); replaying
six months through an online store would mean re-materializing it for every hour of the
replay. The service still validates, scores, explains on demand, logs and flags them as it
does for any request.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.rule import Rule

from noria.config import Project

if TYPE_CHECKING:
    import httpx

MONTHS = ("2013-07", "2013-08", "2013-09", "2013-10", "2013-11", "2013-12")
BATCH = 250  # flights per request (serving.max_batch is 256 by default)
SERVER_ENV = {
    # files every second, so a month's predictions are on disk moments after its last request
    "NORIA_SERVING__PREDICTION_LOG__ROLL_SECONDS": "1",
    # look for a new @champion every 2 s (10 s by default)
    "NORIA_SERVING__POLL_SECONDS": "2",
}


def run_loop(console: Console, project: Project, first_champion: int, months: tuple[str, ...] = MONTHS) -> Path:
    """Replay ``months`` through a running service; print a table per month; return the HTML report."""
    from noria.cli._output import print_table
    from noria.demo import served
    from noria.monitoring.report import write_report

    _reset(console, project, first_champion)
    rows: list[dict[str, Any]] = []
    with served(project, SERVER_ENV) as (base, pid, _log):
        import httpx

        console.print(f"noria serve (pid {pid}) on {base}, polling the registry for a new @champion every 2 s")
        with httpx.Client(base_url=base, timeout=60) as client:
            for month in months:
                console.print(Rule(f"{month}", align="left", style="dim"))
                rows.append(_month(console, project, client, month))
    print_table(rows, title="the loop, month by month")
    report = write_report(project)
    console.print(f"monitoring report (drift, performance, retraining, champion history): [bold]{report}[/]")
    return report


def _reset(console: Console, project: Project, first_champion: int) -> None:
    """Start the replay from the first champion with an empty prediction log and monitoring store."""
    from noria.monitoring.store import MonitoringStore
    from noria.monitoring.window import prediction_log_dir
    from noria.registry import get_version, promote

    for folder in (prediction_log_dir(project), MonitoringStore.of(project).root):
        if folder.exists():
            shutil.rmtree(folder)
    name = project.config.model.name
    current = get_version(project, f"{name}@champion").version
    if current != first_champion:
        promote(project, name, first_champion, force=True, reason="demo: the replay starts from the first champion")
        console.print(f"demo reset: @champion back from version {current} to version {first_champion}")


def _month(console: Console, project: Project, client: httpx.Client, month: str) -> dict[str, Any]:
    from noria.data.snapshots import get_record
    from noria.demo import _ingest
    from noria.monitoring.policy import run_policy
    from noria.monitoring.window import drift_window

    if month not in get_record(project, "latest").months:
        _ingest(console, project, month, month)
    served = _replay(console, project, client, month)
    drifts = drift_window(project, month)
    alerts = sorted({a for d in drifts for a in d.report.alerts})
    console.print(
        f"drift of {month} vs the reference profile: "
        + "; ".join(f"v{d.model_version}: {len(d.report.drifted)} drifted" for d in drifts)
        + (f"  ALERT on important features: {', '.join(alerts)}" if alerts else "  no alerts")
    )
    performance = _feedback(console, project, month)
    decision = run_policy(project, month, console=console)
    console.print(f"policy: {decision.action}: " + "; ".join(decision.reasons))
    outcome = decision.action
    if decision.candidate_version is not None:
        outcome = f"retrained v{decision.candidate_version}: " + ("promoted" if decision.promoted else "refused")
        console.print(f"gate: {outcome} ({decision.gate_reason})")
        if decision.promoted:
            _wait_for_version(console, client, decision.candidate_version)
    return {
        "month": month,
        "flights served": served["flights"],
        "req/s": served["rps"],
        "model": ", ".join(f"v{v}" for v in served["versions"]),
        "drift alerts": ", ".join(alerts[:3]) + (f" +{len(alerts) - 3}" if len(alerts) > 3 else "") or "-",
        "AUC live": performance.get("roc_auc"),
        "AUC holdout": performance.get("holdout_auc"),
        "decision": outcome,
    }


def _replay(console: Console, project: Project, client: httpx.Client, month: str) -> dict[str, Any]:
    """Send every flight of ``month`` with its point-in-time features; wait until all are logged."""
    import orjson

    from noria.cli._output import progress
    from noria.features import build_training_set
    from noria.monitoring.flights import requests_from_flights
    from noria.monitoring.window import windows_in_log

    built = build_training_set(project, month, month)
    frame = built.frame
    bodies = requests_from_flights(frame, frame[list(built.record.features)])
    before = sum(windows_in_log(project).values())
    versions: set[int] = set()
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"POST /predict {month}", total=len(bodies))
        for offset in range(0, len(bodies), BATCH):
            chunk = bodies[offset : offset + BATCH]
            answer = client.post(
                "/predict",
                params={"explain": "false"},
                content=orjson.dumps({"flights": chunk}),
                headers={"content-type": "application/json"},
            )
            answer.raise_for_status()
            versions.update(p["model_version"] for p in answer.json()["predictions"])
            bar.advance(task, len(chunk))
    seconds = time.perf_counter() - started
    deadline = time.monotonic() + 60
    logged = 0
    while logged < len(bodies) and time.monotonic() < deadline:  # the writer rolls a file every second
        time.sleep(0.5)
        logged = sum(windows_in_log(project).values()) - before
    console.print(
        f"{len(bodies):,} flights in {-(-len(bodies) // BATCH)} requests, {len(bodies) / seconds:,.0f} flights/s; "
        f"{logged:,} rows in the prediction log (windows are UTC months: a late flight on the last evening "
        "of a month departs the next month in UTC)"
    )
    return {"flights": len(bodies), "rps": round(len(bodies) / seconds), "versions": sorted(versions)}


def _feedback(console: Console, project: Project, month: str) -> dict[str, Any]:
    """The month's outcomes arrive: write them as a labels file and score the logged predictions."""
    from noria.data.snapshots import open_snapshot
    from noria.monitoring.feedback import record_feedback
    from noria.monitoring.flights import labels_from_flights

    flights = open_snapshot(project).read("flights", months=[month])
    labels = labels_from_flights(flights, project.config.model.require_target().threshold or 0.0)
    path = project.root / ".noria" / "labels" / f"{month}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    labels.to_parquet(path, index=False)
    summary = record_feedback(project, path, windows=[month]).to_dict()
    mine = [w for w in summary["windows"] if w["window"] == month]
    # the version that served most of the month (the previous champion may have served its first hours)
    window: dict[str, Any] = max(mine, key=lambda w: w["predictions"], default={})
    metrics = window.get("metrics", {})
    auc, holdout = metrics.get("roc_auc"), window.get("holdout_auc")
    console.print(
        f"labels for {month}: {len(labels):,} departed flights; live AUC "
        + (f"{auc:.3f}" if auc is not None else "n/a")
        + (f" vs holdout {holdout:.3f}" if holdout is not None else "")
    )
    return {
        "roc_auc": None if auc is None else round(auc, 3),
        "holdout_auc": None if holdout is None else round(holdout, 3),
    }


def _wait_for_version(console: Console, client: httpx.Client, version: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        served = client.get("/version").json()
        if int(served.get("version", -1)) == version:
            console.print(f"the service hot-swapped to version {version} (no restart, no failed request)")
            return
        time.sleep(0.5)
    console.print(f"[yellow]the service still serves {served.get('version')} after {timeout:.0f} s[/]")


__all__ = ["MONTHS", "run_loop"]
