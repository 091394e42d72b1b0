"""The demo: the whole loop on embedded defaults, in a fresh project folder.

``make demo`` calls :func:`run_demo`. It creates the project from the reference flights
project on first use (``noria init``) and reuses it afterwards, so a second run shows
what is cached.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from noria.config import CONFIG_FILE, Project, load_project


def run_demo(folder: Path, console: Console | None = None) -> Project:
    console = console or Console()
    started = time.perf_counter()
    console.print(Rule("[bold]Noria demo: flight delays, New York 2013"))
    if (folder / CONFIG_FILE).is_file():
        console.print(f"reusing the demo project in {folder}")
    else:
        from noria.scaffold import init_project

        init_project(folder)
        console.print(f"created the demo project in {folder} (noria init: git + DVC)")
    project = load_project(folder)

    _chapter(console, "1. ingest January-June 2013: validate, quarantine, snapshot with DVC")
    _ingest(console, project, "2013-01", "2013-06")

    console.print(Rule(f"done in {time.perf_counter() - started:.0f} s"))
    return project


def _chapter(console: Console, title: str) -> None:
    console.print()
    console.print(Rule(title, align="left", style="cyan"))


def _ingest(console: Console, project: Project, start: str, end: str) -> None:
    from noria.cli._output import print_table, progress
    from noria.data.ingest import ingest, summary_rows

    with progress() as bar:
        result = ingest(project, start, end, progress=bar)
    record = result.record
    print_table(summary_rows(record), title=f"ingest {start}..{end}")
    totals = record.totals()
    state = "identical to an existing snapshot" if result.unchanged else "new snapshot"
    console.print(
        f"rows read {totals['read']:,} = accepted {totals['accepted']:,} + quarantined {totals['quarantined']:,}"
        f"  ->  snapshot [bold]{record.short_id}[/] ({state})"
    )
