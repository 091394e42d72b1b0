"""The console's pages: Overview and Data here; Models, Monitoring, Features and Maturity beside.

Each page function takes the :class:`~noria.console.app.Console` and the address's parameters and
returns a :class:`Page`: the JSON payload, which is what the CLI's ``--json`` prints for the same
question (its twin is named in :data:`CLI_TWINS`), and the HTML drawn from that payload and from
the records it came from. :func:`noria.console.app.page_routes` maps each address to its page function.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from html import escape
from typing import TYPE_CHECKING, Any

from noria import report_html
from noria.console import layout

if TYPE_CHECKING:
    from noria.console.app import Console


@dataclass(frozen=True)
class Page:
    """A rendered page: title, the JSON twin, the HTML parts (inside ``<main>``)."""

    title: str
    payload: Any
    parts: list[str] = field(default_factory=list)


# --- overview ------------------------------------------------------------------------------------


def overview(console: Console) -> Page:
    from noria.console.status import loop_status

    status = loop_status(console.project, None)  # the service's health is asked live, in live()
    return Page("Overview", status, [])


def live(console: Console, page: Page) -> Page:
    """Fill in what a cached page must not keep: the service's health, asked on every request, and
    its request rate (the prediction log's newest files, whose counts are kept per file)."""
    if not isinstance(page.payload, dict) or "stages" not in page.payload or "red" not in page.payload:
        return page
    from noria.console.status import RED, serving_stage

    stages = [
        serving_stage(console.serving_url, console.project) if s["stage"] == "serving" else s
        for s in page.payload["stages"]
    ]
    payload = page.payload | {"stages": stages, "red": [s["stage"] for s in stages if s["state"] in RED]}
    return replace(page, payload=payload, parts=_overview_parts(payload))


def _overview_parts(status: dict[str, Any]) -> list[str]:
    stages = status["stages"]
    red = status["red"]
    by_name = {s["stage"]: s for s in stages}
    summary = report_html.cards(
        [
            ("model", status["model"], ""),
            ("stages needing attention", str(len(red)), "alert" if red else ""),
            ("champion", _champion_text(by_name.get("registry")), ""),
            ("maturity", str(by_name.get("maturity", {}).get("summary", "n/a")).split(",")[0], ""),
        ]
    )
    attention = (
        layout.section(
            "Needs attention",
            "<ul>"
            + "".join(
                f'<li><a href="#stage-{escape(s["stage"])}">{escape(s["stage"])}</a>: {escape(s["summary"])}'
                + (f" &mdash; fix: <code>{escape(str(s['fix']))}</code>" if s.get("fix") else "")
                + "</li>"
                for s in stages
                if s["stage"] in red
            )
            + "</ul>",
            "attention-h",
        )
        if red
        else "<p>" + layout.badge("ok") + " No stage is stale or failing.</p>"
    )
    return [summary, attention, layout.loop_picture(stages), _requests_part(by_name.get("serving"))]


def _requests_part(stage: dict[str, Any] | None) -> str:
    """The serving stage's request rate as a table: requests and predictions per window, per minute
    and per second, the newest request's age; "no request" in words when a window is empty."""
    from noria.console.status import age_text

    rate = ((stage or {}).get("details") or {}).get("requests")
    if not rate:
        return ""
    if rate.get("log") == "off":
        body = report_html.empty("the prediction log is off (serving.prediction_log.enabled): no request rate")
        return layout.section("Requests served", body, "requests-h")
    rows = [
        [
            f"last {w['minutes']} min",
            f"{w['requests']:,}" if w["requests"] else "0 (no request)",
            f"{w['predictions']:,}",
            f"{w['per_minute']:.3g}",
            f"{w['per_second']:.3g}",
        ]
        for w in rate["windows"]
    ]
    table = layout.table(
        ["window", "requests", "predictions (rows)", "requests per minute", "requests per second"],
        rows,
        "requests served, from the prediction log",
    )
    last = rate.get("last_request_at")
    age = age_text(last) if last else ""
    newest = f"newest request {age} ({last})" if last else "no request logged yet"
    state = str((stage or {}).get("state", "unknown"))
    note = (
        f"<p>{layout.badge(state)} {escape(newest)}; windows end at {escape(str(rate['as_of']))} (whole minutes; "
        "rows reach the log when the service rolls a file, every <code>serving.prediction_log.roll_seconds</code>)."
        " The same numbers: <code>noria status --json</code>.</p>"
    )
    return layout.section("Requests served", note + table, "requests-h")


def _champion_text(stage: dict[str, Any] | None) -> str:
    champion = (stage or {}).get("details", {}).get("champion")
    return "none" if champion is None else f"version {champion}"


# --- data ----------------------------------------------------------------------------------------


def data(console: Console) -> Page:
    from noria.data.snapshots import list_snapshots

    records = list_snapshots(console.project)
    payload = [r.to_dict() for r in records]
    if not records:
        return Page("Data", payload, [report_html.empty("no snapshots yet: run `noria data ingest`")])
    rows = []
    for r in reversed(records):
        t = r.totals()
        rows.append(
            [
                layout.link_cell(f"/data/{r.short_id}", r.short_id),
                r.created_at,
                f"{r.months[0]}..{r.months[-1]}" if r.months else "",
                f"{t['read']:,}",
                f"{t['accepted']:,}",
                f"{t['quarantined']:,}",
                f"{t['rows_in_snapshot']:,}",
                (r.git_commit or "-")[:8] + ("+dirty" if r.git_dirty else ""),
                layout.link_cell(f"/data/{r.parent[:8]}", r.parent[:8]) if r.parent else "",
            ]
        )
    header = ["snapshot", "created", "months", "read", "accepted", "quarantined", "rows in snapshot", "git", "parent"]
    note = (
        "<p>Each ingest reads rows, accepts or quarantines every one of them (read = accepted + quarantined) "
        "and writes a new snapshot whose parent is the one before (newest first).</p>"
    )
    return Page("Data", payload, [note, layout.html_table(header, rows, "data snapshots")])


def snapshot(console: Console, ref: str) -> Page:
    from noria.data.snapshots import get_record

    record = get_record(console.project, ref)
    payload = record.to_dict()
    fields = [
        ("id", record.id),
        ("created", record.created_at),
        ("source", record.source),
        ("range", f"{record.range_from or 'first'}..{record.range_to or 'last'}"),
        ("months", ", ".join(record.months)),
        ("schema hash", record.schema_hash),
        ("git commit", (record.git_commit or "not recorded") + (" (dirty)" if record.git_dirty else "")),
        ("parent snapshot", record.parent or "none"),
        ("ingest", record.ingest_id),
        ("noria", record.noria_version),
    ]
    lineage = layout.table(["field", "value"], fields, "snapshot lineage")
    rows = [
        [
            name,
            f"{t.read:,}",
            f"{t.accepted:,}",
            f"{t.quarantined:,}",
            f"{t.rows_in_snapshot:,}",
            "" if t.file_rows is None else f"{t.file_rows:,}",
            f"{t.outside_range:,}",
            ", ".join(f"{rule}: {n:,}" for rule, n in t.rules.items()),
            "; ".join(t.warnings),
        ]
        for name, t in record.tables.items()
    ]
    header = [
        "table",
        "read",
        "accepted",
        "quarantined",
        "in snapshot",
        "file rows",
        "outside range",
        "rules",
        "warnings",
    ]
    accounting = layout.table(header, rows, "row accounting per table")
    quarantined = sum(t.quarantined for t in record.tables.values())
    link = (
        f"<p>{layout.link(f'/data/{record.short_id}/quarantine', f'Browse the {quarantined:,} quarantined rows')}</p>"
        if quarantined
        else "<p>Its ingest quarantined no row.</p>"
    )
    return Page(
        f"Snapshot {record.short_id}",
        payload,
        [
            layout.section("Lineage", lineage, "lineage-h"),
            layout.section("Row accounting", accounting + link, "rows-h"),
        ],
    )


def quarantine(console: Console, ref: str, table: str = "", rule: str = "", limit: str = "20") -> Page:
    from noria.data.snapshots import get_record, quarantined_rows
    from noria.errors import ConfigError

    try:
        count = int(limit)
    except ValueError:
        raise ConfigError(f"limit: expected a whole number, got {limit!r}", fix="e.g. ?limit=50 (0: all)") from None
    record = get_record(console.project, ref)
    rows = quarantined_rows(console.project, record, table=table or None, limit=count or None, rule=rule or None)
    payload = {"snapshot": record.id, "rows": rows}
    tables = "".join(
        f'<option value="{escape(n)}"{" selected" if n == table else ""}>{escape(n)}</option>' for n in record.tables
    )
    form = (
        f'<form method="get" action="/data/{escape(record.short_id)}/quarantine"><fieldset><legend>Filter</legend>'
        f'<label for="q-table">table</label><select id="q-table" name="table"><option value="">all</option>{tables}'
        f'</select> <label for="q-rule">reason contains</label><input id="q-rule" name="rule" value="{escape(rule)}">'
        f' <label for="q-limit">at most</label><input id="q-limit" name="limit" size="5" value="{escape(limit)}">'
        ' <button type="submit">Show</button></fieldset></form>'
    )
    cli = f"noria data show {record.short_id} --quarantine" + (f" --table {table}" if table else "")
    cli += (f" --rule {rule!r}" if rule else "") + f" --limit {count}"
    body = (
        layout.table(
            ["table", "line", "reasons", "row"],
            [[r["table"], r["line"], r["reasons"], ", ".join(f"{k}={v}" for k, v in r["row"].items())] for r in rows],
            "quarantined rows",
        )
        if rows
        else report_html.empty("no quarantined row matches")
    )
    note = f'<p class="muted">{len(rows):,} rows shown; the same list: <code>{escape(cli)}</code></p>'
    return Page(f"Quarantined rows of {record.short_id}", payload, [form, note, body])


CLI_TWINS = {
    "/": "noria status --json",
    "/data": "noria data list --json",
    "/data/{ref}": "noria data show REF --json",
    "/data/{ref}/quarantine": "noria data show REF --quarantine [--table T] [--rule R] [--limit N] --json",
    "/features": "noria features list --json and noria features usage --json (keys features, usage)",
    "/models": "noria models list --json",
    "/models/{name}/{version}": "noria lineage NAME/VERSION --json",
    "/requests": "noria lineage --request ID --json",
    "/monitoring": "noria monitor show --json",
    "/monitoring/review": "noria monitor review --window W --json",
    "/maturity": "noria maturity --json (without assessed_at)",
}


__all__ = ["CLI_TWINS", "Page", "data", "live", "overview", "quarantine", "snapshot"]
