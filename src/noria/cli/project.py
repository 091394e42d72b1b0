"""``noria init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).")],
    template: Annotated[
        str,
        typer.Option(
            "--template",
            "-t",
            help="flights (binary), football (multi-class), glucose (regression) or blank (your own data).",
        ),
    ] = "flights",
    name: Annotated[str | None, typer.Option("--name", help="Project name (default: the template's).")] = None,
) -> None:
    """Create a project from a template, as a git repository (with DVC) and a first commit.

    
    Examples:
      noria init my-project && cd my-project && noria data ingest
      noria init matches --template football
      noria init mine --template blank     # then follow docs/your-project.md
    """
    from noria.scaffold import init_project

    path = init_project(directory, name, template=template)
    typer.echo(f"created {path} from the {template} template (git repository with DVC; first commit made)")
    nxt = "put your data under raw/, then noria data ingest" if template == "blank" else "noria data ingest"
    typer.echo(f"next: cd {directory} && {nxt}")


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Project folder for the demo (created on first run).")
    ] = Path("demo"),
    until: Annotated[
        int,
        typer.Option(
            "--until",
            min=1,
            max=6,
            help="Stop after this chapter: 1 ingest, 2 features, 3 training (a champion), 4 serving, 5 the loop, "
            "6 maturity.",
        ),
    ] = 6,
    template: Annotated[
        str, typer.Option("--template", "-t", help="The project to run it on: flights, football or glucose.")
    ] = "flights",
) -> None:
    """Run the whole loop on embedded defaults in a demo project (what `make demo` does).

    
    Examples:
      noria demo --dir /tmp/noria-demo
      noria demo --dir /tmp/noria-demo --until 3    # stop once a champion is registered
      noria demo --dir /tmp/football --template football
    """
    from noria.demo import run_demo

    run_demo(directory.resolve(), until=until, template=template)


def replay(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="First window (default: replay.from).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last window (default: replay.to).")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="A running service to send to (default: start one for the replay).")
    ] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", min=1, help="Requests per call (default: replay.batch).")
    ] = None,
) -> None:
    """Replay past windows through the service: serve, drift, matured labels, policy, retrain, hot swap.

    Window by window: the data the window needs is ingested, its requests go through POST
    /predict (with their point-in-time features), drift is computed, the labels that have
    matured are fed back, the retraining policy decides (a promoted model is hot-swapped) and
    the online store is materialized up to the window's end. `noria monitor report` draws it.
    With --url, the key comes from NORIA_API_KEY.

    
    Examples:
      noria replay --from 2013-07 --to 2013-09
      noria replay                              # the windows under replay: in noria.yaml
    """
    import os

    from noria.replay import run_replay

    run_replay(ctx.obj.load(), start, end, url=url, api_key=os.environ.get("NORIA_API_KEY"), batch=batch)
