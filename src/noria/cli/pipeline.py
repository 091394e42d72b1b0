"""``noria pipeline``: run pipelines locally or one step at a time, list and show them."""

from __future__ import annotations

from typing import Annotated

import typer

from noria.cli._state import State

app = typer.Typer(
    help="Run cached pipelines (whole, or one step in a fresh process), list them, show their graph.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _state(ctx: typer.Context) -> State:
    return ctx.obj if isinstance(ctx.obj, State) else State()


@app.command("run")
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name, or a module:attribute reference.")],
    step: Annotated[
        str | None, typer.Option("--step", "-s", help="Run only this step (inputs read from the store).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Run id: resumes that run; shared by all tasks of one run.")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="Set a parameter, KEY=VALUE (JSON). Repeatable."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Re-run steps even when cached.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run (steps, statuses, artifacts) as JSON.")
    ] = False,
) -> None:
    """Run a pipeline, skipping steps whose code, parameters and inputs are unchanged.

    
    Examples:
      noria pipeline run training --param rounds=200
      noria pipeline run training --step fit --run-id 2024-07-01   # one step, as an orchestrator task
    """
    from rich.console import Console

    from noria.pipelines import parse_params, run_project_pipeline
    from noria.terminal import print_json

    project = _state(ctx).load()
    result = run_project_pipeline(
        project,
        name,
        step=step,
        run_id=run_id,
        params=parse_params(param or []),
        use_cache=not no_cache,
        progress=not quiet and step is None,
        console=Console(stderr=True),
    )
    if as_json:
        print_json(result.to_dict())
        return
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("ran", "cached", "resumed") if result.count(s))
    typer.echo(f"run {result.run_id} of {result.pipeline}: {counts} in {result.seconds:.2f}s")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List the pipelines Noria can find, and where each is defined.

    Example: noria pipeline list
    """
    from noria.errors import ProjectNotFoundError
    from noria.pipelines import known_pipelines

    try:
        project = _state(ctx).load()
    except ProjectNotFoundError:
        project = None
    found = known_pipelines(project)
    if not found:
        typer.echo("no pipelines registered (add them under pipelines.registry in noria.yaml)")
    width = max((len(n) for n in found), default=0)
    for pipeline_name, source in found.items():
        typer.echo(f"{pipeline_name:<{width}}  {source}")


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name, or a module:attribute reference.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print steps and edges as JSON.")] = False,
) -> None:
    """Show a pipeline's steps in run order (inputs, parameters, outputs) and its edges.

    Example: noria pipeline show training
    """
    from noria.errors import ProjectNotFoundError
    from noria.pipelines import find_pipeline

    try:
        project = _state(ctx).load()
    except ProjectNotFoundError:
        project = None
    info = find_pipeline(project, name).describe()
    if as_json:
        from noria.terminal import print_json

        print_json(info)
        return
    typer.echo(f"pipeline {info['name']}" + (f": {info['description']}" if info["description"] else ""))
    if info["params"]:
        typer.echo("params: " + ", ".join(f"{k}={v!r}" for k, v in info["params"].items()))
    for s in info["steps"]:
        inputs = ", ".join(f"{art} <- {up}" for art, up in s["inputs"].items()) or "-"
        extra = "" if s["cache"] else "  (not cached)"
        typer.echo(
            f"  {s['name']}: inputs [{inputs}]  params [{', '.join(s['params']) or '-'}]"
            f"  outputs [{', '.join(s['outputs'])}]{extra}"
        )
    typer.echo("edges:")
    for e in info["edges"]:
        typer.echo(f"  {e['from']} -> {e['to']}  ({e['artifact']})")
