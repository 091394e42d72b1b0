"""Helpers shared by the registry tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from noria.config import Project, load_project
from noria.registry import Evaluation, InvarianceResult, ModelVersionInfo, collect_lineage, start_run

CONFIG = """\
project: regtest
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
"""


def make_project(root: Path, migrated_db: Path | None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "noria.yaml").write_text(CONFIG, encoding="utf-8")
    if migrated_db is not None:
        (root / ".noria").mkdir(exist_ok=True)
        shutil.copy(migrated_db, root / ".noria" / "mlflow.db")
    return load_project(root, environ={})


def evaluation(auc: float, *, slices: dict[str, float] | None = None, predictions: Any = None) -> Evaluation:
    """A holdout evaluation that passes every behavioural check unless told otherwise."""
    preds = np.linspace(0.05, 0.95, 50) if predictions is None else predictions
    return Evaluation.from_arrays(
        {"roc_auc": auc, "log_loss": 0.5},
        preds,
        slices=slices if slices is not None else {"origin=EWR": auc, "origin=JFK": auc - 0.01},
        invariance=InvarianceResult(("flight",), 0.0, 50),
        holdout_id="snap1:2013-07..2013-12",
    )


def register(project: Project, booster: lgb.Booster, name: str = "flight-delay") -> ModelVersionInfo:
    """Train-run stand-in: a run with lineage, one metric, and the booster registered as a version."""
    lineage = collect_lineage(
        project, data_snapshot="snap1", feature_service="flights_v1", feature_definition_hash="abc123"
    )
    with start_run(project, "train", lineage) as run:
        run.log_metrics({"roc_auc": 0.7})
        return run.log_model(booster, name)


def git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
    }
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True, env=env)
    return done.stdout.strip()
