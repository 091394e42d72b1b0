"""Fixtures for the serving tests: real boosters and a real SQLite MLflow registry.

``served_project`` is built once per session (version 1 @champion, version 2 @challenger) and
used read-only; tests that move aliases take a fresh ``project`` of their own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.unit.serving.serving_support import (
    DESCRIPTIONS,
    KEY,
    make_migrated_db,
    make_project,
    register,
    train_booster,
)

from noria.config import Project
from noria.serving.app import create_app
from noria.serving.config import ServingConfig


@pytest.fixture(autouse=True)
def _clean_noria_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("NORIA_"):
            monkeypatch.delenv(var)


@pytest.fixture(scope="session")
def migrated_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_migrated_db(folder, tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture(scope="session")
def booster() -> lgb.Booster:
    return train_booster(seed=0)


@pytest.fixture(scope="session")
def booster_v2() -> lgb.Booster:
    return train_booster(seed=1, rounds=25)


@pytest.fixture(scope="session")
def served_project(
    tmp_path_factory: pytest.TempPathFactory, migrated_db: Path, booster: lgb.Booster, booster_v2: lgb.Booster
) -> Project:
    """Read-only: flight-delay version 1 @champion, version 2 @challenger."""
    project = make_project(tmp_path_factory.mktemp("served") / "proj", migrated_db)
    register(project, booster, "champion")
    register(project, booster_v2, "challenger")
    return project


@pytest.fixture
def project(tmp_path: Path, migrated_db: Path) -> Project:
    """A fresh project with an empty registry (for tests that register and move aliases)."""
    return make_project(tmp_path / "proj", migrated_db)


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def make_app(served_project: Project, tmp_path: Path) -> AppFactory:
    """create_app over the session registry; keyword arguments override ServingConfig fields."""

    def make(project: Project | None = None, environ: dict[str, str] | None = None, **overrides: Any) -> FastAPI:
        settings: dict[str, Any] = {"prediction_log": {"dir": str(tmp_path / "predictions")}, "poll_seconds": 0}
        settings.update(overrides)
        return create_app(
            project or served_project,
            config=ServingConfig.model_validate(settings),
            descriptions=DESCRIPTIONS,
            environ={"NORIA_API_KEYS": KEY} if environ is None else environ,
        )

    return make


@pytest.fixture(scope="module")
def client(served_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The default service (keys required) with the champion loaded; shared by a module's tests."""
    config = ServingConfig.model_validate(
        {"prediction_log": {"dir": str(tmp_path_factory.mktemp("predictions"))}, "poll_seconds": 0}
    )
    app = create_app(served_project, config=config, descriptions=DESCRIPTIONS, environ={"NORIA_API_KEYS": KEY})
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        yield c
