"""``noria maturity``: the project scored against the 60 statements of the MLOps maturity checklist."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def maturity(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole assessment as JSON (for scripts).")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the assessment as an HTML page to this file.")
    ] = None,
    minimum: Annotated[
        float | None,
        typer.Option("--min", min=0, max=60, help="Exit 1 when the score is below this (MET 1, PARTIAL 0.5; of 60)."),
    ] = None,
) -> None:
    """Score the project against the 60 MLOps maturity statements, with the evidence found.

    Each statement is MET, PARTIAL, NOT MET or NEEDS A PERSON (only people can make it true and
    their written trace is missing), with its evidence (a file and section, a config key, a
    registry or monitoring record, the git history, a CI workflow) and what would complete it.
    The project is "mature" when every statement of sections 1-4 is MET.

    \b
    
    Examples:
      noria maturity
      noria maturity --html maturity.html
      noria --project my-project maturity --json > maturity.json
      noria maturity --min 40      # in CI: fail below 40 of 60
    """
    import os

    from noria.maturity import assess, write_html

    state = ctx.obj
    strict = bool(state and state.debug) or os.environ.get("NORIA_DEBUG") in ("1", "true")
    result = assess(state.load(), strict=strict)
    if as_json:
        from noria.terminal import print_json

        print_json(result.to_dict())
    else:
        _print(result)
    if html is not None:
        path = write_html(result, html)
        typer.echo(f"wrote {path}", err=as_json)
    if minimum is not None and result.score < minimum:
        typer.echo(f"maturity score {result.score:g} of {result.total} is below --min {minimum:g}", err=True)
        raise typer.Exit(1)


def _print(result: object) -> None:
    from noria.maturity import Assessment
    from noria.terminal import print_table

    assert isinstance(result, Assessment)
    rows = [
        {
            "#": r.statement.number,
            "status": r.status.value,
            "statement": r.statement.text,
            "evidence": "; ".join(str(e) for e in r.finding.evidence[:2]),
            "to complete": r.finding.todo,
        }
        for r in result.results
    ]
    print_table(rows, title=f"MLOps maturity of {result.project} ({result.project_dir})")
    sections = [
        {"section": f"{s.number}. {s.title}", "score": f"{s.score:g} / {s.total}"} | s.counts for s in result.sections()
    ]
    print_table(sections, title="per section")
    counts = ", ".join(f"{n} {k}" for k, n in result.counts.items())
    verdict = "mature" if result.mature else "not mature (sections 1-4 are not all MET)"
    typer.echo(f"score {result.score:g} of {result.total} ({counts}); {verdict}")
