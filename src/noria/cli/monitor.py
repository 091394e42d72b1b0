"""``noria monitor``: drift, delayed-label performance, the review queue, the retraining policy, the report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from noria.cli._options import LabelsOption, WindowsOption
from noria.cli._state import State

if TYPE_CHECKING:
    from noria.monitoring import DriftConfig, DriftReport

app = typer.Typer(
    help="Monitoring: drift against the reference profile, performance on delayed labels, retraining policy.",
    no_args_is_help=True,
)

_COLUMNS = ["feature", "kind", "verdict", "alert", "importance", "psi", "test", "p_value", "distance", "missing", "why"]


@app.command("drift")
def drift_cmd(
    ctx: typer.Context,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            help="A window of the prediction log (the project's unit: a month, a week...); latest: the newest one.",
        ),
    ] = None,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="Reference profile (JSON) built at training time.")
    ] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A Parquet file of model inputs to check.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Drift of a window against the reference profile: PSI, KS / chi-square, verdicts, alerts.

    With --window, the rows the service logged for requests whose event time falls in that
    window are compared with the profile stored with the model version that served them; the result is
    saved in the monitoring store (what the exporter, the report and the policy read). With
    --profile and --data, any Parquet file is checked against any profile (nothing saved).

    
    Examples:
      noria monitor drift --window 2013-07
      noria monitor drift --window latest
      noria monitor drift --profile profile.json --data window-2013-07.parquet
    """
    from noria.terminal import print_json

    if window is not None and (profile is not None or data is not None):
        raise typer.BadParameter("give either --window or --profile with --data, not both")
    if window is not None:
        from noria.monitoring.window import drift_window, windows_in_log

        project = ctx.obj.load()
        if window == "latest":  # what a schedule runs: the newest window the service has logged
            logged = windows_in_log(project)
            if not logged:
                from noria.errors import NotFoundError

                raise NotFoundError(
                    "the prediction log holds no window yet", fix="serve predictions first (noria serve)"
                )
            window = max(logged)
        results = drift_window(project, window)
        if as_json:
            print_json([r.to_dict() for r in results])
            return
        for r in results:
            _print_report(r.report, f"drift of {window}, {r.model_name} version {r.model_version}")
            typer.echo(f"saved: {r.path}")
        return
    if profile is None or data is None:
        raise typer.BadParameter("give --window, or both --profile and --data (e.g. --window 2013-07)")
    from noria.monitoring import check_drift

    report = check_drift(profile, data, _drift_config(ctx.obj))
    if as_json:
        print_json(report.to_dict())
        return
    _print_report(report, f"drift of {data.name} against {profile.name}")


def _print_report(report: DriftReport, title: str) -> None:
    from noria.terminal import print_table

    print_table(_rows(report), title=title, columns=_COLUMNS)
    drifted = report.drifted
    sampled = f" (a seeded sample of {report.sampled_from:,})" if report.sampled_from else ""
    typer.echo(
        f"{report.rows:,} rows{sampled} vs {report.reference_rows:,} reference rows; "
        f"drift in {len(drifted)} of {len(report.all)}" + (f": {', '.join(drifted)}" if drifted else "")
    )
    typer.echo(f"ALERT: drift on important features: {', '.join(report.alerts)}" if report.alerts else "no alerts")


