"""``noria replay``: the closed loop over past windows, as it would have run, window by window.

For each window of the project's unit (``windows:``) from ``--from`` to ``--to``:

1. the window's data arrives: the months it needs are ingested if the snapshot lacks them;
2. its requests go as real HTTP traffic to the running service (``noria serve``, started for
   the replay unless ``--url`` names one), in batches, each with its feature values computed
   point in time by the feature store (the values the online store would have held at each
   request's own time: materializing the online store for every moment of a past window is
   not possible), so the service validates, scores, explains on demand, logs and flags them
   as it does any request;
3. drift of the window is computed from the prediction log against the serving version's
   reference profile;
4. the labels that have matured by the end of the window are fed back (from the newest
   snapshot, by the project's own target rule), for this window and the one before (whose
   late labels arrive now);
5. the retraining policy decides, with "now" the end of the window; a retrain goes through the
   promotion gate, and a promoted version is hot-swapped by the service without a restart;
6. the online store is materialized up to the end of the window, so that afterwards the
   service answers a request of the newest window with looked-up features.

Every step leaves its record (snapshots, prediction log, drift, performance, decisions);
``noria monitor report`` draws them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import ConfigError, DataError, ExternalToolError, NotFoundError
from noria.periods import month_of_key
from noria.replay_service import replay_service, served, wait_for_version

if TYPE_CHECKING:
    import httpx
    import pandas as pd
    from rich.console import Console

    from noria.config import Project


@dataclass
class WindowResult:
    """What one window of the replay did."""

    window: str
    requests: int
    per_second: float
    versions: list[int]
    drift_alerts: list[str]
    live: float | None
    holdout: float | None
    metric: str
    decision: str
    promoted: bool | None = None
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        alerts = self.drift_alerts
        return {
            "window": self.window,
            "requests": self.requests,
            "model": ", ".join(f"v{v}" for v in self.versions),
            "drift alerts": ", ".join(alerts[:3]) + (f" +{len(alerts) - 3}" if len(alerts) > 3 else "") or "-",
            f"{self.metric} live": None if self.live is None else round(self.live, 3),
            f"{self.metric} holdout": None if self.holdout is None else round(self.holdout, 3),
            "decision": self.decision,
        }


@dataclass
class ReplayResult:
    windows: list[WindowResult] = field(default_factory=list)
    report: Path | None = None
    seconds: float = 0.0

    def table(self) -> list[dict[str, Any]]:
        return [w.row() for w in self.windows]


def replay_windows(project: Project, start: str | None, end: str | None) -> list[str]:
    """The windows from ``start`` to ``end`` (defaults: ``replay.from``/``replay.to``), in order."""
    from noria.windows import Windows

    cfg = project.config.replay
    start = start or (cfg.start if cfg else None)
    end = end or (cfg.end if cfg else None)
    if not start or not end:
        raise ConfigError(
            "no windows to replay: give --from and --to, or set replay: {from: A, to: B} in noria.yaml",
            fix="e.g. noria replay --from 2013-07 --to 2013-12 (labels of the project's windows)",
        )
    windows = Windows.of(project)
    windows.check(start, "--from")
    windows.check(end, "--to")
    if start > end:
        raise ConfigError(f"--from {start} is after --to {end}", fix="swap them")
    if windows.builtin:
        out, label = [], start
        while label <= end:
            out.append(label)
            label = windows.shift(label, 1)
        return out
    known = sorted(survey_source(project).window_months)
    chosen = [w for w in known if start <= w <= end]
    if not chosen:
        raise NotFoundError(
            f"the data holds no window between {start} and {end} (it has {known[0]}..{known[-1]})"
            if known
            else "the data holds no windows yet",
            fix="choose windows the source covers",
        )
    return chosen


@dataclass(frozen=True)
class SourceSurvey:
    """What the source holds: the request table's partition months, and the months each window's events are in."""

    months: list[str]
    window_months: dict[str, list[str]]  # window -> the partition months holding its events


_SURVEYS: dict[str, SourceSurvey] = {}


def survey_source(project: Project) -> SourceSurvey:
    """Read the request table from the source once (per process) and say which months and windows it holds."""
    key = f"{project.root}:{project.profile}"
    if key not in _SURVEYS:
        _SURVEYS[key] = _survey(project)
    return _SURVEYS[key]


def _survey(project: Project) -> SourceSurvey:
    import pandas as pd

    from noria.data.ingest import partition_keys
    from noria.data.sources import read_table, source_folder
    from noria.data.validate import coerce_column
    from noria.features.definitions import load_definitions
    from noria.features.transform import prediction_times, request_arrays
    from noria.windows import Windows

    defs = load_definitions(project)
    table = project.config.data.tables[defs.request.table]
    raw = read_table(defs.request.table, table, source_folder(project.config.data.source, project)).frame
    typed = pd.DataFrame({c: coerce_column(raw[c], table.columns[c]) for c in defs.request.columns})
    if table.partition is not None:
        keys = partition_keys(raw, table, raw=True)
        typed["noria_month"] = keys.map(lambda k: None if k != k else month_of_key(int(k)))
    else:
        typed["noria_month"] = "all"
    typed = typed.dropna()
    months = sorted(set(typed["noria_month"])) if table.partition is not None else []
    window_months: dict[str, list[str]] = {}
    if not typed.empty:
        rows = typed.reset_index(drop=True)
        times = prediction_times(defs, request_arrays(defs, rows))
        frame = pd.DataFrame({"w": Windows.of(project).labels(times), "m": rows["noria_month"]}).dropna()
        for window, part in frame.groupby("w"):
            window_months[str(window)] = sorted(set(part["m"]))
    return SourceSurvey(months, window_months)


def run_replay(
    project: Project,
    start: str | None = None,
    end: str | None = None,
    *,
    console: Console | None = None,
    url: str | None = None,
    api_key: str | None = None,
    batch: int | None = None,
    report: bool = True,
) -> ReplayResult:
    """Replay windows ``start``..``end`` through the service: drift, labels, policy, retrain, hot swap."""
    from rich.console import Console

    console = console or Console()
    began = time.perf_counter()
    chosen = replay_windows(project, start, end)
    size = batch or (project.config.replay.batch if project.config.replay else 250)
    result = ReplayResult()
    with replay_service(project, url, api_key) as (base, headers, pid):
        import httpx

        where = f"noria serve (pid {pid}) on {base}" if pid else f"the service at {base}"
        console.print(f"{where}; replaying {len(chosen)} windows: {chosen[0]}..{chosen[-1]}")
        with httpx.Client(base_url=base, timeout=120, headers=headers) as client:
            previous: str | None = None
            for window in chosen:
                from rich.rule import Rule

                console.print(Rule(window, align="left", style="dim"))
                result.windows.append(_window(console, project, client, window, previous, size))
                previous = window
    from noria.terminal import print_table

    print_table(result.table(), title="the loop, window by window")
    if report:
        from noria.monitoring.report import write_report

        result.report = write_report(project)
        console.print(f"monitoring report (drift, performance, retraining, champion history): [bold]{result.report}[/]")
    result.seconds = time.perf_counter() - began
    return result


def _window(
    console: Console, project: Project, client: httpx.Client, window: str, previous: str | None, size: int
) -> WindowResult:
    from noria.monitoring.feedback import record_feedback
    from noria.monitoring.policy import run_policy
    from noria.monitoring.window import drift_window

    started = time.perf_counter()
    arrive(console, project, window)
    served = _send(console, project, client, window, size)
    try:
        drifts = drift_window(project, window)
    except NotFoundError as exc:
        console.print(f"[yellow]no drift for {window}: {exc.message}[/]")
        drifts = []
    alerts = sorted({a for d in drifts for a in d.report.alerts})
    if drifts:
        console.print(
            f"drift of {window} vs the reference profile: "
            + "; ".join(f"v{d.model_version}: {len(d.report.drifted)} drifted" for d in drifts)
            + (f"  ALERT on important features: {', '.join(alerts)}" if alerts else "  no alerts")
        )
    live = holdout = None
    metric = ""
    try:
        summary = record_feedback(project, windows=[w for w in (previous, window) if w is not None])
        mine = [r for r in summary.results if r.window == window]
        best = max(mine, key=lambda r: r.predictions, default=None)  # the version that served most of it
        if best is not None:
            live, holdout, metric = best.live, best.holdout, best.primary_metric
        fed = f"{previous}..{window}" if previous else window
        console.print(
            f"labels for {fed}: {summary.accepted:,} matured ({summary.immature:,} not yet); {window} live {metric} "
            + (f"{live:.3f}" if live is not None else "n/a")
            + (f" vs holdout {holdout:.3f}" if holdout is not None else "")
        )
    except (NotFoundError, DataError) as exc:
        console.print(f"[yellow]no labels for {window} yet: {exc.message}[/]")
    decision = run_policy(project, window, console=console, as_of=window)
    console.print(f"policy: {decision.action}: " + "; ".join(decision.reasons))
    outcome = decision.action
    if decision.candidate_version is not None:
        outcome = f"retrained v{decision.candidate_version}: " + ("promoted" if decision.promoted else "refused")
        console.print(f"gate: {outcome} ({decision.gate_reason})")
        if decision.promoted:
            wait_for_version(console, client, decision.candidate_version)
    _materialize(console, project, window)
    from noria.tasks import task_of

    return WindowResult(
        window=window,
        requests=served["requests"],
        per_second=served["rps"],
        versions=served["versions"],
        drift_alerts=alerts,
        live=live,
        holdout=holdout,
        metric=metric or task_of(project).primary_metric,
        decision=outcome,
        promoted=decision.promoted,
        seconds=round(time.perf_counter() - started, 1),
    )


def arrive(console: Console, project: Project, window: str) -> None:
    """Ingest the partition months holding a window's events that the newest snapshot lacks."""
    from noria.data.snapshots import get_record

    if project.config.data.tables[_request_table(project)].partition is None:
        return  # an unpartitioned request table arrives whole with the first ingest
    try:
        have = set(get_record(project, "latest").months)
    except NotFoundError:
        have = set()
    wanted = [m for m in survey_source(project).window_months.get(window, []) if m not in have]
    if wanted:
        ingest_range(console, project, wanted[0], wanted[-1])


