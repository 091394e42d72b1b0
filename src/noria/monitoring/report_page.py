"""The HTML of the monitoring report: summary, five sections, tables; plots from :mod:`._report_plots`,
the drift heatmap's data from :mod:`._report_drift_matrix`.

Sections and columns follow the project's task: the primary metric and its holdout value, the
KPI and its target, then the task's own metrics; the plots' words come from the task too.

Every value that comes from a record is escaped. The page has no external reference: inline
CSS with the reader's system fonts, inline SVG plots, and one inline script that counts the
plots the browser actually drew (``data-plots-drawn`` on ``<body>``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from noria import report_html
from noria.monitoring import _report_performance_plots as performance_plots
from noria.monitoring import _report_plots as plots
from noria.monitoring import _report_words as words
from noria.monitoring._report_drift_matrix import SCORE_ROW, DriftMatrix, drift_matrix
from noria.monitoring._report_svg import number as _num
from noria.monitoring._report_svg import to_svg

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from noria.monitoring.report import ReportData
    from noria.tasks import Task

MAX_DRIFT_COLUMNS = 36  # newest drift records in the heatmap (a year of months, or five weeks of days)

SCRIPT = """(function(){var n=0;document.querySelectorAll('figure.plot > svg').forEach(function(s){
try{var b=s.getBBox();if(b.width>0&&b.height>0){n++;}}catch(e){}});
document.body.setAttribute('data-plots-drawn',String(n));})();"""


class _Page:
    """Collects sections and numbers the plots."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.plots = 0

    def figure(self, fig: Figure, caption: str) -> None:
        self.plots += 1
        svg = to_svg(fig, f"p{self.plots}", caption)
        self.parts.append(
            f'<figure class="plot">{svg}<figcaption class="muted">{escape(caption)}</figcaption></figure>'
        )

    def add(self, text: str) -> None:
        self.parts.append(text)

    def empty(self, message: str) -> None:
        self.parts.append(report_html.empty(message))


def document(data: ReportData) -> str:
    parts, plots = body(data)
    title = f"Noria monitoring - {data.project} / {data.model_name}"
    attributes = {"data-plots": str(plots), "data-plots-drawn": ""}
    return report_html.page(title, parts, script=SCRIPT, body_attributes=attributes)


def body(data: ReportData, *, header: bool = True) -> tuple[list[str], int]:
    """The report's parts (the summary header unless ``header`` is False, then its five sections)
    and the number of plots among them: what the report file and the console's monitoring page show."""
    page = _Page()
    windows = _windows(data)
    if header:
        page.add(_summary(data, windows))
    page.add('<section id="drift"><h2>1. Drift per feature over time</h2>')
    _drift(page, data)
    page.add('</section><section id="score"><h2>2. Score distribution vs reference</h2>')
    _score(page, data)
    page.add('</section><section id="performance"><h2>3. Performance on delayed labels</h2>')
    _performance(page, data)
    page.add('</section><section id="alerts"><h2>4. Alerts and retraining</h2>')
    _alerts(page, data, windows)
    page.add('</section><section id="champion"><h2>5. Champion history</h2>')
    _champion(page, data)
    page.add("</section>")
    return page.parts, page.plots


# --- summary -----------------------------------------------------------------------------------


def _windows(data: ReportData) -> list[str]:
    found = {str(r["window"]) for r in [*data.drift, *data.performance]}
    found.update(_decision_window(d) for d in data.decisions)
    return sorted(w for w in found if w)


def _decision_window(decision: Mapping[str, Any]) -> str:
    return str(decision.get("window") or str(decision.get("decided_at", ""))[:7])


