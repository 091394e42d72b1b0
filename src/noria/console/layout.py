"""The console's page frame: the shared report shell (:mod:`noria.report_html`) with a skip link,
a navigation landmark, a ``<main>`` region, status badges that say their state in words (colour
only repeats it) and the loop drawn as a ring of stages.

No script: every page is plain HTML and CSS, readable without colour and at phone width (the
stage cards wrap, wide tables scroll inside their own box).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from noria import report_html
from noria.console.status import RED, age_text

NAV = (
    ("/", "Overview"),
    ("/data", "Data"),
    ("/features", "Features"),
    ("/models", "Models"),
    ("/monitoring", "Monitoring"),
    ("/maturity", "Maturity"),
)

CSS = """
.muted,.card span,.empty{color:#575757}.empty{background:#f3f3f3}
a{color:#0b57d0}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible,summary:focus-visible
{outline:3px solid #0b57d0;outline-offset:2px}
.skip{position:absolute;left:-9999px}.skip:focus{left:8px;top:8px;background:#fff;padding:6px;z-index:9}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:8px 20px;border-bottom:1px solid #ddd;padding:10px 0}
header.top .brand{font-weight:700;font-size:1.1rem;color:#1d1d1f;text-decoration:none}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:4px 14px;margin:0;padding:0}
nav a[aria-current=page]{font-weight:700;text-decoration:none;border-bottom:3px solid #0b57d0}
.badge{display:inline-block;border-radius:4px;padding:0 6px;font-size:.75rem;font-weight:700;
border:1px solid currentColor;white-space:nowrap}
.s-ok{color:#1e6b22}.s-warn{color:#8a5a00}.s-stale,.s-failing,.s-missing{color:#b3261e}.s-off,.s-unknown{color:#555}
ol.loop{list-style:none;display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:12px;padding:0;
margin:16px 0;counter-reset:stage}
ol.loop li{border:2px solid #ccc;border-radius:8px;padding:10px 12px;position:relative;counter-increment:stage;
overflow-wrap:anywhere}
ol.loop li.red{border-color:#b3261e;background:#fdf1f0}ol.loop li.ok{border-color:#1e6b22}
ol.loop h3{margin:0 0 4px;font-size:1rem}ol.loop h3::before{content:counter(stage) ". "}
ol.loop p{margin:4px 0;font-size:.85rem}ol.loop code{font-size:.8rem;background:#f3f3f3;padding:1px 4px}
ol.loop li:not(:last-child)::after{content:"\\2192";position:absolute;right:-11px;top:40%;color:#777}
.scroll{overflow-x:auto;max-width:100%}form.inline{display:inline}
fieldset{border:1px solid #ddd;border-radius:6px;margin:8px 0}label{margin-right:10px}
button,input[type=submit]{font:inherit;padding:4px 12px;border-radius:4px;border:1px solid #555;background:#f6f6f6;
cursor:pointer}
button.danger{border-color:#b3261e;color:#b3261e}
footer{margin-top:40px;color:#666;font-size:.8rem;border-top:1px solid #ddd;padding-top:8px}
pre{white-space:pre-wrap;overflow-wrap:anywhere}main{min-width:0}figure.plot img{max-width:100%;height:auto}
@media (max-width:600px){body{padding:0 10px 32px}ol.loop li::after{display:none}table{font-size:.75rem}
main table{display:block;overflow-x:auto;max-width:100%}figure.plot{overflow-x:auto;margin:8px 0}
.summary .card{min-width:0;flex:1 1 40%}main p,main li{overflow-wrap:anywhere}}
"""

LOOP_WORDS = {
    "data": "Data",
    "features": "Features",
    "training": "Training",
    "registry": "Registry",
    "serving": "Serving",
    "monitoring": "Monitoring",
    "retraining": "Retraining",
    "maturity": "Maturity",
}
STAGE_PAGES = {
    "data": "/data",
    "features": "/features",
    "training": "/models",
    "registry": "/models",
    "serving": "/",
    "monitoring": "/monitoring",
    "retraining": "/monitoring#alerts",
    "maturity": "/maturity",
}


def shell(title: str, current: str, parts: Sequence[str], *, project: str, mlflow_url: str | None = None) -> str:
    """A whole console page: skip link, header with navigation, ``parts`` in ``<main>``, footer."""
    links = "".join(
        f'<li><a href="{href}"{" aria-current=page" if href == current else ""}>{escape(text)}</a></li>'
        for href, text in NAV
    )
    mlflow = f'<li><a href="{escape(mlflow_url)}">MLflow UI</a></li>' if mlflow_url else ""
    head = (
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header class="top"><a class="brand" href="/">Noria console</a>'
        f'<span class="muted">project {escape(project)}</span>'
        f'<nav aria-label="Sections"><ul>{links}{mlflow}</ul></nav></header>'
    )
    body = [head, f'<main id="main" tabindex="-1"><h1>{escape(title)}</h1>', *parts, "</main>"]
    body.append(
        "<footer>Every figure comes from the records the <code>noria</code> CLI reads; "
        "add <code>?format=json</code> to any address for the same content as JSON.</footer>"
    )
    return report_html.page(f"{title} - Noria console", body, css=CSS)


def badge(state: str) -> str:
    """The state in words, coloured; readable without the colour."""
    return f'<span class="badge s-{escape(state)}">{escape(state.upper())}</span>'


def loop_picture(stages: Sequence[Mapping[str, Any]]) -> str:
    """The loop as an ordered ring of stage cards: state in words, summary, age and the fix."""
    items = []
    for s in stages:
        state = str(s["state"])
        cls = "red" if state in RED else ("ok" if state == "ok" else "")
        age = age_text(s.get("at"))
        fix = f"<p>Fix: <code>{escape(str(s['fix']))}</code></p>" if s.get("fix") and state != "ok" else ""
        items.append(
            f'<li class="{cls}" id="stage-{escape(str(s["stage"]))}">'
            f'<h3><a href="{STAGE_PAGES.get(s["stage"], "/")}">{escape(LOOP_WORDS.get(s["stage"], s["stage"]))}</a>'
            f" {badge(state)}</h3><p>{escape(str(s['summary']))}</p>"
            + (f'<p class="muted">{escape(age)} ({escape(str(s["at"]))})</p>' if age else "")
            + fix
            + "</li>"
        )
    return (
        '<section aria-labelledby="loop-h"><h2 id="loop-h">The loop</h2>'
        '<p class="muted">data &rarr; features &rarr; training &rarr; registry &rarr; serving &rarr; monitoring '
        "&rarr; retraining, and back to data</p>"
        f'<ol class="loop">{"".join(items)}</ol></section>'
    )


def section(heading: str, body: str, anchor: str) -> str:
    return f'<section aria-labelledby="{anchor}"><h2 id="{anchor}">{escape(heading)}</h2>{body}</section>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str) -> str:
    """A report table in a scrolling box, with a caption for screen readers and people alike."""
    html = report_html.table(header, rows)
    return f'<div class="scroll" role="region" aria-label="{escape(caption)}" tabindex="0">{html}</div>'


def link(href: str, text: str, **query: Any) -> str:
    kept = {k: v for k, v in query.items() if v not in (None, "")}
    target = href + (f"?{urlencode(kept)}" if kept else "")
    return f'<a href="{escape(target)}">{escape(text)}</a>'


def link_cell(href: str, text: str) -> Any:
    """A table cell holding a link (already HTML: :func:`report_html.cell` would escape it)."""
    return _Html(f'<a href="{escape(href)}">{escape(text)}</a>')


class _Html(str):
    """Text that is already HTML."""


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str) -> str:
    """Like :func:`table`, but cells made by :func:`link_cell` keep their HTML."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{v}</td>" if isinstance(v, _Html) else report_html.cell(v) for v in row) + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll" role="region" aria-label="{escape(caption)}" tabindex="0">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


__all__ = [
    "CSS",
    "NAV",
    "badge",
    "error_box",
    "html_table",
    "link",
    "link_cell",
    "loop_picture",
    "section",
    "shell",
    "table",
]


def error_box(message: str, fix: str | None = None) -> str:
    """An error in a page: what went wrong, and the fix when there is one."""
    extra = f"<p>Fix: <code>{escape(fix)}</code></p>" if fix else ""
    return f'<div role="alert" class="empty"><p><strong>Error:</strong> {escape(message)}</p>{extra}</div>'
