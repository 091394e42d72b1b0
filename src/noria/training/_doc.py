"""A tiny document model rendered twice: to Markdown (images as files) and to one HTML file.

Writing the card once as blocks keeps the two renderings saying exactly the same thing.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #1f5fa8;padding-bottom:.2em}h2{margin-top:1.8em;color:#1f5fa8}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f1f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}code{background:#f4f4f4;padding:0 .2em}
"""


@dataclass(frozen=True)
class Image:
    name: str  # file name for the Markdown rendering, e.g. "roc.png"
    png: bytes
    alt: str


@dataclass
class Doc:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))

    def image(self, image: Image) -> None:
        self.blocks.append(("img", image))

    def images(self) -> list[Image]:
        return [b for kind, b in self.blocks if kind == "img"]

    def markdown(self, image_dir: str) -> str:
        out = [f"# {self.title}", ""]
        for kind, body in self.blocks:
            if kind == "h2":
                out += [f"## {body}", ""]
            elif kind == "p":
                out += [body, ""]
            elif kind == "ul":
                out += [f"- {item}" for item in body] + [""]
            elif kind == "table":
                headers, rows = body
                out.append("| " + " | ".join(headers) + " |")
                out.append(
                    "|" + "|".join("---:" if _numeric_column(rows, i) else "---" for i in range(len(headers))) + "|"
                )
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "img":
                out += [f"![{body.alt}]({image_dir}/{body.name})", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for kind, body in self.blocks:
            if kind == "h2":
                parts.append(f"<h2>{html.escape(body)}</h2>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(body)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in body) + "</ul>")
            elif kind == "table":
                headers, rows = body
                head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                lines = []
                for row in rows:
                    cells = "".join(
                        f'<td class="num">{_text(c)}</td>' if _is_number(c) else f"<td>{html.escape(_text(c))}</td>"
                        for c in row
                    )
                    lines.append(f"<tr>{cells}</tr>")
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(body.png).decode("ascii")
                parts.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(body.alt)}">')
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numeric_column(rows: list[list[Any]], i: int) -> bool:
    cells = [r[i] for r in rows if i < len(r) and r[i] not in ("", None)]
    return bool(cells) and all(_is_number(c) for c in cells)


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _md_cell(value: Any) -> str:
    return _text(value).replace("|", "\\|").replace("\n", " ")