def _summary(data: ReportData, windows: Sequence[str]) -> str:
    newest = windows[-1] if windows else None
    newest_alerts = sorted({a for r in data.drift if r["window"] == newest for a in r.get("alerts") or []})
    total_alerts = sum(len(r.get("alerts") or []) for r in data.drift)
    retrains = [d for d in data.decisions if d.get("action") == "retrain"]
    promoted = sum(d.get("promoted") is True for d in retrains)
    cards = [
        ("project", data.project, ""),
        ("model", data.model_name, ""),
        ("task", _task_words(data), ""),
        ("current champion", "none" if data.champion is None else f"v{data.champion}", ""),
        ("newest window", newest or "none", ""),
        *_performance_cards(data),
        (f"alerts in {newest or 'the newest window'}", str(len(newest_alerts)), "alert" if newest_alerts else ""),
        ("alerts, all windows", str(total_alerts), "alert" if total_alerts else ""),
        ("retrains (promoted)", f"{len(retrains)} ({promoted})", ""),
    ]
    detail = f"<p>Alerts in {escape(str(newest))}: {escape(', '.join(newest_alerts))}</p>" if newest_alerts else ""
    return (
        f'<header id="summary"><h1>Monitoring report: {escape(data.model_name)}</h1>'
        f'<p class="muted">project {escape(data.project)}, generated {escape(data.generated_at)}</p>'
        f"{report_html.cards(cards)}{detail}</header>"
    )


def _task_words(data: ReportData) -> str:
    task = data.task
    if task.name == "multiclass":
        return f"multi-class ({', '.join(task.classes)})" if task.classes else "multi-class"
    if task.name == "regression":
        return f"regression: {words.with_unit(words.target_name(task), task)}"
    return f"binary: {words.positive_name(task)}"


def _performance_cards(data: ReportData) -> list[tuple[str, str, str]]:
    """The newest labelled window's primary metric (against the holdout) and KPI (against its target)."""
    if not data.performance:
        return []
    record = data.performance[-1]
    metric = performance_plots.primary_of([record], data.task)
    live = _num((record.get("metrics") or {}).get(metric))
    holdout = _num(record.get("holdout"))
    drop = _num(record.get("metric_drop"))
    text = _fmt(live, "{:.4g}") or "n/a"
    if not math.isnan(holdout):
        text += f" (holdout {holdout:.4g})"
    worse = data.metric_drop is not None and not math.isnan(drop) and drop > data.metric_drop
    cards = [(f"{words.metric_name(metric, data.task)}, {record['window']}", text, "alert" if worse else "")]
    kpi = performance_plots.kpi_of([record])
    if kpi:
        value, target = _num(kpi.get("value")), _num(kpi.get("target"))
        shown = _kpi_value(str(kpi["metric"]), value) or "n/a"
        if not math.isnan(target):
            shown += f" (target {_kpi_value(str(kpi['metric']), target)})"
        cards.append((f"KPI: {kpi.get('name') or kpi['metric']}", shown, "alert" if _misses(kpi, data.task) else ""))
    return cards


def _kpi_value(metric: str, value: float) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.1%}" if metric in words.SHARE_METRICS or metric.startswith("share_") else f"{value:.4g}"


def _misses(kpi: Mapping[str, Any], task: Task) -> bool:
    """True when the KPI is on the wrong side of its target (the metric's direction decides)."""
    value, target = _num(kpi.get("value")), _num(kpi.get("target"))
    higher = task.metric_directions.get(str(kpi.get("metric")))
    if math.isnan(value) or math.isnan(target) or higher is None:
        return False
    return bool(value < target if higher else value > target)


# --- 1. drift ----------------------------------------------------------------------------------


def _drift(page: _Page, data: ReportData) -> None:
    records = data.drift[-MAX_DRIFT_COLUMNS:]
    if not records:
        page.empty(f"no drift records for {data.model_name} yet: run `noria monitor drift --window WINDOW`")
        return
    m = drift_matrix(records)
    fig = plots.drift_heatmap(m.psi, m.alerts, m.rows, m.important, m.columns, m.psi_warn, m.psi_alert)
    page.figure(fig, "PSI of each feature (rows, most important first) in each window and model version (columns)")
    if len(data.drift) > len(records):
        page.add(f'<p class="muted">showing the newest {len(records)} of {len(data.drift)} drift records</p>')
    newest = records[-1]["window"]
    flagged = [
        (r["model_version"], f)
        for r in records
        if r["window"] == newest
        for f in [*(r.get("features") or []), *([r["score"]] if r.get("score") else [])]
        if f.get("verdict") != "ok"
    ]
    flagged.sort(key=lambda vf: _moved_first(vf[1]))
    page.add(f"<h3>Features that moved in {escape(newest)}</h3>")
    if not flagged:
        page.empty(f"every feature is within the thresholds in {newest}")
        return
    page.add(
        report_html.table(
            ["version", "feature", "kind", "verdict", "alert", "importance", "PSI", "p-value", "missing", "why"],
            [
                [
                    f"v{v}",
                    f["name"],
                    f.get("kind"),
                    f.get("verdict"),
                    "ALERT" if f.get("alert") else "",
                    _fmt(f.get("importance"), "{:.1%}"),
                    _fmt(f.get("psi")),
                    _fmt(f.get("p_value"), "{:.2g}"),
                    _fmt(f.get("missing_current"), "{:.1%}"),
                    f.get("reason", ""),
                ]
                for v, f in flagged
            ],
        )
    )