@app.command("windows")
def windows_cmd(ctx: typer.Context) -> None:
    """Windows the prediction log holds served requests for (by event time), with row counts.

    Also says how many rows never reached the log: those a writer held when it was killed with its
    pod (counted by the next writer on the same folder, records under lost/ beside the files).

    Example:  noria monitor windows
    """
    from noria.monitoring.window import log_folder, windows_in_log
    from noria.serving.predlog_ledger import loss_records
    from noria.terminal import print_table

    project = ctx.obj.load()
    folder = log_folder(project)
    counts = windows_in_log(project, folder)
    print_table([{"window": w, "predictions": n} for w, n in counts.items()], title="prediction log windows")
    losses = loss_records(folder)
    if losses:
        typer.echo(
            f"{sum(loss.rows for loss in losses):,} rows never reached the log: {len(losses)} writer(s) killed "
            f"holding them, the last at {max(loss.last_at for loss in losses)} (records in {folder / 'lost'})"
        )


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    window: Annotated[str | None, typer.Option("--window", help="Judge this window (default: the newest).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and record, but do not retrain.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Evaluate the retraining policy once and act: retrain through the pipeline and gate, or say why not.

    With monitoring.policy.retrain_via: kubernetes-job the retrain is a Job created from the
    training CronJob (monitoring.policy.training_cronjob) in the pod's namespace; the decision
    records its name and creation time.

    Reads the newest drift and performance records of the champion (noria monitor drift /
    feedback write them); the decision is appended to <monitoring.dir>/decisions.jsonl.

    
    Examples:
      noria monitor run
      noria monitor run --window 2013-08 --dry-run
    """
    from rich.console import Console

    from noria.monitoring.policy import run_policy
    from noria.terminal import print_json

    decision = run_policy(ctx.obj.load(), window, act=not dry_run, console=None if as_json else Console())
    if as_json:
        print_json(decision.to_dict())
        return
    typer.echo(f"decision: {decision.action} (champion version {decision.model_version_before})")
    for reason in decision.reasons:
        typer.echo(f"  - {reason}")
    if decision.started is not None and decision.started.get("kind") == "airflow":
        run = decision.started
        typer.echo(
            f"triggered Airflow DAG run {run['dag_run_id']} of {run['dag_id']} (logical date {run['logical_date']}): "
            f"retrains on {decision.train_window}, judged on {decision.test_window} ({run['url']})"
        )
    elif decision.started is not None:
        job = decision.started
        typer.echo(
            f"started Job {job['namespace']}/{job['job']} from CronJob {job['cronjob']} at {job['at']}: "
            f"retrains on {decision.train_window}, judged on {decision.test_window} "
            f"(kubectl -n {job['namespace']} logs -f job/{job['job']})"
        )
    if decision.candidate_version is not None:
        outcome = "promoted to @champion" if decision.promoted else "not promoted"
        typer.echo(
            f"retrained on {decision.train_window}, judged on {decision.test_window}: "
            f"version {decision.candidate_version} {outcome} ({decision.gate_reason})"
        )


@app.command("feedback")
def feedback_cmd(
    ctx: typer.Context,
    labels: LabelsOption = None,
    window: WindowsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Delayed labels: join outcomes to logged predictions and score them in the task's terms, with the KPI.

    Labels come from the newest data snapshot through the project's own target rule (only
    labels already mature count), or from a file of request ids and labels. Each window's
    figures (per day and for the window) are stored in the monitoring store, bad label rows are
    quarantined with their reason, and the review queue of each window (low certainty and
    out-of-distribution predictions) is rewritten.

    
    Examples:
      noria monitor feedback
      noria monitor feedback --window 2013-07 --json
      noria monitor feedback --labels outcomes.csv
    """
    from noria.monitoring.feedback import record_feedback
    from noria.terminal import print_json, print_table

    summary = record_feedback(ctx.obj.load(), labels, windows=window or None)
    data = summary.to_dict()
    if as_json:
        print_json(data)
        return
    print_table(summary.table(), title=f"performance on delayed labels from {summary.source}")
    typer.echo(
        f"labels: {data['rows_read']:,} rows read, {data['accepted']:,} accepted, {data['rejected']:,} rejected"
        + (f" (quarantined: {data['quarantine']})" if data["rejected"] else "")
        + f", {data['unlabelled']:,} without a label, {data['immature']:,} not mature yet"
    )
    typer.echo(f"joined to predictions: {data['matched']:,} matched, {data['unmatched']:,} without a prediction")
    for name, path in data["review_queues"].items():
        typer.echo(f"review queue {name}: {path}")


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print everything as JSON (the console's monitoring page).")
    ] = False,
) -> None:
    """What monitoring knows of the model: windows, drift, performance, decisions, review queues.

    \b
    Examples:
      noria monitor show
      noria monitor show --json
    """
    from noria.monitoring.summary import monitoring_summary
    from noria.terminal import print_json, print_table

    summary = monitoring_summary(ctx.obj.load())
    if as_json:
        print_json(summary)
        return
    drift = {r["window"]: r for r in summary["drift"]}
    performance = {r["window"]: r for r in summary["performance"]}
    windows = sorted(set(summary["windows"]) | set(drift) | set(performance))
    rows = []
    for w in windows:
        p = performance.get(w) or {}
        metric = p.get("primary_metric") or ""
        live = (p.get("metrics") or {}).get(metric)
        rows.append(
            {
                "window": w,
                "predictions": summary["windows"].get(w, 0),
                "drift alerts": ", ".join((drift.get(w) or {}).get("alerts") or []),
                "live": f"{metric} {live:.4f}" if isinstance(live, float) else "",
                "to review": summary["review_queues"].get(w, ""),
            }
        )
    print_table(rows, title=f"monitoring of {summary['model_name']}")
    typer.echo(f"{len(summary['decisions'])} retraining decision(s)")


@app.command("review")
def review_cmd(
    ctx: typer.Context,
    window: Annotated[str, typer.Option("--window", help="The window whose review queue to show.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Only rows whose reason contains this text.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many rows (0: all).")] = 100,
    mark: Annotated[str | None, typer.Option("--mark", help="Record a verdict on this request id.")] = None,
    verdict: Annotated[str | None, typer.Option("--verdict", help="With --mark: right, wrong or unclear.")] = None,
    note: Annotated[str, typer.Option("--note", help="With --mark: a note kept with the verdict.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The review queue of a window (low-certainty and out-of-distribution predictions), or mark one.

    A mark (who, when, the verdict and a note) is appended to <monitoring.dir>/review/marks.jsonl;
    the newest mark of a request is shown beside it.

    \b
    Examples:
      noria monitor review --window 2013-07 --reason "out of distribution" --limit 20
      noria monitor review --window 2013-07 --mark 0f3c2a --verdict wrong --note "gate change"
    """
    from noria.monitoring.review import mark_review, review_rows
    from noria.terminal import print_json, print_table

    project = ctx.obj.load()
    if mark is not None:
        if verdict is None:
            raise typer.BadParameter("--mark needs --verdict (right, wrong or unclear)")
        record = mark_review(project, window, mark, verdict, note)
        if as_json:
            print_json(record)
        else:
            typer.echo(f"request {mark} of {window} marked {record['verdict']} by {record['by']}")
        return
    queue = review_rows(project, window, reason=reason, limit=limit or None)
    if as_json:
        print_json(queue)
        return
    rows = [
        {k: v for k, v in r.items() if k not in ("probabilities", "mark")}
        | {"mark": (r["mark"] or {}).get("verdict", "")}
        for r in queue["rows"]
    ]
    print_table(rows, title=f"review queue of {window}: {len(rows)} of {queue['matching']} matching")


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the HTML (default: monitoring.dir).")
    ] = None,
) -> None:
    """Write the self-contained HTML monitoring report: drift, scores, performance, retraining, champions.

    
    Examples:
      noria monitor report
      noria monitor report --out /tmp/monitoring.html
    """
    from noria.monitoring.report import write_report

    path = write_report(ctx.obj.load(), out)
    typer.echo(f"wrote {path}")


def _drift_config(state: State | None) -> DriftConfig:
    """The project's drift settings; the defaults when not inside a project."""
    from noria.errors import ProjectNotFoundError
    from noria.monitoring import DriftConfig

    if state is None:
        return DriftConfig()
    try:
        return state.load().config.monitoring.drift
    except ProjectNotFoundError:
        return DriftConfig()


def _rows(report: DriftReport) -> list[dict[str, Any]]:
    rows = []
    for f in report.all:
        distance = f.wasserstein if f.kind != "categorical" else f.jensen_shannon
        rows.append(
            {
                "feature": f.name,
                "kind": f.kind,
                "verdict": f.verdict,
                "alert": f.alert,
                "importance": f.importance,
                "psi": f.psi,
                "test": f.test,
                "p_value": f.p_value,
                "distance": f"{'W' if f.kind != 'categorical' else 'JS'} {distance:.3g}",
                "missing": f"{f.missing_reference:.1%} -> {f.missing_current:.1%}",
                "why": f.reason,
            }
        )
    return rows
