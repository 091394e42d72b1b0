"""Fixtures for the registry tests: a project on a real SQLite MLflow store and a tiny booster.

Creating an MLflow SQLite database runs every schema migration (10+ s here), so it is done
once per session and the empty, migrated file is copied into each test's project.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

from registry_helpers import make_project, register

from noria.config import Project
from noria.registry import ModelVersionInfo


@pytest.fixture(scope="session")
def migrated_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database with every migration applied (kept in pytest's cache per MLflow version)."""
    import mlflow
    from mlflow import MlflowClient

    cache = getattr(request.config, "cache", None)
    folder: Path | None = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    if folder is not None and (folder / "mlflow.db").is_file():
        return folder / "mlflow.db"
    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    if folder is None:
        return db
    partial = folder / f"mlflow.db.{os.getpid()}.tmp"
    shutil.copy(db, partial)
    os.replace(partial, folder / "mlflow.db")
    return folder / "mlflow.db"


@pytest.fixture
def project(tmp_path: Path, migrated_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    for var in list(os.environ):
        if var.startswith("NORIA_"):
            monkeypatch.delenv(var)
    yield make_project(tmp_path / "proj", migrated_db)


@pytest.fixture(scope="session")
def booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    params = {"objective": "binary", "verbose": -1, "num_leaves": 7, "seed": 1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=8)


@pytest.fixture
def registered(project: Project, booster: lgb.Booster) -> Callable[..., ModelVersionInfo]:
    def make(name: str = "flight-delay") -> ModelVersionInfo:
        return register(project, booster, name)

    return make
