"""Generate docs/cli.md from the CLI's own --help output (``--check``: fail if it is stale).

The CLI reference is never written by hand: it is what ``noria ... --help`` prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"


def _commands() -> list[list[str]]:
    import typer.main

    from noria.cli import app

    root = typer.main.get_command(app)
    found: list[list[str]] = [[]]

    # Duck-typed: typer may ship its own copy of click, so isinstance(cmd, click.Group) against
    # the click package is False for typer's groups (that once left this reference with one entry).
    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    found.append([*path, name])
                    walk(sub, [*path, name])

    walk(root, [])
    return found


def render() -> str:
    from typer.testing import CliRunner

    from noria.cli import app

    os.environ["COLUMNS"] = "100"
    os.environ["TERM"] = "dumb"
    runner = CliRunner()
    parts = [
        "# CLI reference\n",
        "Generated from `noria ... --help` by `make docs` (`scripts/cli_docs.py`); do not edit by hand.\n",
    ]
    for path in _commands():
        out = runner.invoke(app, [*path, "--help"], prog_name="noria", env={"COLUMNS": "100"})
        title = " ".join(["noria", *path])
        parts.append(f"## `{title}`\n\n```text\n{out.output.rstrip()}\n```\n")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print("docs/cli.md is out of date: run `make docs` and commit it", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
