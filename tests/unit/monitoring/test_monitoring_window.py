"""Drift of a prediction-log window and the retraining policy, on a real SQLite MLflow registry.

The model is a real LightGBM booster registered with its reference profile as a run artifact
(as the training pipeline does); the prediction log is written by the service's own writer.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.unit.serving.serving_support import (
    FEATURES,
    make_migrated_db,
    make_project,
    train_booster,
    training_frame,
)

from noria.config import Project
from noria.errors import NotFoundError, ValidationError
from noria.monitoring import ReferenceProfile
from noria.monitoring.policy import evaluate_policy, run_policy
from noria.monitoring.store import MonitoringStore, window_bounds
from noria.monitoring.window import drift_window, read_window, windows_in_log
from noria.serving.predlog import PredictionLog

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    cache = getattr(request.config, "cache", None)
    import mlflow

    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_migrated_db(folder, tmp_path_factory.mktemp("mlflow-template"))


def _register_with_profile(project: Project, tmp: Path) -> int:
    """Register a real booster and store its reference profile and holdout AUC with the run."""
    from noria.registry import collect_lineage, start_run
    from noria.registry._client import get_client

    booster = train_booster(seed=0)
    frame, _ = training_frame(seed=0)
    scores = booster.predict(frame)
    importance = dict(zip(booster.feature_name(), booster.feature_importance("gain"), strict=True))
    profile = ReferenceProfile.build(frame, scores=scores, importance=importance, categorical=["carrier", "origin"])
    path = tmp / "reference_profile.json"
    profile.save(path)
    lineage = collect_lineage(project, data_snapshot="snap1", feature_service="s", feature_definition_hash="h")
    with start_run(project, "train", lineage) as run:
        run.log_params({"train_from": "2013-01", "train_to": "2013-05", "test_from": "2013-06", "test_to": "2013-06"})
        run.log_metrics({"test_roc_auc": 0.8})
        run.log_artifact(path)
        info = run.log_model(booster, "flight-delay")
    get_client(project).set_registered_model_alias("flight-delay", "champion", str(info.version))
    return int(info.version)


def _log_window(folder: Path, version: int, month: str, n: int, shift: float, seed: int) -> None:
    """Served rows for flights departing in ``month``, written by the service's log writer."""
    rng = np.random.default_rng(seed)
    frame, _ = training_frame(seed=seed, n=n)
    frame["visib"] = frame["visib"] + shift
    scores = train_booster(seed=0).predict(frame)  # the served model's real scores
    start, _end = window_bounds(month)
    log = PredictionLog(folder, roll_rows=10_000, roll_seconds=3600)
    names = tuple(FEATURES)
    rows = []
    for i, rec in enumerate(frame.to_dict("records")):
        depart = start.timestamp() + float(rng.uniform(0, 27 * 86400))
        rows.append(
            {
                "request_id": f"r{seed}-{i}",
                "row": 0,
                "timestamp": datetime.now(UTC).timestamp(),
                "endpoint": "/predict",
                "status": 200,
                "model_name": "flight-delay",
                "model_version": version,
                "arm": "champion",
                "served": True,
                "probability": float(scores[i]),
                "decision": False,
                "threshold": 0.5,
                "ood": False,
                "ood_reasons": [],
                "features": (names, tuple(str(rec[k]) if k in ("carrier", "origin") else rec[k] for k in names)),
                "carrier": str(rec["carrier"]),
                "flight": i + 1,
                "origin": str(rec["origin"]),
                "scheduled_departure": depart,
            }
        )
    # a shadow row and a failed request must never count as served predictions of the window
    rows.append(rows[0] | {"request_id": "shadow", "arm": "shadow", "served": False})
    rows.append({"request_id": "bad", "row": 0, "timestamp": start.timestamp(), "status": 422, "served": False})
    log.write(rows)
    log.close()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> tuple[Project, int]:
    root = tmp_path_factory.mktemp("monitored")
    project = make_project(root / "p", migrated)
    version = _register_with_profile(project, root)
    folder = project.path(project.config.serving.prediction_log.dir)
    _log_window(folder, version, "2013-07", 1500, shift=6.0, seed=1)  # visibility jumps: drift
    _log_window(folder, version, "2013-08", 1500, shift=0.0, seed=2)  # like the reference
    return project, version


