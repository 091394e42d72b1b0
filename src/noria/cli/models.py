"""``noria models``, ``noria promote``, ``noria rollback``, ``noria lineage``, ``noria ui``, ``noria status``.

The sub-app ``app`` holds ``noria models list``; ``promote``, ``rollback``, ``lineage`` and
``ui`` (the console) and ``status`` are top-level commands (plain functions the root app registers).
"""

from __future__ import annotations

from typing import Annotated

import typer

from noria.cli._state import State

app = typer.Typer(help="Registered models: versions, aliases and holdout metrics (MLflow registry).")


def _state(ctx: typer.Context) -> State:
    state = ctx.obj
    assert isinstance(state, State)
    return state


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered models with every version, its aliases and holdout metrics.

    Example:  noria models list my-model --json
    """
    from noria.registry import list_models
    from noria.terminal import print_json, print_table

    models = list_models(_state(ctx).load(), name)
    if as_json:
        print_json([m.to_dict() for m in models])
        return
    if not models:
        typer.echo("no registered models yet: train one with `noria pipeline run training`")
        return
    for model in models:
        rows = [
            {
                "version": v.version,
                "aliases": " ".join(f"@{a}" for a in v.aliases),
                **{k: round(val, 4) for k, val in sorted(v.metrics.items())},
                "gate": v.tags.get("noria.gate.decision", ""),
                "run": (v.run_id or "")[:12],
                "created": v.created_at,
            }
            for v in model.versions
        ]
        columns = [
            "version",
            "aliases",
            *sorted({k for v in model.versions for k in v.metrics}),
            "gate",
            "run",
        ]
        print_table(rows, title=f"{model.name}", columns=[*columns, "created"])


def promote(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number to promote to @champion.")],
    force: Annotated[bool, typer.Option("--force", help="Skip the gate (needs --reason).")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded; required with --force).")] = "",
) -> None:
    """Make a version @champion if it beats the current one on the recorded holdout evaluation.

    
    Examples:
      noria promote my-model 3
      noria promote my-model 3 --force --reason "hotfix for bad champion"
    """
    from noria.registry import promote as promote_version

    decision = promote_version(_state(ctx).load(), model, version, force=force, reason=reason)
    if decision.promoted:
        typer.echo(f"{model} version {decision.version} is now @champion (was {decision.previous_champion})")
    elif decision.alias == "challenger":
        typer.echo(f"{model} version {decision.version} stays @challenger")
    typer.echo(f"reason: {decision.reason}")
    if not decision.promoted and decision.alias == "challenger":
        raise typer.Exit(1)


def rollback(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the rollback is needed (recorded).")],
) -> None:
    """Move @champion back to the previous champion, recording who and why.

    Example:  noria rollback my-model --reason "AUC fell on live traffic"
    """
    from noria.registry import rollback as rollback_model

    result = rollback_model(_state(ctx).load(), model, reason)
    typer.echo(
        f"{model}@champion: version {result.from_version} -> {result.to_version} (by {result.by}: {result.reason})"
    )


def lineage(
    ctx: typer.Context,
    ref: Annotated[
        str | None, typer.Argument(help="MODEL, MODEL@alias or MODEL/version (MODEL means @champion).")
    ] = None,
    request: Annotated[
        str | None,
        typer.Option("--request", help="A request id from the prediction log: start from the prediction it got."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Walk from a model version (or one prediction) to its run, commit, environment, features and data.

    With --request, the prediction log is searched for that request id first: the rows it
    logged (time, model version, arm, answer) head the chain.

    \b
    Examples:
      noria lineage my-model@champion --json
      noria lineage --request 46b53602e44e8602
    """
    from noria.registry import format_lineage, lineage_of
    from noria.terminal import print_json

    if (ref is None) == (request is None):
        raise typer.BadParameter("give a model reference or --request ID (one of them)")
    project = _state(ctx).load()
    if request is not None:
        from noria.monitoring.requests import request_lineage

        traced = request_lineage(project, request)
        if as_json:
            print_json(traced)
            return
        for row in traced["request"]:
            answer = next((row[k] for k in ("decision", "predicted_class", "score") if row.get(k) is not None), None)
            typer.echo(
                f"request {row['request_id']} row {row.get('row')}: answered {row.get('timestamp')} by "
                f"{row.get('model_name')} version {row.get('model_version')} ({row.get('arm')}): {answer}"
            )
        ref = f"{traced['request'][0]['model_name']}/{int(traced['request'][0]['model_version'])}"
    report = lineage_of(project, str(ref))
    if as_json:
        print_json(report.to_dict())
    else:
        typer.echo(format_lineage(report))


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 5000,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (127.0.0.1 keeps it local).")] = "127.0.0.1",
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Open MLflow's own UI on the project's tracking store instead.")
    ] = False,
    insecure_local: Annotated[
        bool,
        typer.Option(
            "--insecure-local", help="Console without API keys (loopback only): pages open, actions off. For a laptop."
        ),
    ] = False,
    serving_url: Annotated[
        str | None, typer.Option("--serving-url", help="The service's address, for its health on the overview.")
    ] = None,
    mlflow_url: Annotated[
        str | None, typer.Option("--mlflow-url", help="A running MLflow UI to link to (e.g. from noria ui --mlflow).")
    ] = None,
) -> None:
    """Open the Noria console: the whole loop of the project in a browser (Ctrl-C stops it).

    Reading needs a key from NORIA_API_KEYS (or serving.api_key_hashes) unless --insecure-local;
    actions (promote, rollback, reload, review marks) need one from NORIA_ADMIN_KEYS.
    With --mlflow, MLflow's UI on the project's tracking store, as before.

    \b
    Examples:
      noria ui --insecure-local
      noria ui --serving-url http://127.0.0.1:8000 --port 5050
      noria ui --mlflow --port 5001
    """
    project = _state(ctx).load()
    if mlflow:
        from noria.registry import mlflow_ui_command, run_mlflow_ui

        command = mlflow_ui_command(project, port, host)
        if command.remote:
            typer.echo(f"this project tracks to an MLflow server: open {command.url}")
            return
        typer.echo(f"MLflow UI on {command.url} (Ctrl-C to stop)")
        raise typer.Exit(run_mlflow_ui(project, port, host))
    from noria.console.server import serve_console

    serve_console(
        project,
        host=host,
        port=port,
        insecure_local=insecure_local,
        serving_url=serving_url,
        mlflow_url=mlflow_url,
        announce=lambda url: typer.echo(f"Noria console on {url} (Ctrl-C to stop)"),
    )


def status(
    ctx: typer.Context,
    serving_url: Annotated[
        str | None, typer.Option("--serving-url", help="The service's address, to ask for its health.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (what the console's overview shows).")] = False,
) -> None:
    """The state of every stage of the loop, with its age and the command that fixes it.

    The serving stage also counts the requests of the last 5 and 60 minutes in the prediction
    log (stale: ready, but no request in the hour). The stale, failing or missing stages are
    named last; the exit code is 0 either way.

    \b
    Examples:
      noria status
      noria status --serving-url http://127.0.0.1:8000 --json
    """
    from noria.console.status import age_text, loop_status
    from noria.terminal import print_json, print_table

    result = loop_status(_state(ctx).load(), serving_url)
    if as_json:
        print_json(result)
        return
    rows = [
        {
            "stage": s["stage"],
            "state": s["state"].upper(),
            "summary": s["summary"],
            "age": age_text(s["at"]),
            "fix": s["fix"] if s["state"] != "ok" else "",
        }
        for s in result["stages"]
    ]
    print_table(rows, title=f"the loop of {result['project']} ({result['model']})")
    red = result["red"]
    typer.echo(f"needs attention: {', '.join(red)}" if red else "every stage is ok")
