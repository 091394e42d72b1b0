"""The MLOps maturity assessment: a project scored against the 60 statements, with evidence.

    from noria.config import load_project
    from noria.maturity import assess, write_html

    result = assess(load_project("examples/flights"))
    print(result.score, result.total, result.mature)
    write_html(result, "maturity.html")

Each statement has one small check (:mod:`noria.maturity._registry`; the checks live in the
``checks_*`` modules, by section of the checklist) that returns MET, PARTIAL, NOT MET or
NEEDS A PERSON, the evidence it found, and what would complete the statement. See
docs/maturity.md.
"""

from __future__ import annotations

from noria.maturity._model import (
    SECTIONS,
    Assessment,
    Evidence,
    Finding,
    Result,
    SectionScore,
    Statement,
    Status,
)
from noria.maturity._registry import Check, check_of, checks
from noria.maturity.assess import assess
from noria.maturity.report import render_html, write_html

__all__ = [
    "SECTIONS",
    "Assessment",
    "Check",
    "Evidence",
    "Finding",
    "Result",
    "SectionScore",
    "Statement",
    "Status",
    "assess",
    "check_of",
    "checks",
    "render_html",
    "write_html",
]
