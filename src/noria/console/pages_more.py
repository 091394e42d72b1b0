"""Features (views and features, online freshness, missing rates at training and in the newest drift
record's window, which model versions use which feature) and
Maturity (the ``noria maturity`` table with its evidence).

JSON twins: ``/features`` is ``{"features": <noria features list --json>, "usage":
<noria features usage --json>}``; ``/maturity`` is ``noria maturity --json`` without
``assessed_at`` (the time of the assessment, the only field that differs between two runs).
"""

from __future__ import annotations

from dataclasses import asdict
from html import escape
from typing import TYPE_CHECKING, Any

from noria import report_html
from noria.console import layout
from noria.console.pages import Page

if TYPE_CHECKING:
    from noria.console.app import Console

STATUS_WORDS = {"MET": "ok", "PARTIAL": "warn", "NOT MET": "failing", "NEEDS A PERSON": "unknown"}


def features(console: Console) -> Page:
    from noria.features.definitions import feature_catalog, load_definitions
    from noria.features.usage import list_usage

    project = console.project
    catalog = feature_catalog(load_definitions(project))
    usage = [asdict(r) for r in list_usage(project)]
    payload = {"features": catalog, "usage": usage}
    stage = next(s for s in loop_status_features(project) if s["stage"] == "features")
    fresh = f"<p>{layout.badge(stage['state'])} {escape(stage['summary'])}</p>"
    if stage.get("fix") and stage["state"] != "ok":
        fresh += f"<p>Fix: <code>{escape(str(stage['fix']))}</code></p>"
    used: dict[str, list[str]] = {}
    for r in usage:
        for name in r.get("features") or []:
            used.setdefault(name, []).append(f"{r['model']} v{r['version']}")
    missing, window = _missing_rates(console)
    columns = list(catalog[0]) if catalog else []
    rows = [
        [
            *[c.get(k, "") for k in columns],
            missing.get(str(c.get("feature", "")), ""),
            ", ".join(used.get(str(c.get("feature", "")), [])),
        ]
        for c in catalog
    ]
    missing_header = f"missing: training -> {window}" if window else "missing"
    table = (
        layout.table([*columns, missing_header, "used by"], rows, "features")
        if rows
        else report_html.empty("no feature declared")
    )
    usage_rows = [
        [r["model"], r["version"], r["service"], r["definition_hash"][:12], len(r["features"]), r["recorded_at"]]
        for r in usage
    ]
    usage_table = (
        layout.table(
            ["model", "version", "service", "definitions", "features", "recorded"], usage_rows, "feature usage"
        )
        if usage_rows
        else report_html.empty("no model has recorded its features yet (training records them)")
    )
    return Page(
        "Features",
        payload,
        [
            layout.section("Online store freshness", fresh, "fresh-h"),
            layout.section("Feature views and features", table, "features-h"),
            layout.section("Which model versions use which features", usage_table, "usage-h"),
        ],
    )


def _missing_rates(console: Console) -> tuple[dict[str, str], str | None]:
    """Each feature's share of missing values at training and in the newest drift record's window."""
    from noria.monitoring.store import MonitoringStore

    name = console.project.config.model.name
    drift = [r for r in MonitoringStore.of(console.project).records("drift") if r.get("model_name") == name]
    if not drift:
        return {}, None
    newest = drift[-1]
    rates = {
        str(f["name"]): f"{f.get('missing_reference', 0):.1%} -> {f.get('missing_current', 0):.1%}"
        for f in newest.get("features") or []
    }
    return rates, str(newest["window"])


def loop_status_features(project: Any) -> list[dict[str, Any]]:
    """The data and features stages of the loop (the freshness check compares the two)."""
    from noria.console.status import data_stage, features_stage

    data = data_stage(project)
    return [asdict(data), asdict(features_stage(project, data.at))]


def maturity(console: Console) -> Page:
    from noria.maturity import assess

    result = assess(console.project)
    payload = {k: v for k, v in result.to_dict().items() if k != "assessed_at"}
    verdict = "mature" if result.mature else "not mature: sections 1-4 are not all MET"
    cards = report_html.cards(
        [("score", f"{result.score:g} of {result.total}", ""), ("verdict", verdict, "" if result.mature else "alert")]
        + [(k, str(n), "") for k, n in result.counts.items()]
    )
    sections = layout.table(
        ["section", "score", *result.counts],
        [[f"{s.number}. {s.title}", f"{s.score:g} / {s.total}", *s.counts.values()] for s in result.sections()],
        "score per section",
    )
    rows: list[list[object]] = []
    for r in result.results:
        evidence = "; ".join(str(e) for e in r.finding.evidence[:3])
        rows.append(
            [
                r.statement.number,
                _status(r.status.value),
                r.statement.text,
                evidence,
                r.finding.todo,
            ]
        )
    head = "".join(f'<th scope="col">{h}</th>' for h in ("#", "status", "statement", "evidence", "to complete"))
    body = "".join(
        "<tr>" + "".join(str(c) if i == 1 else report_html.cell(c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    statements = (
        '<div class="scroll" role="region" aria-label="statements" tabindex="0">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )
    return Page(
        "Maturity",
        payload,
        [
            cards,
            layout.section("Per section", sections, "sections-h"),
            layout.section("Statements, with evidence", statements, "statements-h"),
        ],
    )


def _status(value: str) -> str:
    state = STATUS_WORDS.get(value.upper(), "unknown")
    return f'<td><span class="badge s-{state}">{escape(value)}</span></td>'


__all__ = ["features", "maturity"]
