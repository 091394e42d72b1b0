"""The shared pieces of Noria's self-contained HTML reports: the page shell, styles, cards, tables, images.

The monitoring report (:mod:`noria.monitoring.report_page`), the maturity report
(:mod:`noria.maturity.report`), the model card (:mod:`noria.training.card`) and the console are
written with these, so they look alike and escape alike: every value that comes from a record or
a file is escaped here, the page has no external reference
(inline CSS with the reader's system fonts, optional inline script), and nothing imports more
than the standard library.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:0 24px 48px;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6rem;margin:24px 0 4px}h2{font-size:1.2rem;margin:36px 0 8px;border-bottom:1px solid #ddd}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:1.25rem}.card span{color:#666;font-size:.8rem}
.alert b{color:#c0392b}.empty{color:#666;font-style:italic;background:#f6f6f6;padding:10px 14px;border-radius:6px}
figure.plot{margin:8px 0}figure.plot svg,figure.plot img{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.8rem;margin:8px 0;width:100%}
th,td{border-bottom:1px solid #e5e5e5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#fafafa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777;font-size:.8rem}
"""


def page(
    title: str,
    parts: Sequence[str],
    *,
    css: str = "",
    script: str = "",
    body_attributes: Mapping[str, str] | None = None,
) -> str:
    """A whole HTML document: ``parts`` (already HTML) in ``<body>``, the shared CSS plus ``css``."""
    attributes = "".join(f' {name}="{escape(value)}"' for name, value in (body_attributes or {}).items())
    tail = f"\n<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="generator" content="noria"><title>{escape(title)}</title><style>{CSS}{css}</style></head>\n'
        f"<body{attributes}>\n" + "\n".join(parts) + f"{tail}\n</body></html>\n"
    )


def cards(items: Iterable[tuple[str, str, str]]) -> str:
    """Summary cards: (caption, value, extra CSS class such as ``alert``)."""
    html = "".join(f'<div class="card {cls}"><span>{escape(k)}</span><b>{escape(v)}</b></div>' for k, v, cls in items)
    return f'<div class="summary">{html}</div>'


def empty(message: str) -> str:
    """A grey note saying why a section has nothing to show."""
    return f'<p class="empty">{escape(message)}</p>'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table of plain values (escaped; numbers right-aligned)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cell(value: Any) -> str:
    """One ``<td>``: escaped text, class ``n`` (right-aligned) when it reads as a number."""
    text = "" if value is None else str(value)
    numeric = text.replace(".", "", 1).replace(",", "").replace("%", "").lstrip("-").isdigit()
    return f'<td class="n">{escape(text)}</td>' if numeric else f"<td>{escape(text)}</td>"


def image(png: bytes, alt: str) -> str:
    """A PNG embedded in the page itself (a ``data:`` URI, nothing fetched), scaled to the page's width."""
    data = base64.b64encode(png).decode("ascii")
    return f'<figure class="plot"><img src="data:image/png;base64,{data}" alt="{escape(alt)}"></figure>'


__all__ = ["CSS", "cards", "cell", "empty", "image", "page", "table"]
