"""Command-line options that several commands take with the same meaning (declared once here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The delayed labels `noria monitor feedback` and `noria ab report` join to the logged predictions.
LabelsOption = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="Parquet or CSV of the request ids and 'label' (or the target column). "
        "Default: labels from the newest data snapshot, by the project's target rule.",
    ),
]

# The serving windows those commands judge.
WindowsOption = Annotated[
    list[str] | None, typer.Option("--window", help="Only these windows; repeatable (default: all served).")
]

__all__ = ["LabelsOption", "WindowsOption"]
