"""``noria config``: the project configuration's own tooling (its JSON Schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="The configuration file noria.yaml: its JSON Schema for editors and checks.", no_args_is_help=True
)


@app.callback()
def _group() -> None:
    """The configuration file noria.yaml: its JSON Schema for editors and checks."""


@app.command("schema")
def schema_cmd(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file (atomically) instead of printing it."),
    ] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of noria.yaml, generated from the config models.

    Editors that use yaml-language-server (VS Code's YAML extension) validate and complete
    noria.yaml with it when its first line is `# yaml-language-server: $schema=noria.schema.json`,
    as `noria init` writes it. Keys are sorted, so the output is the same on every run; rerun
    after upgrading Noria. No project is needed.

    \b
    Examples:
      noria config schema
      noria config schema --output noria.schema.json
    """
    from noria.config_schema import render, write_schema
    from noria.errors import NoriaError

    text = render()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        write_schema(output, text)
    except OSError as exc:
        raise NoriaError(
            f"cannot write the schema to {output}: {exc.strerror or exc}",
            fix="give --output a file path you can write (a missing folder is created)",
        ) from None
    typer.echo(f"wrote {output}", err=True)
