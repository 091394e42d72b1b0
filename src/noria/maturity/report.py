"""The maturity page: one self-contained HTML file, readable at a glance.

A summary (score, mature or not, how many statements in each status), one bar per section of
the checklist (its statements coloured by status), then every statement with its status, the
evidence found and what would complete it. Evidence that is a file links to it: relative to the
page when it is written into the repository, as ``file://`` otherwise.

Built with the shared pieces of :mod:`noria.report_html` (shell, styles, cards), like the
monitoring report. The one inline script counts the statements and bars the browser laid out
(``data-drawn`` on ``<body>``, checked against ``data-statements`` by the browser test).
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from noria import atomic, report_html
from noria.maturity._model import SECTIONS, Assessment, Result, Status

COLOURS = {
    Status.MET: "#2e7d32",
    Status.PARTIAL: "#f0a500",
    Status.NOT_MET: "#c62828",
    Status.NEEDS_PERSON: "#1565c0",
}
CSS = (
    ".bar{display:flex;height:18px;border-radius:4px;overflow:hidden;background:#eee;margin:4px 0 2px}"
    ".bar a{display:block;height:100%}.bars td{vertical-align:middle}"
    ".badge{display:inline-block;color:#fff;border-radius:4px;padding:1px 7px;font-size:.75rem;font-weight:600;"
    "white-space:nowrap}.statement{border-bottom:1px solid #eee;padding:8px 0}"
    ".statement h3{font-size:.95rem;margin:0 0 4px;font-weight:600}.statement ul{margin:2px 0 2px 18px;padding:0;"
    "font-size:.85rem}.todo{font-size:.85rem;margin:4px 0 0}.todo b{color:#555}"
    ".legend span{margin-right:14px;font-size:.8rem}"
)
SCRIPT = """(function(){var s=0,b=0;document.querySelectorAll('.statement').forEach(function(e){
if(e.getBoundingClientRect().height>0){s++;}});document.querySelectorAll('.bar a').forEach(function(e){
if(e.getBoundingClientRect().width>0){b++;}});document.body.setAttribute('data-drawn',s+' '+b);})();"""


def render_html(assessment: Assessment, links_from: Path | None = None) -> str:
    """The page; file evidence links relative to folder ``links_from`` (absolute ``file://`` if None)."""
    a = assessment
    counts = a.counts
    cards = [
        ("project", a.project, ""),
        ("score", f"{a.score:g} / {a.total}", ""),
        ("mature (sections 1-4 all MET)", "yes" if a.mature else "no", "" if a.mature else "alert"),
        *((status.value, str(counts[status.value]), "") for status in Status),
    ]
    legend = "".join(
        f'<span><span class="badge" style="background:{COLOURS[s]}">{escape(s.value)}</span></span>' for s in Status
    )
    parts = [
        f"<header><h1>MLOps maturity: {escape(a.project)}</h1>"
        f'<p class="muted">{escape(a.project_dir)} (repository {escape(a.repository)}), '
        f"assessed {escape(a.assessed_at)}. MET counts 1, PARTIAL 0.5.</p>"
        f'{report_html.cards(cards)}<p class="legend">{legend}</p></header>',
        '<section id="sections"><h2>Sections</h2>' + _bars(a) + "</section>",
    ]
    for number, title in SECTIONS.items():
        mine = [r for r in a.results if r.statement.section == number]
        if not mine:
            continue
        score = sum(r.status.points for r in mine)
        parts.append(f'<section id="section-{number}"><h2>{number}. {escape(title)} ({score:g} / {len(mine)})</h2>')
        parts.extend(_statement(r, a, links_from) for r in mine)
        parts.append("</section>")
    attributes = {"data-statements": str(a.total), "data-drawn": ""}
    return report_html.page(f"Noria maturity - {a.project}", parts, css=CSS, script=SCRIPT, body_attributes=attributes)


def _bars(a: Assessment) -> str:
    rows = []
    for s in a.sections():
        mine = [r for r in a.results if r.statement.section == s.number]
        segments = "".join(
            f'<a href="#s{r.statement.number}" title="{r.statement.number}: {escape(r.status.value)}" '
            f'style="width:{100 / len(mine):.4f}%;background:{COLOURS[r.status]}"></a>'
            for r in sorted(mine, key=lambda r: list(Status).index(r.status))
        )
        counts = ", ".join(f"{n} {k}" for k, n in s.counts.items() if n)
        rows.append(
            f'<tr><td><a href="#section-{s.number}">{s.number}. {escape(s.title)}</a></td>'
            f'<td class="n">{s.score:g} / {s.total}</td><td style="width:55%"><div class="bar">{segments}</div></td>'
            f'<td class="muted">{escape(counts)}</td></tr>'
        )
    return f'<table class="bars"><tbody>{"".join(rows)}</tbody></table>'


def _statement(r: Result, a: Assessment, links_from: Path | None) -> str:
    st = r.statement
    badge = f'<span class="badge" style="background:{COLOURS[r.status]}">{escape(r.status.value)}</span>'
    who = ' <span class="muted">(needs people)</span>' if st.person else ""
    items = "".join(
        f"<li>{_evidence(e.kind, e.where, e.detail, e.path, a, links_from)}</li>" for e in r.finding.evidence
    )
    evidence = f"<ul>{items}</ul>" if items else '<p class="muted">no evidence found</p>'
    todo = f'<p class="todo"><b>To complete:</b> {escape(r.finding.todo)}</p>' if r.finding.todo else ""
    return (
        f'<div class="statement" id="s{st.number}"><h3>{badge} {st.number}. {escape(st.text)}{who}</h3>'
        f"{evidence}{todo}</div>"
    )


def _evidence(kind: str, where: str, detail: str, path: str | None, a: Assessment, links_from: Path | None) -> str:
    label = f'<span class="muted">{escape(kind)}</span> '
    shown = escape(where)
    if path:
        target = Path(a.repository) / path
        if target.exists():
            href = Path(os.path.relpath(target, links_from)).as_posix() if links_from else target.resolve().as_uri()
            shown = f'<a href="{escape(href)}">{shown}</a>'
    return label + shown + (f": {escape(detail)}" if detail else "")


def write_html(assessment: Assessment, out: Path | str) -> Path:
    """Write the page to ``out`` atomically (readable by others); return its path."""
    target = Path(out)
    if target.is_dir():
        target = target / "maturity.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, render_html(assessment, links_from=target.parent.resolve()), mode=atomic.SHARED)
    return target


__all__ = ["COLOURS", "render_html", "write_html"]
