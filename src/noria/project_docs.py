"""A project's Markdown pages: sections under their headings, unfilled placeholders, sign-offs.

One reading of what a filled-in page is, shared by ``noria maturity`` (which judges the pages)
and the model card (which quotes them): a section still holding a placeholder (TODO, TBD,
FILL IN, upper case, as whole words) is not filled in; a sign-off is a line naming who agreed
and the date (``Agreed by Ana Lima (head of operations) on 2025-03-01``). Standard library
only, so any layer may use it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

# Unfilled parts of a template: TODO, TBD, FILL IN (upper case, as whole words).
PLACEHOLDER = re.compile(r"\b(TODO|TBD|FILL IN)\b")
# A sign-off: "Agreed by Ana Lima (head of operations) on 2025-03-01", "Signed off: ..., 2025-03-01".
SIGN_OFF = re.compile(r"(?im)^.*\b(signed[ -]off|agreed|approved|reviewed)\b.*?(\d{4}-\d{2}-\d{2}).*$")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_RULE = re.compile(r"^\|?[\s:|-]+\|?$")
_CELL = re.compile(r"(?<!\\)\|")  # a cell border (an escaped pipe, \|, is text)


@dataclass(frozen=True)
class Section:
    """A Markdown heading and the text under it (its sub-sections included)."""

    doc: Doc
    heading: str
    level: int
    line: int
    body: str

    @property
    def where(self) -> str:
        return f"{self.doc.rel}#{self.heading}"

    @property
    def text(self) -> str:
        return f"{self.heading}\n{self.body}"

    def placeholders(self) -> list[str]:
        return placeholder_lines(self.text)


@dataclass(frozen=True)
class Doc:
    """One Markdown page: its path, the path a reader is shown (``rel``) and its text."""

    path: Path
    rel: str
    text: str

    @functools.cached_property
    def sections(self) -> list[Section]:
        lines = self.text.splitlines()
        heads: list[tuple[int, int, str]] = []  # (line index, level, heading)
        fenced = False
        for i, line in enumerate(lines):
            if FENCE.match(line):
                fenced = not fenced
                continue
            m = None if fenced else HEADING.match(line)
            if m:
                heads.append((i, len(m[1]), m[2].strip()))
        out = []
        for k, (i, level, heading) in enumerate(heads):
            end = next((j for j, lv, _ in heads[k + 1 :] if lv <= level), len(lines))
            out.append(Section(self, heading, level, i + 1, "\n".join(lines[i + 1 : end])))
        return out

    def section(self, heading: str) -> Section | None:
        """The first section whose heading matches ``heading`` (a case-insensitive regex)."""
        pattern = re.compile(heading, re.I)
        return next((s for s in self.sections if pattern.search(s.heading)), None)

    def __hash__(self) -> int:
        return hash(self.path)


@dataclass(frozen=True)
class SignOff:
    """A sign-off line (list and table marks stripped) and its date."""

    line: str
    date: date


def placeholder_lines(text: str) -> list[str]:
    """Lines holding a placeholder (TODO, TBD, FILL IN), stripped."""
    return [line.strip() for line in text.splitlines() if PLACEHOLDER.search(line)]


def sign_offs(text: str) -> list[SignOff]:
    """The sign-off lines of a page, in page order (a line whose date is no real day is left out)."""
    out = []
    for m in SIGN_OFF.finditer(text):
        try:
            when = date.fromisoformat(m[2])
        except ValueError:
            continue
        out.append(SignOff(m[0].strip(" -*|"), when))
    return out


def table(text: str) -> tuple[list[str], list[list[str]]] | None:
    """The first Markdown table in ``text``: its header cells and its rows' cells (None: no table)."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            if not _TABLE_RULE.match(stripped):
                rows.append([c.strip().replace("\\|", "|") for c in _CELL.split(stripped.strip("|"))])
        elif rows:
            break
    return (rows[0], rows[1:]) if rows else None


__all__ = [
    "FENCE",
    "HEADING",
    "PLACEHOLDER",
    "SIGN_OFF",
    "Doc",
    "Section",
    "SignOff",
    "placeholder_lines",
    "sign_offs",
    "table",
]
