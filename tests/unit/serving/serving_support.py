"""Helpers shared by the serving tests (unit and integration): a small real LightGBM model with
numeric and categorical features, a project on a real SQLite MLflow registry, registration.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

from tests.snapshot_support import FrameSnapshot, frame_snapshot, january

from noria.config import Project, load_project

FEATURES = ("visib", "temp", "distance", "carrier", "origin")
DESCRIPTIONS = {"visib": "Visibility (miles).", "temp": "Temperature (F).", "distance": "Distance (miles)."}
KEY = "test-key-0123456789abcdef"
FLIGHT: dict[str, Any] = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "scheduled_departure": "2013-07-01T05:15:00-04:00",
    "distance": 1400,
}
INLINE = {"visib": 0.5, "temp": 71.0, "distance": 1400.0, "carrier": "UA", "origin": "EWR"}
CONFIG = """\
project: servetest
data:
  source: {kind: directory, path: raw}
  tables:
    flights:
      file: flights.csv
      primary_key: [id]
      columns:
        id: {type: int}
model:
  name: flight-delay
  target: {column: dep_delay, threshold: 15}
"""


def training_frame(seed: int = 0, n: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "visib": rng.uniform(0, 10, n),
            "temp": rng.normal(60, 15, n),
            "distance": rng.uniform(100, 2500, n),
            "carrier": pd.Categorical(rng.choice(["UA", "AA", "DL"], n)),
            "origin": pd.Categorical(rng.choice(["EWR", "JFK", "LGA"], n)),
        }
    )
    late = (frame["visib"] < 3) | (frame["carrier"] == "DL") & (rng.random(n) < 0.4) | (rng.random(n) < 0.12)
    return frame, late.to_numpy().astype(int)


def train_booster(seed: int = 0, rounds: int = 40) -> lgb.Booster:
    """A small real model: 5 features (2 categorical), trained on synthetic flight-like rows."""
    frame, label = training_frame(seed)
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "num_leaves": 15, "seed": seed}
    booster = lgb.train(params, lgb.Dataset(frame, label), num_boost_round=rounds)
    return lgb.Booster(model_str=booster.model_to_string())


def make_migrated_db(cache_dir: Path | None, tmp: Path) -> Path:
    """An empty MLflow SQLite database with every migration applied (cached: migrations take ~10 s)."""
    import mlflow
    from mlflow import MlflowClient

    if cache_dir is not None and (cache_dir / "mlflow.db").is_file():
        return cache_dir / "mlflow.db"
    db = tmp / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments()
    client.search_registered_models()
    if cache_dir is None:
        return db
    partial = cache_dir / f"mlflow.db.{os.getpid()}.tmp"
    shutil.copy(db, partial)
    os.replace(partial, cache_dir / "mlflow.db")
    _ = mlflow.__version__
    return cache_dir / "mlflow.db"


def make_project(root: Path, migrated_db: Path, extra: str = "") -> Project:
    """The flights reference project (its request model, features and flights API) over a registry of its own.

    ``extra`` (YAML) is merged over its noria.yaml, section by section.
    """
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    for name in ("features.yaml", "flights_features.py", "flights_api.py"):
        shutil.copy(EXAMPLE / name, root / name)
    config = yaml.safe_load((EXAMPLE / "noria.yaml").read_text(encoding="utf-8"))
    config["data"]["source"] = {"kind": "directory", "path": "raw"}
    for section, values in (yaml.safe_load(extra) or {}).items():
        base = config.get(section)
        config[section] = {**base, **values} if isinstance(base, dict) and isinstance(values, dict) else values
    (root / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (root / ".noria").mkdir(exist_ok=True)
    shutil.copy(migrated_db, root / ".noria" / "mlflow.db")
    return load_project(root, environ={})


def register(project: Project, booster: lgb.Booster, alias: str | None = "champion") -> int:
    """Register ``booster`` as a new version (with lineage tags) and point ``alias`` at it."""
    from noria.registry import collect_lineage, start_run
    from noria.registry.mlflow_client import get_client

    lineage = collect_lineage(
        project, data_snapshot="snap1", feature_service="flight_delay", feature_definition_hash="defhash123"
    )
    with start_run(project, "train", lineage) as run:
        info = run.log_model(booster, "flight-delay")
    if alias:
        get_client(project).set_registered_model_alias("flight-delay", alias, str(info.version))
    return info.version


def set_alias(project: Project, alias: str, version: int) -> None:
    from noria.registry.mlflow_client import get_client

    get_client(project).set_registered_model_alias("flight-delay", alias, str(version))


# --- the reference flights project on a slice of the real data (features, online store) ----------

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "flights"


def flights_project(root: Path, migrated_db: Path, last_day: int = 8) -> tuple[Project, FrameSnapshot]:
    root.mkdir(parents=True)
    for name in ("noria.yaml", "features.yaml", "flights_features.py", "flights_api.py"):
        shutil.copy(EXAMPLE / name, root / name)
    (root / ".noria").mkdir()
    shutil.copy(migrated_db, root / ".noria" / "mlflow.db")
    project = load_project(root, environ={})
    return project, frame_snapshot(project, january(last_day))


def model_matrix(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    out = {}
    for name in features:
        values = frame[name]
        if values.dtype == object:
            out[name] = values.astype("category")
        else:
            out[name] = pd.to_numeric(values).astype("float64")
    return pd.DataFrame(out)