def test_read_window_keeps_only_served_rows_of_the_month(monitored: tuple[Project, int]) -> None:
    project, _ = monitored
    rows = read_window(project, "2013-07")
    assert len(rows) == 1500
    assert rows["served"].all() and (rows["status"] == 200).all()
    start, end = window_bounds("2013-07")
    assert rows["scheduled_departure"].min() >= pd.Timestamp(start)
    assert rows["scheduled_departure"].max() < pd.Timestamp(end)
    assert windows_in_log(project) == {"2013-07": 1501, "2013-08": 1501}  # the shadow row is logged too


def test_drift_window_alerts_on_the_shifted_feature_and_saves_the_record(monitored: tuple[Project, int]) -> None:
    project, version = monitored
    [july] = drift_window(project, "2013-07")
    assert july.model_version == version
    assert "visib" in july.report.alerts
    assert july.path is not None and july.path.is_file()
    [august] = drift_window(project, "2013-08")
    assert "visib" not in august.report.drifted
    stored = MonitoringStore.of(project).records("drift")
    assert [r["window"] for r in stored] == ["2013-07", "2013-08"]
    assert stored[0]["model_version"] == version and "visib" in stored[0]["alerts"]


def test_windows_are_checked() -> None:
    with pytest.raises(ValidationError, match="YYYY-MM"):
        window_bounds("July")
    assert window_bounds("2013-12") == (datetime(2013, 12, 1, tzinfo=UTC), datetime(2014, 1, 1, tzinfo=UTC))
    assert window_bounds("2013-07-31")[1] == datetime(2013, 8, 1, tzinfo=UTC)


def test_a_window_without_traffic_is_a_clear_error(monitored: tuple[Project, int]) -> None:
    project, _ = monitored
    with pytest.raises(NotFoundError, match="2013-10"):
        drift_window(project, "2013-10")


def test_policy_retrains_on_important_drift_and_records_why(monitored: tuple[Project, int]) -> None:
    project, version = monitored
    drift_window(project, "2013-07")
    decision = evaluate_policy(project, "2013-07")
    assert decision.action == "retrain"
    assert decision.model_version_before == version
    assert any("visib" in r for r in decision.reasons)
    assert decision.checks["metric"] == "roc_auc" and decision.checks["holdout"] == pytest.approx(0.8)
    calm = evaluate_policy(project, "2013-08")
    assert calm.action == "none"
    assert any("no drift alert in 2013-08" in r for r in calm.reasons)
    recorded = run_policy(project, "2013-07", act=False)
    assert recorded.action == "retrain" and "not acted on (dry run)" in recorded.reasons
    last = MonitoringStore.of(project).decisions()[-1]
    assert last["window"] == "2013-07" and last["acted"] is False and last["action"] == "retrain"


def test_policy_switches(monitored: tuple[Project, int]) -> None:
    project, _ = monitored
    drift_window(project, "2013-07")
    project.config.monitoring.policy.on_drift = False
    try:
        decision = evaluate_policy(project, "2013-07")
    finally:
        project.config.monitoring.policy.on_drift = True
    assert decision.action == "none"
    assert any("policy.on_drift: false" in r for r in decision.reasons)
    project.config.monitoring.policy.enabled = False
    try:
        assert evaluate_policy(project, "2013-07").action == "disabled"
    finally:
        project.config.monitoring.policy.enabled = True


def test_a_version_with_too_few_rows_is_not_judged(monitored: tuple[Project, int]) -> None:
    project, _ = monitored
    with pytest.raises(NotFoundError, match="too few to judge drift"):
        drift_window(project, "2013-07", min_rows=5000, save=False)