def _moved_first(feature: Mapping[str, Any]) -> tuple[bool, float]:
    """Alerts first, then the largest PSI (no PSI last)."""
    psi = _num(feature.get("psi"))
    return (not feature.get("alert"), math.inf if math.isnan(psi) else -psi)


# --- 2. score ----------------------------------------------------------------------------------


def _score(page: _Page, data: ReportData) -> None:
    view = data.score
    if view is None or not view.windows:
        page.empty(data.notes.get("score", "no served predictions to compare with the reference yet"))
        return
    fig = plots.score_distribution(view.reference, view.windows, data.task)
    what = words.score_label(data.task)
    page.figure(fig, f"Scores served by version {view.version} against its training-time reference histogram: {what}")
    psi = {
        r["window"]: _num((r.get("score") or {}).get("psi")) for r in data.drift if r["model_version"] == view.version
    }
    listed = [f"{w}: PSI {psi[w]:.3f}" for w, _ in view.windows if not math.isnan(psi.get(w, math.nan))]
    if listed:
        page.add(f'<p class="muted">score PSI from the drift records: {escape("; ".join(listed))}</p>')


# --- 3. performance ----------------------------------------------------------------------------

# the task's own metrics in the table, after the primary metric, its holdout and the KPI
TABLE_METRICS = {
    "binary": ("pr_auc", "precision", "recall", "brier", "ece", "base_rate", "flagged_rate"),
    "multiclass": ("accuracy", "macro_f1", "brier", "ece", "mean_confidence"),
    "regression": ("mae", "r2", "bias", "mean_label", "mean_prediction"),
}


def _performance(page: _Page, data: ReportData) -> None:
    records = data.performance
    task = data.task
    if not records:
        page.empty(
            "no performance records yet: run `noria monitor feedback` once the labels of served predictions "
            "are known (mature)"
        )
        return
    windows = sorted({str(r["window"]) for r in records})
    primary = performance_plots.primary_of(records, task)
    name = words.metric_name(primary, task)
    page.figure(
        performance_plots.performance(records, windows, task),
        f"Live {name} against the holdout, the KPI against its target and the task's own figures, per window "
        "and model version",
    )
    newest = records[-1]
    if task.name == "regression":
        page.figure(
            performance_plots.residuals(records, windows, newest, task),
            f"Mean label against mean prediction per window, and the daily errors of {newest['window']}",
        )
    elif newest.get("calibration") or newest.get("days"):
        page.figure(performance_plots.calibration(newest, task), f"Calibration and daily figures of {newest['window']}")
    if task.name == "multiclass" and task.classes:
        page.figure(
            performance_plots.class_shares(records, windows, task.classes), "Share of each class among the labels"
        )
    if data.metric_drop is not None:
        page.add(
            f'<p class="muted">retraining threshold (monitoring.policy.metric_drop): {name} worse than the '
            f"holdout by more than {data.metric_drop:g}</p>"
        )
    extra = [k for k in TABLE_METRICS.get(task.name, ()) if any(k in (r.get("metrics") or {}) for r in records)]
    kpi = performance_plots.kpi_of(records)
    kpi_label = str(kpi.get("name") or kpi.get("metric") or "KPI")
    rows = []
    for r in records:
        m = r.get("metrics") or {}
        own = performance_plots.kpi_of([r])
        rows.append(
            [
                r["window"],
                f"v{r['model_version']}",
                r.get("arm", ""),
                _fmt(r.get("predictions"), "{:,}"),
                _fmt(r.get("labelled"), "{:,}"),
                _fmt(m.get(primary), "{:.4g}"),
                _fmt(r.get("holdout"), "{:.4g}"),
                _fmt(r.get("metric_drop"), "{:+.3g}"),
                _kpi_value(str(own.get("metric") or ""), _num(own.get("value"))),
                _kpi_value(str(own.get("metric") or ""), _num(own.get("target"))),
                *(_fmt(m.get(k), "{:.1%}" if k in words.SHARE_METRICS else "{:.4g}") for k in extra),
            ]
        )
    header = ["window", "version", "arm", "predictions", "labelled", f"live {name}", f"holdout {name}"]
    header += ["drop (+ = worse)", f"KPI: {kpi_label}", "KPI target", *(words.metric_name(k, task) for k in extra)]
    page.add(report_html.table(header, rows))


