"""The ``noria`` command: a thin Typer shell over the library.

Each command group lives in its own module and imports heavy libraries inside the
command function only, so ``noria --help`` never loads pandas, DVC or MLflow. Errors from
the library (:class:`noria.errors.NoriaError`) become one line on stderr and an exit code;
``--debug`` (or ``NORIA_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from noria import __version__
from noria.cli import ab as ab_cmds
from noria.cli import config as config_cmds
from noria.cli import cost as cost_cmds
from noria.cli import data as data_cmds
from noria.cli import features as features_cmds
from noria.cli import maturity as maturity_cmds
from noria.cli import models as models_cmds
from noria.cli import monitor as monitor_cmds
from noria.cli import orchestrate as orchestrate_cmds
from noria.cli import pipeline as pipeline_cmds
from noria.cli import project as project_cmds
from noria.cli import serve as serve_cmds
from noria.cli import tune as tune_cmds
from noria.cli._state import State


class _NoriaGroup(TyperGroup):
    """Maps NoriaError to a one-line message and the error's exit code."""

    def invoke(self, ctx: Any) -> Any:
        from noria.errors import NoriaError

        try:
            return super().invoke(ctx)
        except NoriaError as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            if (state and state.debug) or os.environ.get("NORIA_DEBUG") in ("1", "true"):
                raise
            message = f"error: {exc.message}"
            if exc.fix:
                message += f" -- fix: {exc.fix}"
            typer.echo(message, err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="noria",
    cls=_NoriaGroup,
    help="Noria: the MLOps loop (data -> features -> training -> registry -> serving -> monitoring -> retraining).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"noria {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            "-p",
            help="Project folder (default: the nearest folder with a noria.yaml).",
            envvar="NORIA_PROJECT_DIR",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="Config profile to apply (default: local).", envvar="NORIA_PROFILE"),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    ctx.obj = State(project=project, profile=profile, debug=debug)


app.command("init")(project_cmds.init)
app.command("demo")(project_cmds.demo)
app.command("replay")(project_cmds.replay)
app.add_typer(config_cmds.app, name="config")
app.add_typer(data_cmds.app, name="data")
app.add_typer(features_cmds.app, name="features")
app.add_typer(pipeline_cmds.app, name="pipeline")
app.add_typer(monitor_cmds.app, name="monitor")
app.add_typer(ab_cmds.app, name="ab")
app.add_typer(tune_cmds.app, name="tune")
app.add_typer(orchestrate_cmds.airflow_app, name="airflow")
app.add_typer(orchestrate_cmds.kfp_app, name="kfp")
app.add_typer(orchestrate_cmds.mage_app, name="mage")
app.add_typer(models_cmds.app, name="models")
app.command("promote")(models_cmds.promote)
app.command("rollback")(models_cmds.rollback)
app.command("lineage")(models_cmds.lineage)
app.command("ui")(models_cmds.ui)
app.command("status")(models_cmds.status)
app.command("serve")(serve_cmds.serve)
app.command("predict")(serve_cmds.predict)
app.command("maturity")(maturity_cmds.maturity)
app.command("cost")(cost_cmds.cost)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``noria`` script and ``python -m noria``."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="noria")
