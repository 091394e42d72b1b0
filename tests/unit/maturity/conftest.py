"""The mature and bare projects, built once per test session (the mature one takes ~30 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.maturity.maturity_support import bare_project, mature_project
from tests.unit.monitoring.report_support import migrated_db_fixture

migrated_db = pytest.fixture(scope="session")(migrated_db_fixture)


@pytest.fixture(scope="session")
def mature(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Path:
    return mature_project(tmp_path_factory.mktemp("maturity") / "shop", migrated_db)


@pytest.fixture(scope="session")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bare_project(tmp_path_factory.mktemp("maturity") / "bare")
