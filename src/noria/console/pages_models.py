"""Models: every registered version with its aliases, holdout metrics and gate decision, the
champion's history, and per version its lineage (request -> version -> run -> code, environment,
features -> data snapshot) and model card.

JSON twins: ``/models`` is ``noria models list --json``; ``/models/NAME/VERSION`` is
``noria lineage NAME/VERSION --json``; ``/requests?id=ID`` is ``noria lineage --request ID --json``.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from noria import report_html
from noria.console import layout
from noria.console.pages import Page

if TYPE_CHECKING:
    from noria.console.app import Console

GATE_TAGS = ("noria.gate.decision", "noria.gate.reason", "noria.gate.compared_to", "noria.gate.by", "noria.gate.at")
MAX_CARD_BYTES = 200_000


def models(console: Console) -> Page:
    from noria.monitoring.report import registry_exists
    from noria.registry import champion_history, list_models

    project = console.project
    if not registry_exists(project):
        return Page("Models", [], [report_html.empty("no registry yet: train with `noria pipeline run training`")])
    summaries = list_models(project)
    payload = [m.to_dict() for m in summaries]
    parts: list[str] = []
    for model in summaries:
        metrics = sorted({k for v in model.versions for k in v.metrics})
        rows = []
        for v in sorted(model.versions, key=lambda v: -v.version):
            rows.append(
                [
                    layout.link_cell(f"/models/{model.name}/{v.version}", f"version {v.version}"),
                    " ".join(f"@{a}" for a in v.aliases),
                    *[_fmt(v.metrics.get(m)) for m in metrics],
                    v.tags.get("noria.gate.decision", ""),
                    v.tags.get("noria.gate.reason", ""),
                    v.created_at,
                ]
            )
        header = ["version", "aliases", *metrics, "gate", "gate reason (the numbers)", "created"]
        aliases = ", ".join(f"@{a} = version {n}" for a, n in sorted(model.aliases.items())) or "no alias"
        parts.append(
            layout.section(
                model.name,
                f"<p>{escape(aliases)}</p>"
                + layout.html_table(header, rows, f"versions of {model.name}")
                + _history(champion_history(project, model.name).events, model.name),
                f"model-{_anchor(model.name)}",
            )
        )
    if not summaries:
        parts.append(report_html.empty("no registered model yet: train with `noria pipeline run training`"))
    parts.append(layout.section("Trace a prediction", _trace_form(""), "trace-h"))
    return Page("Models", payload, parts)


def _trace_form(value: str) -> str:
    return (
        '<form method="get" action="/requests"><fieldset><legend>From a request id to the data</legend>'
        f'<label for="t-id">request id</label> <input id="t-id" name="id" value="{escape(value)}">'
        ' <button type="submit">Trace</button></fieldset></form>'
    )


def request(console: Console, id: str = "") -> Page:
    """One prediction (``/requests?id=ID``): the rows the log holds for it, then its version's lineage."""
    from noria.monitoring.requests import SHOWN, request_lineage
    from noria.registry import lineage_of

    if not id:
        return Page("Trace a prediction", {}, [layout.section("Trace a prediction", _trace_form(""), "trace-h")])
    traced = request_lineage(console.project, id)
    rows = traced["request"]
    header = [c for c in SHOWN if any(c in r for r in rows)]
    logged = layout.table(header, [[_fmt(r.get(c)) for c in header] for r in rows], f"logged rows of request {id}")
    report = lineage_of(console.project, f"{rows[0]['model_name']}/{int(rows[0]['model_version'])}")
    first = rows[0]
    prediction = f"request {id}, answered {first.get('timestamp')} ({first.get('arm') or 'champion'})"
    parts = [
        layout.section("Trace a prediction", _trace_form(id), "trace-h"),
        layout.section("The prediction, as logged", logged, "logged-h"),
        *_lineage_parts(console, report, prediction),
    ]
    return Page(f"Request {id}", traced, parts)


def _history(events: list[dict[str, Any]], name: str) -> str:
    if not events:
        return "<h3>Champion history</h3>" + report_html.empty("the champion was never moved through Noria")
    rows = [
        [
            e.get("at", ""),
            e.get("action", ""),
            _v(e.get("from")),
            _v(e.get("version")),
            e.get("by", ""),
            e.get("reason", ""),
        ]
        for e in reversed(events)
    ]
    table = layout.table(["when", "action", "from", "to", "by", "reason"], rows, f"champion history of {name}")
    return f"<h3>Champion history</h3>{table}"