def _request_table(project: Project) -> str:
    from noria.features.definitions import load_definitions

    return str(load_definitions(project).request.table)


def ingest_range(console: Console, project: Project, start: str | None, end: str | None) -> None:
    """Ingest months ``start``..``end`` with a progress bar, print the accounting, commit the snapshot's files."""
    from noria.data.ingest import ingest, summary_rows
    from noria.provenance import git_commit_staged
    from noria.terminal import print_table, progress

    with progress() as bar:
        result = ingest(project, start, end, progress=bar)
    record = result.record
    print_table(summary_rows(record), title=f"ingest {start or 'every month'}..{end or ''}")
    totals = record.totals()
    state = "identical to an existing snapshot" if result.unchanged else "new snapshot"
    console.print(
        f"rows read {totals['read']:,} = accepted {totals['accepted']:,} + quarantined {totals['quarantined']:,}"
        f"  ->  snapshot [bold]{record.short_id}[/] ({state})"
    )
    commit = git_commit_staged(project.root, f"data snapshot {record.short_id} ({start or ''}..{end or ''})")
    if commit:
        console.print(f"committed the snapshot's .dvc file and lineage record: {commit[:8]}")


def _send(console: Console, project: Project, client: httpx.Client, window: str, size: int) -> dict[str, Any]:
    """Send every request of ``window`` with its point-in-time features; wait until all are logged."""
    import orjson

    from noria.features import build_training_set
    from noria.monitoring.window import windows_in_log
    from noria.serving.requests import request_schema
    from noria.terminal import progress

    built = build_training_set(project, window, window)
    frame = built.frame
    schema = request_schema(project)
    bodies = schema.bodies(frame)
    features = frame[list(built.record.features)]
    for body, values in zip(bodies, _feature_records(features), strict=True):
        body["features"] = values
    key = schema.batch_key
    before = windows_in_log(project).get(window, 0)
    versions: set[int] = set()
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"POST /predict {window}", total=len(bodies))
        for offset in range(0, len(bodies), size):
            chunk = bodies[offset : offset + size]
            answer = client.post(
                "/predict",
                params={"explain": "false"},
                content=orjson.dumps({key: chunk}),
                headers={"content-type": "application/json"},
            )
            if answer.status_code != 200:
                raise ExternalToolError(
                    f"the service answered {answer.status_code} to a batch of {window}: {answer.text[:300]}",
                    fix="see the service's log",
                )
            versions.update(p["model_version"] for p in answer.json()["predictions"])
            bar.advance(task, len(chunk))
    seconds = max(time.perf_counter() - started, 1e-9)
    deadline = time.monotonic() + 60
    logged = 0
    while logged < len(bodies) and time.monotonic() < deadline:  # the writer rolls a file every second
        time.sleep(0.5)
        logged = windows_in_log(project).get(window, 0) - before
    console.print(
        f"{len(bodies):,} requests in {-(-len(bodies) // size)} calls, {len(bodies) / seconds:,.0f} requests/s; "
        f"{logged:,} rows of {window} in the prediction log"
    )
    return {"requests": len(bodies), "rps": round(len(bodies) / seconds), "versions": sorted(versions)}


