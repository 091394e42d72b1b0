"""What the model card quotes from the project's pages: the intended use, the users, the risks.

A project made by ``noria init`` has ``docs/goals.md``, ``docs/explanations.md`` and
``docs/risk.md``. The card takes one section of each:

- **Intended use**: ``docs/goals.md``, section "Business goal" (the decision the model
  supports, for whom);
- **Users and decisions**: ``docs/explanations.md``, section "Who reads the explanations"
  (the users and what they do with an answer);
- **Risks and mitigations**: ``docs/risk.md``, section "Risks and mitigations" (its table).

A part is ``filled`` when its section exists, is not empty and holds no placeholder (the same
reading as ``noria maturity``, :mod:`noria.project_docs`); otherwise it is ``missing`` (no
page), ``no_section`` or ``unfilled``, and the card says so and shows its default text instead.
Each filled part carries its section's text and the page's sign-off lines (who agreed, when).

:func:`read_card_docs` returns plain JSON: the training pipeline's ``card_docs`` step passes it
to ``evaluate``, so a change to these sections (or their sign-offs) re-renders the card and
nothing else in the page (nor any other page) does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noria.project_docs import Doc, placeholder_lines, sign_offs, table


@dataclass(frozen=True)
class CardPart:
    """One part of the card taken from a page: which page, which section."""

    key: str
    title: str  # the card's heading
    page: str  # relative to the project folder
    heading: str  # the section's heading, as the template writes it
    patterns: tuple[str, ...]  # case-insensitive regexes for the heading, tried in order


PARTS = (
    CardPart("intended_use", "Intended use", "docs/goals.md", "Business goal", ("business goal", "^intended use")),
    CardPart(
        "users", "Users and decisions", "docs/explanations.md", "Who reads the explanations", ("who reads", "^users")
    ),
    CardPart(
        "risks", "Risks and mitigations", "docs/risk.md", "Risks and mitigations", ("risks? and mitigat", "^risks?$")
    ),
)
PART = {p.key: p for p in PARTS}


def read_card_docs(root: Path | str) -> dict[str, Any]:
    """Each part's state, section text, table and sign-offs, read from the project folder ``root``."""
    return {part.key: _read(Path(root), part) for part in PARTS}


def _read(root: Path, part: CardPart) -> dict[str, Any]:
    out: dict[str, Any] = {"page": part.page, "section": part.heading}
    path = root / part.page
    if not path.is_file():
        return out | {"state": "missing"}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return out | {"state": "unreadable", "reason": f"{type(exc).__name__}: {exc}"}
    doc = Doc(path, part.page, text)
    section = next((s for s in map(doc.section, part.patterns) if s is not None), None)
    if section is None:
        return out | {"state": "no_section"}
    out["section"] = section.heading
    todo = placeholder_lines(section.text)
    body = section.body.strip()
    if todo or not body:
        return out | {"state": "unfilled", "placeholder": todo[0] if todo else "(empty)"}
    signed = [s for s in sign_offs(text) if not placeholder_lines(s.line)]
    return out | {
        "state": "filled",
        "text": body,
        "sign_offs": [{"line": s.line, "date": s.date.isoformat()} for s in signed],
    }


def fallback_note(part: CardPart, entry: Any) -> str | None:
    """Why the card shows ``part``'s default text (None: the page's own text is shown)."""
    if not isinstance(entry, dict):
        return f"No project folder was given, so {part.page} was not read: the default below applies."
    state = entry.get("state")
    page, heading = part.page, entry.get("section") or part.heading
    if state == "filled":
        return None
    if state == "missing":
        return f"{page} is not written yet: the default below applies."
    if state == "unreadable":
        return f"{page} could not be read ({entry.get('reason')}): the default below applies."
    if state == "no_section":
        return f'{page} has no section "{part.heading}": the default below applies.'
    return (
        f'{page} is not filled in yet (its section "{heading}" still holds a placeholder): the default below applies.'
    )


def citation(part: CardPart, entry: dict[str, Any]) -> str:
    """Where a filled part comes from and who agreed to it, when."""
    where = f'From {part.page}, section "{entry.get("section") or part.heading}"'
    signed = [str(s["line"]).rstrip(".") for s in entry.get("sign_offs") or []]
    if not signed:
        return f"{where}; the page is not signed off yet (no line 'Agreed by NAME (ROLE) on YYYY-MM-DD')."
    return f"{where}; signed off: " + "; ".join(signed) + "."


def paragraphs(text: str) -> list[tuple[str, Any]]:
    """A section's Markdown as the card's blocks: ("p", text), ("ul", items) or ("table", (headers, rows))."""
    blocks: list[tuple[str, Any]] = []
    lines: list[str] = []
    items: list[str] = []
    rows: list[str] = []

    def flush() -> None:
        if lines:
            blocks.append(("p", " ".join(lines)))
            lines.clear()
        if items:
            blocks.append(("ul", list(items)))
            items.clear()
        if rows:
            found = table("\n".join(rows))
            if found is not None:
                blocks.append(("table", found))
            rows.clear()

    for raw in text.splitlines():
        line = raw.strip()
        bullet = line[2:].strip() if line[:2] in ("- ", "* ", "+ ") else None
        if not line:
            flush()
        elif line.startswith("|"):
            if lines or items:
                flush()
            rows.append(line)
        elif bullet is not None:
            if lines or rows:
                flush()
            items.append(bullet)
        elif items and raw[:1].isspace():
            items[-1] += " " + line  # a wrapped bullet
        else:
            if items or rows:
                flush()
            lines.append(line.lstrip("#").strip() if line.startswith("#") else line)
    flush()
    return blocks
