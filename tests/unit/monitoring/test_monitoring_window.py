"""Windows of the prediction log, drift of a window and the retraining policy of a binary model, on a
real SQLite MLflow registry (the flights reference project: windows are New York months).

The model is a real LightGBM booster registered with its reference profile as a run artifact
(as the training pipeline does); the prediction log is written by the service's own writer.
The log also holds a file from before it carried event times and keys (an upgraded service):
its rows cannot be windowed, and its columns must not hide the others'.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.unit.monitoring.task_projects import log_rows
from tests.unit.serving.serving_support import (
    FEATURES,
    make_migrated_db,
    make_project,
    train_booster,
    training_frame,
)

from noria.config import Project
from noria.errors import ConfigError, NotFoundError, ValidationError
from noria.monitoring import ReferenceProfile
from noria.monitoring.policy import evaluate_policy, run_policy
from noria.monitoring.store import MonitoringStore, check_window
from noria.monitoring.window import drift_window, read_window, windows_in_log
from noria.windows import Windows, WindowsConfig

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

NEW_YORK = "America/New_York"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    import mlflow

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_migrated_db(folder, tmp_path_factory.mktemp("mlflow-template"))


def _register_with_profile(project: Project, tmp: Path) -> int:
    """Register a real booster and store its reference profile and holdout AUC with the run."""
    from noria.registry import collect_lineage, start_run
    from noria.registry.mlflow_client import get_client

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


def _window_rows(version: int, month: str, n: int, shift: float, seed: int) -> list[dict[str, Any]]:
    """Served rows of flights departing in ``month`` (New York), keyed and timed by the producer."""
    rng = np.random.default_rng(seed)
    frame, _ = training_frame(seed=seed, n=n)
    frame["visib"] = frame["visib"] + shift
    scores = train_booster(seed=0).predict(frame)  # the served model's real scores
    bounds = Windows(WindowsConfig(unit="month", timezone=NEW_YORK)).bounds(month)
    assert bounds is not None
    start, end = bounds
    names = tuple(FEATURES)
    rows = []
    for i, rec in enumerate(frame.to_dict("records")):
        depart = pd.Timestamp(start) + pd.Timedelta(seconds=float(rng.uniform(0, (end - start).total_seconds())))
        local = depart.tz_convert(NEW_YORK)
        rows.append(
            {
                "request_id": f"r{seed}-{i}",
                "row": 0,
                "timestamp": pd.Timestamp.now(tz="UTC").timestamp(),
                "endpoint": "/predict",
                "status": 200,
                "model_name": "flight-delay",
                "model_version": version,
                "arm": "champion",
                "served": True,
                "score": float(scores[i]),
                "probability": float(scores[i]),
                "decision": bool(scores[i] >= 0.5),
                "threshold": 0.5,
                "ood": False,
                "ood_reasons": [],
                "features": (names, tuple(str(rec[k]) if k in ("carrier", "origin") else rec[k] for k in names)),
                "event_time": depart.timestamp(),
                "keys": {
                    "year": local.year,
                    "month": local.month,
                    "day": local.day,
                    "carrier": str(rec["carrier"]),
                    "flight": i + 1,
                    "origin": str(rec["origin"]),
                    "sched_dep_time": local.hour * 100 + local.minute,
                },
            }
        )
    # a shadow row and a failed request must never count as served predictions of the window
    rows.append(rows[0] | {"request_id": "shadow", "arm": "shadow", "served": False})
    rows.append({"request_id": "bad", "row": 0, "timestamp": start.timestamp(), "status": 422, "served": False})
    return rows


def _old_file(folder: Path) -> None:
    """A log file from before the log carried event times and keys (the flights-only columns)."""
    old = pd.DataFrame(
        {
            "request_id": ["old-1", "old-2"],
            "status": pd.array([200, 200], dtype="int32"),
            "served": [True, True],
            "model_name": "flight-delay",
            "model_version": pd.array([1, 1], dtype="int32"),
            "probability": [0.2, 0.7],
            "carrier": ["UA", "AA"],
            "flight": pd.array([1, 2], dtype="int32"),
            "scheduled_departure": pd.to_datetime(["2013-07-02T12:00Z", "2013-07-03T12:00Z"]),
        }
    )
    (folder / "date=2013-07-01").mkdir(parents=True)
    old.to_parquet(folder / "date=2013-07-01" / "predictions-20130701T000000000000-old-000000.parquet")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> tuple[Project, int]:
    root = tmp_path_factory.mktemp("monitored")
    project = make_project(root / "p", migrated)
    version = _register_with_profile(project, root)
    _old_file(project.path(project.config.serving.prediction_log.dir))
    rows = _window_rows(version, "2013-07", 1500, shift=6.0, seed=1)  # visibility jumps: drift
    rows += _window_rows(version, "2013-08", 1500, shift=0.0, seed=2)  # like the reference
    log_rows(project, rows)
    return project, version


@pytest.fixture
def project(monitored: tuple[Project, int], tmp_path: Path) -> Project:
    """The monitored project with a monitoring folder of this test's own."""
    project, _ = monitored
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    return project