def _feature_records(features: pd.DataFrame) -> list[dict[str, Any]]:
    """Feature rows as JSON-ready dicts: None for any missing marker, Python numbers and text."""
    import pandas as pd

    out = []
    for row in features.to_dict("records"):
        record: dict[str, Any] = {}
        for name, value in row.items():
            if value is None or value is pd.NA or (isinstance(value, float) and value != value):
                record[str(name)] = None
            else:
                item = getattr(value, "item", None)
                record[str(name)] = item() if item is not None else value
        out.append(record)
    return out


def _materialize(console: Console, project: Project, window: str) -> None:
    """The online store up to the end of ``window``: the service now looks up its newest values."""
    import pandas as pd

    from noria.features import materialize
    from noria.windows import Windows

    bounds = Windows.of(project).bounds(window)
    if bounds is not None:
        until = pd.Timestamp(bounds[1])
    else:
        from noria.features.training_set import data_windows

        until = data_windows(project)[1] or pd.Timestamp.now(tz="UTC")
    try:
        done = materialize(project, until.to_pydatetime())
    except NotFoundError as exc:
        console.print(f"[yellow]online store not materialized: {exc.message}[/]")
        return
    console.print(f"online store ({done.online_store}) materialized until {done.until:%Y-%m-%d %H:%M} UTC")


__all__ = [
    "ReplayResult",
    "SourceSurvey",
    "WindowResult",
    "arrive",
    "ingest_range",
    "replay_windows",
    "run_replay",
    "served",
    "survey_source",
]
