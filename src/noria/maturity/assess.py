"""Run every check on a project: :func:`assess` returns the :class:`~noria.maturity.Assessment`.

Checks only read (files, git, the registry and monitoring records); a check that fails with an
unexpected error does not stop the others: its statement is NOT MET with the error as evidence,
so a broken project file shows up in the report instead of hiding the rest.
"""

from __future__ import annotations

from datetime import UTC, datetime

from noria.config import Project
from noria.maturity._context import Context
from noria.maturity._model import Assessment, Evidence, Finding, Result, Status
from noria.maturity._registry import checks


def assess(project: Project, *, now: datetime | None = None, strict: bool = False) -> Assessment:
    """Score ``project`` against the 60 statements.

    ``now`` is the moment ages (sign-offs, estimates, A/B tests) are measured from; ``strict``
    re-raises a check's unexpected error instead of recording it (``--debug``).
    """
    ctx = Context(project, now=now or datetime.now(UTC))
    results = []
    for c in checks():
        try:
            finding = c.run(ctx)
        except Exception as exc:  # one broken check must not hide the other 59
            if strict:
                raise
            finding = Finding(
                Status.NOT_MET,
                (Evidence("error", f"check of statement {c.statement.number}", f"{type(exc).__name__}: {exc}"),),
                "the check could not run: fix the cause above (run with --debug for the traceback)",
            )
        results.append(Result(c.statement, finding))
    return Assessment(
        project=project.config.project,
        project_dir=str(ctx.root),
        repository=str(ctx.repo),
        assessed_at=ctx.now.isoformat(timespec="seconds"),
        results=tuple(results),
    )


__all__ = ["assess"]