def test_read_window_keeps_only_served_rows_of_the_new_york_month(project: Project) -> None:
    rows = read_window(project, "2013-07")
    assert len(rows) == 1500
    assert rows["served"].all() and (rows["status"] == 200).all() and rows["event_time"].is_monotonic_increasing
    bounds = Windows.of(project).bounds("2013-07")
    assert bounds is not None
    start, end = bounds
    assert start == pd.Timestamp("2013-07-01T04:00Z") and end == pd.Timestamp("2013-08-01T04:00Z")
    assert rows["event_time"].min() >= start and rows["event_time"].max() < end
    assert (rows["event_time"].dt.tz_convert(NEW_YORK).dt.strftime("%Y-%m") == "2013-07").all()
    assert {f"key.{c}" for c in ("year", "month", "day", "carrier", "flight", "origin")} <= set(rows.columns)
    assert "old-1" not in set(rows["request_id"])  # no event time: cannot be windowed
    assert windows_in_log(project) == {"2013-07": 1501, "2013-08": 1501}  # the shadow row is logged too
    with pytest.raises(ConfigError, match="window: 'July' is not a month window") as info:
        read_window(project, "July")
    assert info.value.fix and "YYYY-MM" in info.value.fix


def test_a_request_is_traced_from_the_log_to_the_lineage_of_its_version(monitored: tuple[Project, int]) -> None:
    """`noria lineage --request ID`: the request's logged rows, then its version's lineage."""
    from typer.testing import CliRunner

    from noria.cli import app
    from noria.monitoring.requests import find_request, request_lineage

    project, version = monitored
    rows = read_window(project, "2013-08")
    wanted = str(rows["request_id"].iloc[7])
    found = find_request(project, wanted)
    assert [r["request_id"] for r in found] == [wanted] * len(found) and found[0]["model_version"] == version
    assert len(found) == int((rows["request_id"] == wanted).sum())
    traced = request_lineage(project, wanted)
    assert traced["request"] == found and traced["model"]["version"] == version and traced["run_id"]
    done = CliRunner().invoke(app, ["--project", str(project.root), "lineage", "--request", wanted, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == json.loads(json.dumps(traced, default=str))
    with pytest.raises(NotFoundError, match="is not in the prediction log") as info:
        find_request(project, "no-such-request")
    assert info.value.fix
    text = CliRunner().invoke(app, ["--project", str(project.root), "lineage", "--request", wanted])
    assert text.exit_code == 0 and f"request {wanted} row" in text.output and f"version {version}" in text.output


def test_columns_of_later_files_are_read_though_the_first_file_lacks_them(project: Project) -> None:
    """The log's first file predates event times, keys and feature columns: they are still read."""
    rows = read_window(project, "2013-08")
    assert "feature.visib" in rows.columns and rows["feature.visib"].notna().all()
    assert rows["key.sched_dep_time"].notna().all()


def test_drift_window_alerts_on_the_shifted_feature_and_saves_the_record(
    monitored: tuple[Project, int], project: Project
) -> None:
    _, version = monitored
    [july] = drift_window(project, "2013-07")
    assert july.model_version == version
    assert "visib" in july.report.alerts
    assert july.path is not None and july.path.is_file()
    [august] = drift_window(project, "2013-08")
    assert "visib" not in august.report.drifted
    stored = MonitoringStore.of(project).records("drift")
    assert [r["window"] for r in stored] == ["2013-07", "2013-08"]
    assert stored[0]["model_version"] == version and "visib" in stored[0]["alerts"]


def test_a_window_without_traffic_or_with_too_few_rows_is_a_clear_error(project: Project) -> None:
    with pytest.raises(NotFoundError, match="no served prediction in the log falls in window 2013-10"):
        drift_window(project, "2013-10")
    with pytest.raises(NotFoundError, match="too few to judge drift") as info:
        drift_window(project, "2013-07", min_rows=5000, save=False)
    assert info.value.fix and "min_rows" in info.value.fix


def test_store_window_labels_name_files() -> None:
    assert check_window("1975-76") == "1975-76" and check_window("2010-W14") == "2010-W14"
    for bad in ("2013/14", "../x", "", "a..b", "x" * 70):
        with pytest.raises(ValidationError, match="cannot name a monitoring record"):
            check_window(bad)


def _performance(project: Project, window: str, version: int, live: float | None, labelled: int = 500) -> None:
    MonitoringStore.of(project).save(
        "performance",
        window,
        "flight-delay",
        version,
        {"arm": "champion", "labelled": labelled, "metrics": {"roc_auc": live}, "primary_metric": "roc_auc"},
    )


def test_policy_retrains_on_important_drift_and_records_why(monitored: tuple[Project, int], project: Project) -> None:
    _, version = monitored
    drift_window(project, "2013-07")
    decision = evaluate_policy(project, "2013-07")
    assert decision.action == "retrain"
    assert decision.model_version_before == version
    assert any("drift on important features in 2013-07" in r and "visib" in r for r in decision.reasons)
    assert decision.checks["metric"] == "roc_auc" and decision.checks["holdout"] == pytest.approx(0.8)
    # no snapshot yet: no window to learn from, said so
    assert decision.train_window is None and "too few windows with mature labels to retrain (0)" in decision.reasons
    calm = evaluate_policy(project, "2013-08")
    assert calm.action == "none"
    assert "no drift record for version 1 in 2013-08" in calm.reasons
    drift_window(project, "2013-08")
    calm = evaluate_policy(project, "2013-08")
    assert calm.action == "none" and "no drift alert in 2013-08" in calm.reasons
    assert f"no labelled performance record for version {version} yet" in calm.reasons
    recorded = run_policy(project, "2013-07", act=False)
    assert recorded.action == "retrain" and "not acted on (dry run)" in recorded.reasons
    last = MonitoringStore.of(project).decisions()[-1]
    assert last["window"] == "2013-07" and last["acted"] is False and last["action"] == "retrain"
    assert last["checks"]["drift_alerts"] == decision.checks["drift_alerts"] and last["seconds"] is not None


def test_policy_judges_the_live_metric_against_the_champions_holdout(
    monitored: tuple[Project, int], project: Project
) -> None:
    _, version = monitored
    _performance(project, "2013-08", version, 0.76)  # 0.04 below the holdout 0.8: more than 0.03
    decision = evaluate_policy(project, "2013-08")
    assert decision.action == "retrain" and decision.checks["metric_drop"] == pytest.approx(0.04)
    assert decision.reasons[0] == "live roc_auc 0.760 in 2013-08 is 0.040 worse than the holdout 0.800 (threshold 0.03)"
    _performance(project, "2013-08", version, 0.79)
    decision = evaluate_policy(project, "2013-08")
    assert decision.action == "none"
    assert "live roc_auc 0.790 in 2013-08 is 0.010 worse than the holdout 0.800, within 0.03" in decision.reasons
    _performance(project, "2013-08", version, None, labelled=12)
    decision = evaluate_policy(project, "2013-08")
    assert decision.action == "none"
    assert any(r.startswith("live roc_auc unknown in 2013-08: 12 labelled") for r in decision.reasons)
    _performance(project, "2013-08", version, 0.5)
    project.config.monitoring.policy.metric_drop = None
    try:
        decision = evaluate_policy(project, "2013-08")
    finally:
        project.config.monitoring.policy.metric_drop = 0.03
    assert decision.action == "none" and any("metric_drop unset" in r for r in decision.reasons)
    # another version's record is not the champion's
    _performance(project, "2013-09", version + 1, 0.4)
    assert evaluate_policy(project, "2013-09").checks["live"] is None


def test_policy_switches(project: Project) -> None:
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
        disabled = run_policy(project, "2013-07", act=False)
    finally:
        project.config.monitoring.policy.enabled = True
    assert disabled.action == "disabled" and MonitoringStore.of(project).decisions()[-1]["action"] == "disabled"
    project.config.monitoring.policy.every_windows = 3
    try:
        unscheduled = evaluate_policy(project, "2013-08")
    finally:
        project.config.monitoring.policy.every_windows = None
    assert "the schedule cannot be checked: no data snapshot with mature labels" in unscheduled.reasons
    with pytest.raises(ConfigError, match="as_of: '2013-W01' is not a month window"):
        evaluate_policy(project, as_of="2013-W01")
