"""Monitoring: the windows of the prediction log, the drift heatmap, the score distribution,
performance on matured labels, decisions and the champion history (the monitoring report's own
sections and SVG plots, :func:`noria.monitoring.report_page.body`; the plots served at their own
addresses, :mod:`noria.console.plots`), and the review queues.

JSON twins: ``/monitoring`` is ``noria monitor show --json``; ``/monitoring/review?window=W`` is
``noria monitor review --window W --json`` (``reason`` and ``limit`` filter both alike).
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from noria import report_html
from noria.console import layout
from noria.console.pages import Page

if TYPE_CHECKING:
    from noria.console.app import Console


def monitoring(console: Console) -> Page:
    from noria.console.plots import externalize
    from noria.monitoring import report_page
    from noria.monitoring.report import collect_report
    from noria.monitoring.summary import monitoring_summary

    project = console.project
    summary = monitoring_summary(project)
    sections, _ = report_page.body(collect_report(project), header=False)
    sections = externalize(sections, console.plots, "/monitoring")  # <img> of /monitoring/plots/DIGEST.svg
    windows = summary["windows"]
    queues = summary["review_queues"]
    drift = {r["window"]: r for r in summary["drift"]}
    performance = {r["window"]: r for r in summary["performance"]}
    rows = []
    for window in sorted(set(windows) | set(drift) | set(performance) | set(queues), reverse=True):
        d, p = drift.get(window), performance.get(window)
        metric = (p or {}).get("primary_metric") or ""
        live = ((p or {}).get("metrics") or {}).get(metric)
        rows.append(
            [
                window,
                f"{windows.get(window, 0):,}",
                "" if d is None else (", ".join(d.get("alerts") or []) or "no alert"),
                "" if live is None else f"{metric} {live:.4f} (holdout {_num(p.get('holdout') if p else None)})",
                layout.link_cell(f"/monitoring/review?window={window}", f"{queues[window]:,} to review")
                if window in queues
                else "",
            ]
        )
    table = (
        layout.html_table(
            ["window", "predictions", "drift alerts", "live metric", "review queue"], rows, "monitoring windows"
        )
        if rows
        else report_html.empty("no prediction logged yet: serve predictions with `noria serve`")
    )
    alerts = sum(bool(r.get("alerts")) for r in summary["drift"])
    cards = report_html.cards(
        [
            ("windows logged", str(len(windows)), ""),
            ("drift records", str(len(summary["drift"])), ""),
            ("windows with drift alerts", str(alerts), "alert" if alerts else ""),
            ("decisions", str(len(summary["decisions"])), ""),
        ]
    )
    parts = [cards, layout.section("Windows", table, "windows-h"), *sections]
    return Page("Monitoring", summary, parts)


def review(console: Console, window: str = "", reason: str = "", limit: str = "100") -> Page:
    from noria.errors import ConfigError
    from noria.monitoring.review import VERDICTS, review_rows
    from noria.monitoring.summary import monitoring_summary

    if not window:
        queues = monitoring_summary(console.project)["review_queues"]
        if not queues:
            raise ConfigError("no review queue yet", fix="noria monitor feedback writes one per scored window")
        window = max(queues)
    try:
        count = int(limit)
    except ValueError:
        raise ConfigError(f"limit: expected a whole number, got {limit!r}", fix="e.g. ?limit=50 (0: all)") from None
    queue = review_rows(console.project, window, reason=reason or None, limit=count or None)
    form = (
        '<form method="get" action="/monitoring/review"><fieldset><legend>Filter</legend>'
        f'<label for="r-window">window</label><input id="r-window" name="window" size="10" value="{escape(window)}">'
        f' <label for="r-reason">reason contains</label><input id="r-reason" name="reason" value="{escape(reason)}">'
        f' <label for="r-limit">at most</label><input id="r-limit" name="limit" size="5" value="{escape(limit)}">'
        ' <button type="submit">Show</button></fieldset></form>'
    )
    columns = [c for c in (queue["rows"][0] if queue["rows"] else {}) if c not in ("mark", "probabilities")]
    rows = []
    for row in queue["rows"]:
        mark = row.get("mark")
        marked = f"{mark['verdict']} by {mark['by']}" if mark else ""
        action = (
            layout.link_cell(f"/actions/review?window={window}&request_id={row.get('request_id')}", "mark")
            if console.access.actions_enabled
            else ""
        )
        rows.append([*[_cell(row.get(c)) for c in columns], marked, action])
    body = (
        layout.html_table([*columns, "mark", "action"], rows, f"review queue of {window}")
        if rows
        else report_html.empty("no queued prediction matches")
    )
    note = (
        f'<p class="muted">{len(rows):,} shown of {queue["matching"]:,} matching ({queue["total"]:,} queued); '
        f"verdicts: {', '.join(VERDICTS)}. The same list: <code>noria monitor review --window {escape(window)}"
        " --json</code></p>"
    )
    return Page(f"Review queue {window}", queue, [form, note, body])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


__all__ = ["monitoring", "review"]