def version(console: Console, name: str, version: str) -> Page:
    from noria.registry import lineage_of

    report = lineage_of(console.project, f"{name}/{version}")
    parts = _lineage_parts(console, report, None)
    return Page(f"{report.model.name} version {report.model.version}", report.to_dict(), parts)


def _lineage_parts(console: Console, report: Any, prediction: str | None) -> list[str]:
    m, lin = report.model, report.lineage
    gate = [(tag.removeprefix("noria.gate."), m.tags[tag]) for tag in GATE_TAGS if tag in m.tags]
    chain = [
        (
            "a prediction",
            prediction
            or "the prediction log records model_name and model_version with every request id "
            "(trace one from the Models page)",
        ),
        (f"model {m.name} version {m.version}", " ".join(f"@{a}" for a in m.aliases) or "no alias"),
        (f"training run {report.run_id}", f"{report.run_name} in {report.experiment}, started {report.started_at}"),
        ("code", f"git {lin.git_commit or 'not recorded'}" + (" (dirty)" if lin.git_dirty else "")),
        (
            "environment",
            f"python {lin.python}, noria {lin.noria_version}, uv.lock {lin.uv_lock_sha256 or '-'}, "
            f"packages {lin.packages_sha256 or '-'}",
        ),
        ("features", f"service {lin.feature_service or '-'}, definitions {lin.feature_definition_hash or '-'}"),
        ("data snapshot", lin.data_snapshot or "not recorded"),
    ]
    items = "".join(f"<li><strong>{escape(a)}</strong><br><span>{escape(b)}</span></li>" for a, b in chain)
    snap = (
        f"<p>{layout.link(f'/data/{lin.data_snapshot[:8]}', 'Open the data snapshot')}</p>" if lin.data_snapshot else ""
    )
    graph = f'<ol class="loop lineage" aria-label="lineage, from a prediction back to the data">{items}</ol>{snap}'
    metrics = layout.table(["metric", "value"], [(k, _fmt(v)) for k, v in report.metrics.items()], "run metrics")
    return [
        layout.section("Lineage", graph, "lineage-h"),
        layout.section(
            "Gate decision",
            layout.table(["field", "value"], gate, "gate decision") if gate else report_html.empty("never judged"),
            "gate-h",
        ),
        layout.section(
            "Release notes",
            f"<pre>{escape(m.release_notes)}</pre>"
            if m.release_notes
            else report_html.empty("never made @champion through Noria (each promotion writes its notes)"),
            "notes-h",
        ),
        layout.section("Metrics of the training run", metrics, "metrics-h"),
        layout.section("Model card", _card(report.artifact_uri, report.model_card), "card-h"),
        layout.section("Actions", _actions(console, m.name, m.version, m.aliases), "actions-h"),
    ]


def _card(artifact_uri: str, name: str | None) -> str:
    if not name:
        return report_html.empty("this run logged no model card")
    parsed = urlparse(artifact_uri)
    if parsed.scheme not in ("", "file"):
        return f"<p>The card is the artifact <code>{escape(name)}</code> of the run, in {escape(artifact_uri)}.</p>"
    path = Path(parsed.path) / name
    if not path.is_file():
        return report_html.empty(f"the model card {path} is not on this machine")
    text = path.read_bytes()[:MAX_CARD_BYTES].decode("utf-8", errors="replace")
    return f'<div class="scroll" tabindex="0" role="region" aria-label="model card"><pre>{escape(text)}</pre></div>'


def _actions(console: Console, name: str, number: int, aliases: tuple[str, ...]) -> str:
    if not console.access.actions_enabled:
        return "<p>Actions need an admin key: start the console with NORIA_ADMIN_KEYS set.</p>"
    links = []
    if "champion" not in aliases:
        links.append(
            layout.link("/actions/promote", f"Promote version {number} to @champion", model=name, version=number)
        )
    links.append(layout.link("/actions/rollback", "Roll @champion back to the previous champion", model=name))
    links.append(layout.link("/actions/reload", "Ask the service to reload its model"))
    return "<ul>" + "".join(f"<li>{a}</li>" for a in links) + "</ul><p class=muted>Each asks for confirmation.</p>"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else ("" if value is None else str(value))


def _v(value: Any) -> str:
    return "" if value is None else f"v{value}"


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


__all__ = ["models", "request", "version"]
