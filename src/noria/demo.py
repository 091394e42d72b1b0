"""The demo: the whole loop on embedded defaults, in a fresh project folder.

``make demo`` calls :func:`run_demo`. It creates the project from the reference flights
project on first use (``noria init``) and reuses it afterwards, so a second run shows
what is cached.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from noria.config import CONFIG_FILE, Project, load_project

# The demo's "now" when it starts serving: July 1st 2013, 08:00 in New York (12:00 UTC).
SERVE_AT = "2013-07-01T12:00:00Z"


CHAPTERS = 5


def run_demo(folder: Path, console: Console | None = None, until: int = CHAPTERS) -> Project:
    """Run chapters 1..``until`` of the demo in ``folder`` (3 leaves a project with a champion)."""
    console = console or Console()
    started = time.perf_counter()
    console.print(Rule("[bold]Noria demo: flight delays, New York 2013"))
    if (folder / CONFIG_FILE).is_file():
        console.print(f"reusing the demo project in {folder}")
    else:
        from noria.scaffold import init_project

        init_project(folder)
        console.print(f"created the demo project in {folder} (noria init: git + DVC)")
    project = load_project(folder)

    _chapter(console, "1. ingest January-June 2013: validate, quarantine, snapshot with DVC")
    _ingest(console, project, "2013-01", "2013-06")
    if until <= 1:
        return _done(console, started, project)

    _chapter(console, "2. feature store (Feast): apply, point-in-time training set, online store")
    _features(console, project)
    if until <= 2:
        return _done(console, started, project)

    _chapter(console, "3. training pipeline: tune, train, evaluate, register in MLflow, gate")
    first = _train(console, project)
    if until <= 3:
        return _done(console, started, project)

    _chapter(console, "4. serving: July 2013 arrives; real flights through HTTP, with explanations")
    _ingest(console, project, "2013-07", "2013-07")
    _serve(console, project, SERVE_AT)
    if until <= 4:
        return _done(console, started, project)

    _chapter(console, "5. the loop: July-December through the service; drift, labels, retraining, hot swap")
    from noria.demo_loop import run_loop

    run_loop(console, project, first)
    return _done(console, started, project)


def _done(console: Console, started: float, project: Project) -> Project:
    console.print(Rule(f"done in {time.perf_counter() - started:.0f} s"))
    return project


def _chapter(console: Console, title: str) -> None:
    console.print()
    console.print(Rule(title, align="left", style="cyan"))


def _ingest(console: Console, project: Project, start: str, end: str) -> None:
    from noria.cli._output import print_table, progress
    from noria.data.ingest import ingest, summary_rows

    with progress() as bar:
        result = ingest(project, start, end, progress=bar)
    record = result.record
    print_table(summary_rows(record), title=f"ingest {start}..{end}")
    totals = record.totals()
    state = "identical to an existing snapshot" if result.unchanged else "new snapshot"
    console.print(
        f"rows read {totals['read']:,} = accepted {totals['accepted']:,} + quarantined {totals['quarantined']:,}"
        f"  ->  snapshot [bold]{record.short_id}[/] ({state})"
    )
    from noria.provenance import git_commit_staged

    commit = git_commit_staged(project.root, f"data snapshot {record.short_id} ({start}..{end})")
    if commit:
        console.print(f"committed the snapshot's .dvc file and lineage record: {commit[:8]}")


def _features(console: Console, project: Project) -> None:
    from noria.cli._output import print_table
    from noria.features import apply, build_training_set, materialize

    t = time.perf_counter()
    applied = apply(project)
    console.print(
        f"feast apply: {len(applied.feature_views)} feature views, services {', '.join(applied.services)}, "
        f"definition hash {applied.definition_hash[:12]} ({time.perf_counter() - t:.1f} s)"
    )
    train_period, test_period = project.config.training.periods()
    t = time.perf_counter()
    built = build_training_set(project, train_period.start, test_period.end)
    record = built.record
    console.print(
        f"training set {train_period.start}..{test_period.end}: {record.rows:,} rows "
        f"({record.labeled_rows:,} labelled; cancelled flights keep their row without a label) "
        f"in {time.perf_counter() - t:.1f} s"
    )
    print_table(
        [{"feature view": v, "matched rows": m, "no value": record.unmatched[v]} for v, m in record.matched.items()],
        title="point-in-time join (no value from after the prediction time)",
    )
    t = time.perf_counter()
    online = materialize(project, _month_after(test_period.end))  # serving starts where training data ends
    console.print(
        f"online store ({online.online_store}) materialized until {online.until:%Y-%m-%d %H:%M} UTC: "
        f"{sum(online.keys.values()):,} entity keys in {time.perf_counter() - t:.1f} s"
    )


def _train(console: Console, project: Project) -> int:
    """Run the training pipeline; return the version it registered."""
    from noria.cli._output import print_table
    from noria.pipelines import run_project_pipeline
    from noria.registry import format_lineage, lineage_of

    t = time.perf_counter()
    result = run_project_pipeline(project, "training", console=console)
    console.print(
        f"pipeline run {result.run_id}: {result.count('ran')} steps ran, {result.count('cached')} cached "
        f"in {time.perf_counter() - t:.0f} s"
    )
    evaluation = result.load("evaluation")
    decision = result.load("gate")
    m = evaluation["metrics"]
    rows = [{"model": "LightGBM (this version)", **{k: m[k] for k in ("roc_auc", "pr_auc", "log_loss", "brier")}}]
    for b in evaluation["baselines"]:
        bm = b["metrics"]
        rows.append(
            {"model": f"baseline: {b['name']}", **{k: bm[k] for k in ("roc_auc", "pr_auc", "log_loss", "brier")}}
        )
    split = evaluation["split"]["parts"]
    print_table(rows, title=f"holdout {split['test']['window']['label']} ({split['test']['rows']:,} flights)")
    console.print(f"gate: version {decision['version']} -> @{decision['alias'] or 'unchanged'} ({decision['reason']})")
    console.print(format_lineage(lineage_of(project, f"{decision['name']}@champion")))
    return int(decision["version"])


def _month_after(month: str) -> str:
    """'2013-06' -> '2013-07-01T00:00:00Z' (the first instant after that month, UTC)."""
    year, mon = int(month[:4]), int(month[5:7])
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return f"{year:04d}-{mon:02d}-01T00:00:00Z"


def _serve(console: Console, project: Project, now: str, count: int = 6) -> None:
    """Start `noria serve`, send the next real flights after ``now`` through HTTP, print the answers."""
    import httpx
    import pandas as pd

    from noria.cli._output import print_table
    from noria.data.snapshots import open_snapshot
    from noria.features import materialize

    online = materialize(project, now)
    console.print(f"online store materialized until {online.until:%Y-%m-%d %H:%M} UTC (the demo's 'now')")
    start = pd.Timestamp(now)
    flights = open_snapshot(project).read("flights", months=[start.strftime("%Y-%m")])
    flights = flights[(flights["time_hour"] >= start) & flights["tailnum"].notna()].sort_values(
        ["time_hour", "carrier", "flight"]
    )
    sample = flights.drop_duplicates("origin").head(3)
    sample = pd.concat([sample, flights.drop(sample.index).head(count - len(sample))])
    local = "America/New_York"

    def departure(row: pd.Series) -> str:
        hhmm = int(row["sched_dep_time"])
        moment = pd.Timestamp(
            year=int(row["year"]), month=int(row["month"]), day=int(row["day"]), hour=hhmm // 100, minute=hhmm % 100
        ).tz_localize(local)
        return moment.isoformat()

    payload = {
        "flights": [
            {
                "carrier": r["carrier"],
                "flight": int(r["flight"]),
                "origin": r["origin"],
                "dest": r["dest"],
                "tailnum": r["tailnum"],
                "scheduled_departure": departure(r),
                "distance": float(r["distance"]),
            }
            for _, r in sample.iterrows()
        ]
    }
    with served(project) as (base, pid, log):
        version = httpx.get(f"{base}/version", timeout=10).json()
        console.print(f"noria serve (pid {pid}) on {base}: {version}")
        answer = httpx.post(f"{base}/predict", json=payload, timeout=30)
        answer.raise_for_status()
        body = answer.json()
    rows = []
    for flight, pred, (_, actual) in zip(payload["flights"], body["predictions"], sample.iterrows(), strict=True):
        reasons = pred["explanation"]["contributions"][:2] if pred.get("explanation") else []
        rows.append(
            {
                "flight": f"{flight['carrier']}{flight['flight']} {flight['origin']}-{flight['dest']}",
                "departs": flight["scheduled_departure"][11:16],
                "P(late)": round(pred["probability"], 3),
                "late?": "yes" if pred["late"] else "no",
                "actual delay": "cancelled" if pd.isna(actual["dep_delay"]) else f"{actual['dep_delay']:+.0f} min",
                "why (top 2)": "; ".join(c["text"] for c in reasons),
                "out of distribution": ", ".join(sorted({r["feature"] for r in pred["out_of_distribution"]["reasons"]}))
                or "-",
            }
        )
    print_table(rows, title=f"predictions from model version {body['predictions'][0]['model_version']}")
    console.print(f"request {body['request_id']} logged to the prediction log; server log: {log}")


@contextmanager
def served(project: Project, env: dict[str, str] | None = None) -> Iterator[tuple[str, int, Path]]:
    """Run `noria serve --insecure-local` on a free port until the block ends (then SIGTERM, by PID)."""
    import os
    import signal
    import subprocess
    import sys

    port = _free_port()
    log = project.root / ".noria" / "demo-serve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "noria", "--project", str(project.root), "serve", "--insecure-local"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"} | (env or {}),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server, log)
        yield base, server.pid, log
    finally:
        server.send_signal(signal.SIGTERM)  # flushes the prediction log, then exits
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(base: str, server: object, log: Path, timeout: float = 180.0) -> None:
    import subprocess

    import httpx

    from noria.errors import ExternalToolError

    assert isinstance(server, subprocess.Popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ExternalToolError(f"noria serve exited with {server.returncode}", fix=f"see {log}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ExternalToolError(f"noria serve was not ready after {timeout:.0f} s", fix=f"see {log}")
