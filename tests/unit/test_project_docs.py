"""The shared page parser: sections, placeholders, sign-offs and tables of a project's Markdown."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from noria.project_docs import Doc, SignOff, placeholder_lines, sign_offs, table

PAGE = """\
# Risk

```
# not a heading: inside a fence
```

## Risks and mitigations

| risk | mitigation |
|:---|---:|
| a \\| b | none |

### Detail

More.

## Sign-off

- Agreed by Ana Lima (operations) on 2026-02-30.
- Agreed by Bo Chen (owner) on 2026-03-01.
TODO replace with: Agreed by NAME (ROLE) on YYYY-MM-DD
"""


def test_sections_nest_and_skip_fenced_code() -> None:
    doc = Doc(Path("docs/risk.md"), "docs/risk.md", PAGE)
    assert [(s.heading, s.level) for s in doc.sections] == [
        ("Risk", 1), ("Risks and mitigations", 2), ("Detail", 3), ("Sign-off", 2)
    ]  # fmt: skip
    risks = doc.section("mitigation")
    assert risks is not None and risks.where == "docs/risk.md#Risks and mitigations"
    assert "More." in risks.body and "Agreed" not in risks.body  # sub-sections belong to it, the next h2 not
    assert doc.section("nothing like it") is None
    assert placeholder_lines(PAGE) == ["TODO replace with: Agreed by NAME (ROLE) on YYYY-MM-DD"]


def test_sign_offs_need_a_real_date() -> None:
    assert sign_offs(PAGE) == [SignOff("Agreed by Bo Chen (owner) on 2026-03-01.", date(2026, 3, 1))]


def test_the_first_table_with_escaped_pipes() -> None:
    assert table(PAGE) == (["risk", "mitigation"], [["a | b", "none"]])
    assert table("no table here") is None
