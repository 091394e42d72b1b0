"""What an assessment is made of: statements, findings with their evidence, and the score.

A *check* (one per statement, :mod:`noria.maturity._registry`) looks at the project and returns a
:class:`Finding`: a :class:`Status`, the :class:`Evidence` it found (a file and its section, a
config key, a registry or monitoring record, the git history, a CI workflow) and, unless the
statement is met, what would complete it (a command to run or a file to add).

Scoring: MET counts 1, PARTIAL 0.5, NOT MET and NEEDS A PERSON 0. A project is *mature* when
every statement of sections 1-4 is MET (the checklist's own rule); sections 5-7 are the
advanced level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    MET = "MET"
    PARTIAL = "PARTIAL"
    NOT_MET = "NOT MET"
    NEEDS_PERSON = "NEEDS A PERSON"

    @property
    def points(self) -> float:
        return {"MET": 1.0, "PARTIAL": 0.5}.get(self.value, 0.0)


SECTIONS: dict[int, str] = {
    1: "Documentation",
    2: "Traceability and reproducibility",
    3: "Code quality",
    4: "Monitoring and support",
    5: "Feature store",
    6: "Explainability",
    7: "A/B testing and feedback loop",
}
MATURE_SECTIONS = (1, 2, 3, 4)  # every statement of these must be MET for "mature"


@dataclass(frozen=True)
class Evidence:
    """One thing found: ``kind`` is file, config, record, git or workflow; ``where`` names it exactly.

    ``where`` is a path relative to the repository (with ``#section`` or ``:line``), a config key
    with its file and line, or a git reference; ``detail`` says what it shows; ``path`` is the
    file behind it (relative to the repository) when there is one, for links.
    """

    kind: str
    where: str
    detail: str = ""
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "detail": self.detail, "path": self.path}

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}" if self.detail else self.where


@dataclass(frozen=True)
class Finding:
    """What a check concluded: the status, the evidence, and what would complete the statement."""

    status: Status
    evidence: tuple[Evidence, ...] = ()
    todo: str = ""

    def __post_init__(self) -> None:
        if self.status is not Status.MET and not self.todo:
            raise ValueError(f"a {self.status} finding must say what would complete it (todo)")


@dataclass(frozen=True)
class Statement:
    """One of the 60 statements of the checklist (numbered as in the original)."""

    number: int
    text: str
    person: bool = False  # only people can make it true; the check looks for their written trace

    @property
    def section(self) -> int:
        return section_of(self.number)


def section_of(number: int) -> int:
    """The checklist section of a statement number (1-8, 9-28, 29-38, 39-46, 47-53, 54-57, 58-60)."""
    for section, last in ((1, 8), (2, 28), (3, 38), (4, 46), (5, 53), (6, 57), (7, 60)):
        if number <= last:
            return section
    raise ValueError(f"no statement {number}: the checklist has 60")


@dataclass(frozen=True)
class Result:
    """A statement with the finding of its check."""

    statement: Statement
    finding: Finding

    @property
    def status(self) -> Status:
        return self.finding.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.statement.number,
            "section": self.statement.section,
            "statement": self.statement.text,
            "status": self.status.value,
            "points": self.status.points,
            "evidence": [e.to_dict() for e in self.finding.evidence],
            "todo": self.finding.todo,
        }


@dataclass(frozen=True)
class SectionScore:
    number: int
    title: str
    score: float
    total: int
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.number, "title": self.title, "score": self.score, "of": self.total} | {
            "counts": self.counts
        }


@dataclass(frozen=True)
class Assessment:
    """Every statement's result for one project."""

    project: str
    project_dir: str
    repository: str
    assessed_at: str
    results: tuple[Result, ...] = field(default_factory=tuple)

    @property
    def score(self) -> float:
        return sum(r.status.points for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def counts(self) -> dict[str, int]:
        return _counts(self.results)

    @property
    def mature(self) -> bool:
        """Every statement of sections 1-4 is MET (and all of them were assessed)."""
        core = [r for r in self.results if r.statement.section in MATURE_SECTIONS]
        return len(core) == 46 and all(r.status is Status.MET for r in core)

    def sections(self) -> list[SectionScore]:
        out = []
        for number, title in SECTIONS.items():
            mine = [r for r in self.results if r.statement.section == number]
            if mine:
                out.append(SectionScore(number, title, sum(r.status.points for r in mine), len(mine), _counts(mine)))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "project_dir": self.project_dir,
            "repository": self.repository,
            "assessed_at": self.assessed_at,
            "score": self.score,
            "of": self.total,
            "mature": self.mature,
            "counts": self.counts,
            "sections": [s.to_dict() for s in self.sections()],
            "statements": [r.to_dict() for r in self.results],
        }


def _counts(results: tuple[Result, ...] | list[Result]) -> dict[str, int]:
    return {s.value: sum(r.status is s for r in results) for s in Status}


__all__ = [
    "MATURE_SECTIONS",
    "SECTIONS",
    "Assessment",
    "Evidence",
    "Finding",
    "Result",
    "SectionScore",
    "Statement",
    "Status",
    "section_of",
]