# --- 4. alerts and retraining ------------------------------------------------------------------


def _alerts(page: _Page, data: ReportData, windows: Sequence[str]) -> None:
    if not data.drift and not data.decisions:
        page.empty("no drift alerts and no retraining decisions yet: run `noria monitor run`")
        return
    alerts: dict[str, int] = {}
    drifted: dict[str, int] = {}
    for r in data.drift:
        alerts[r["window"]] = alerts.get(r["window"], 0) + len(r.get("alerts") or [])
        drifted[r["window"]] = drifted.get(r["window"], 0) + len(r.get("drifted") or [])
    decisions = [(_decision_window(d), d) for d in data.decisions]
    page.figure(plots.timeline(windows, alerts, drifted, decisions), "Drift alerts per window and every decision")
    alerted = [r for r in data.drift if r.get("alerts")]
    if alerted:
        page.add("<h3>Alerts</h3>")
        page.add(
            report_html.table(
                ["window", "version", "rows", "alerts (important features)"],
                [
                    [r["window"], f"v{r['model_version']}", _fmt(r.get("rows"), "{:,}"), ", ".join(r["alerts"])]
                    for r in alerted
                ],
            )
        )
    page.add("<h3>Retraining decisions</h3>")
    if not data.decisions:
        page.empty("no retraining decisions yet: run `noria monitor run`")
        return
    page.add(
        report_html.table(
            ["decided at", "window", "action", "reasons", "before", "candidate", "promoted", "gate", "after"],
            [
                [
                    _when(d.get("decided_at")),
                    w,
                    d.get("action", ""),
                    "; ".join(d.get("reasons") or []),
                    _version(d.get("model_version_before")),
                    _version(d.get("candidate_version")),
                    _yes_no(d.get("promoted")),
                    d.get("gate_reason") or "",
                    _version(d.get("model_version_after")),
                ]
                for w, d in decisions
            ],
        )
    )


# --- 5. champion -------------------------------------------------------------------------------


def _champion(page: _Page, data: ReportData) -> None:
    events = [
        (t, int(e["version"]), str(e.get("action", "")))
        for e in data.champion_events
        if (t := parse_time(str(e.get("at", "")))) is not None and e.get("version") is not None
    ]
    current = "none" if data.champion is None else f"v{data.champion}"
    page.add(f"<p>Current champion: <b>{escape(current)}</b></p>")
    if not events:
        page.empty(data.notes.get("champion", "the champion has no recorded history yet"))
        return
    until = max(datetime.now(UTC), events[-1][0])
    page.figure(plots.champion_steps(sorted(events, key=lambda e: e[0]), until), "Champion version over time")
    page.add(
        report_html.table(
            ["at", "action", "version", "from", "by", "reason"],
            [
                [
                    _when(e.get("at")),
                    e.get("action", ""),
                    _version(e.get("version")),
                    _version(e.get("from")),
                    e.get("by", ""),
                    e.get("reason", ""),
                ]
                for e in reversed(data.champion_events)
            ],
        )
    )


# --- helpers -----------------------------------------------------------------------------------


def _fmt(value: Any, pattern: str = "{:.3f}") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    number = _num(value)
    if math.isnan(number):
        return ""
    if math.isinf(number):
        return "inf"
    return pattern.format(int(number) if "," in pattern else number)


def _when(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM`` UTC (the text itself if it is not a time)."""
    moment = parse_time(str(value)) if value is not None else None
    return "" if value is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}" if moment else str(value)


def _yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else ""


def _version(value: Any) -> str:
    return "" if value is None else f"v{value}"


__all__ = ["SCORE_ROW", "DriftMatrix", "document", "drift_matrix"]


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (None if it is not one)."""
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
