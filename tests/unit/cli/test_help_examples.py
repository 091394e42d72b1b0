"""Every command's ``--help`` gives examples, each shown on its own line, and each example is a
command the CLI parses (its options and arguments exist): the help is documentation, and a
renamed option must not leave a stale example behind."""

from __future__ import annotations

import shlex
from typing import Any

import click
import pytest
import typer

from noria.cli import app


def _commands() -> list[tuple[str, click.Command]]:
    root: Any = typer.main.get_command(app)
    out: list[tuple[str, click.Command]] = []

    def walk(prefix: str, group: Any) -> None:
        for name, sub in group.commands.items():
            if sub.hidden:
                continue
            if hasattr(sub, "commands"):
                walk(f"{prefix} {name}", sub)
            else:
                out.append((f"{prefix} {name}".strip(), sub))

    walk("", root)
    return out


def _examples(help_text: str) -> list[str]:
    lines = help_text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:")), None)
    if start is None:  # a one-line "Example: noria ..." form
        return [line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("Example:")]
    block = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        block.append(line.strip())
    return block


def _parse(argv: list[str]) -> str:
    """Parse ``noria ARGV`` with the CLI's own parser (nothing runs); the full command name."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("noria", list(argv), resilient_parsing=False)
    names = []
    while hasattr(command, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, args = command.resolve_command(ctx, rest)
        names.append(name)
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return " ".join(names)


COMMANDS = _commands()


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_example_of_the_help_parses(name: str, command: click.Command) -> None:
    examples = _examples(command.help or "")
    assert examples, f"`noria {name} --help` shows no example"
    parsed: list[str] = []  # every noria command of the examples parses; one of them is this one
    for example in examples:
        for part in example.split("  #", 1)[0].split("&&"):
            words = shlex.split(part.split(" > ", 1)[0])  # without a shell redirection
            while words and "=" in words[0] and not words[0].startswith("-"):
                words.pop(0)  # VAR=value prefixes
            if words and words[0] == "noria":
                parsed.append(_parse(words[1:]))
    assert name in parsed, f"`noria {name} --help`: no example runs it ({examples})"
