"""``noria init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).")],
    name: Annotated[str | None, typer.Option("--name", help="Project name (default: flights).")] = None,
) -> None:
    """Create a project from the reference flights project, as a git repository with a first commit.

    Example:  noria init my-project && cd my-project && noria data ingest --from 2013-01 --to 2013-06
    """
    from noria.scaffold import init_project

    path = init_project(directory, name)
    typer.echo(f"created {path} (git repository with DVC; first commit made)")
    typer.echo(f"next: cd {directory} && noria data ingest --from 2013-01 --to 2013-06")


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Project folder for the demo (created on first run).")
    ] = Path("demo"),
    until: Annotated[
        int,
        typer.Option(
            "--until",
            min=1,
            max=5,
            help="Stop after this chapter: 1 ingest, 2 features, 3 training (a champion), 4 serving, 5 the loop.",
        ),
    ] = 5,
) -> None:
    """Run the whole loop on embedded defaults in a demo project (what `make demo` does).

    Examples:
      noria demo --dir /tmp/noria-demo
      noria demo --dir /tmp/noria-demo --until 3    # stop once a champion is registered
    """
    from noria.demo import run_demo

    run_demo(directory.resolve(), until=until)
