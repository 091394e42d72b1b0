"""A tiny document model rendered twice: to Markdown (images as files) and to one HTML file.

Writing the card once as blocks keeps the two renderings saying exactly the same thing. The HTML
file is built with :mod:`noria.report_html` (page shell, styles, tables, escaping, embedded
images), like the monitoring and maturity reports, so all of them look and escape alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from noria import report_html


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
        """One self-contained HTML page (images inline), in the shared report look."""
        parts = [f"<h1>{escape(self.title)}</h1>"]
        for kind, body in self.blocks:
            if kind == "h2":
                parts.append(f"<h2>{escape(body)}</h2>")
            elif kind == "p":
                parts.append(f"<p>{escape(body)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in body) + "</ul>")
            elif kind == "table":
                headers, rows = body
                parts.append(report_html.table(headers, [[_text(c) for c in row] for row in rows]))
            elif kind == "img":
                parts.append(report_html.image(body.png, body.alt))
        return report_html.page(self.title, parts)


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
