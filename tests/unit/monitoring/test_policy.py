"""The retraining policy of a multi-class and a regression model: the task's primary metric against
the champion's ``test_<metric>``, and training windows in the project's unit (ISO weeks, windows
from a project function) up to the newest window with mature labels, on real snapshots and a real
SQLite MLflow registry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from tests.unit.monitoring.task_projects import base_row, games_project, log_rows, readings_project, readings_table
from tests.unit.serving.serving_support import make_migrated_db

from noria.config import Project
from noria.data.ingest import ingest
from noria.monitoring.feedback import record_feedback
from noria.monitoring.policy import evaluate_policy, run_policy
from noria.monitoring.store import MonitoringStore

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    import mlflow

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_migrated_db(folder, tmp_path_factory.mktemp("mlflow-template"))


def _champion(project: Project, params: dict[str, Any], **lgb_params: Any) -> int:
    """Train a tiny real booster of the project's task, log it with ``params`` and its holdout
    metrics, register it and make it the champion."""
    from noria.registry import collect_lineage, start_run
    from noria.registry.mlflow_client import get_client

    metrics = {k: v for k, v in params.items() if k.startswith("test_") and isinstance(v, float)}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = rng.integers(0, 3, 300) if lgb_params["objective"] == "multiclass" else x[:, 0] * 10 + rng.normal(size=300)
    booster = lgb.train(lgb_params | {"verbosity": -1, "num_threads": 1}, lgb.Dataset(x, y), num_boost_round=3)
    lineage = collect_lineage(project, data_snapshot="s", feature_service="main", feature_definition_hash="h")
    with start_run(project, "train", lineage) as run:
        run.log_params({k: v for k, v in params.items() if k not in metrics})
        run.log_metrics(metrics)
        info = run.log_model(booster, project.config.model.name)
    get_client(project).set_registered_model_alias(project.config.model.name, "champion", str(info.version))
    return int(info.version)


def _performance(project: Project, window: str, version: int, metric: str, live: float | None) -> None:
    MonitoringStore.of(project).save(
        "performance",
        window,
        project.config.model.name,
        version,
        {"arm": "champion", "labelled": 80, "metrics": {metric: live}, "primary_metric": metric},
    )


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> tuple[Project, int]:
    """Games of ISO weeks 10-13 (Berlin) ingested; the champion learned week 10 and was judged on 11."""
    project = games_project(tmp_path_factory.mktemp("games") / "p", function_target=True, registry=migrated, git=True)
    ingest(project, "2024-03", "2024-04")
    weeks = {"train_from": "2024-W10", "train_to": "2024-W10", "test_from": "2024-W11", "test_to": "2024-W11"}
    version = _champion(project, weeks | {"test_log_loss": 0.9}, objective="multiclass", num_class=3)
    return project, version


@pytest.fixture
def games_here(games: tuple[Project, int], tmp_path: Path) -> tuple[Project, int]:
    project, version = games
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    return project, version


def test_multiclass_policy_judges_log_loss_and_learns_on_the_newest_weeks(games_here: tuple[Project, int]) -> None:
    project, version = games_here
    _performance(project, "2024-W13", version, "log_loss", 1.0)  # 0.1 worse than the holdout 0.9
    decision = evaluate_policy(project)
    assert decision.window == "2024-W13" and decision.action == "retrain"
    assert (
        decision.reasons[0] == "live log_loss 1.000 in 2024-W13 is 0.100 worse than the holdout 0.900 (threshold 0.05)"
    )
    checks = decision.checks
    assert (checks["metric"], checks["holdout"], checks["live"]) == ("log_loss", 0.9, 1.0)
    assert checks["metric_drop"] == pytest.approx(0.1)
    assert (checks["champion_trained_to"], checks["newest_mature_window"]) == ("2024-W11", "2024-W13")
    # train_windows 2, test_windows 1: learn on weeks 11-12, judge on 13
    assert (decision.train_window, decision.test_window) == ("2024-W11..2024-W12", "2024-W13..2024-W13")
    # a replay as of week 12: week 13 is not there yet
    replay = evaluate_policy(project, "2024-W13", as_of="2024-W12")
    assert replay.checks["newest_mature_window"] == "2024-W12"
    assert (replay.train_window, replay.test_window) == ("2024-W10..2024-W11", "2024-W12..2024-W12")
    # as of week 11 there is nothing the champion has not learned from
    stale = evaluate_policy(project, "2024-W13", as_of="2024-W11")
    assert stale.action == "none" and stale.reasons[-1] == (
        "but the champion already learned from data up to 2024-W11: nothing newer with mature labels"
    )
    _performance(project, "2024-W13", version, "log_loss", 0.86)  # better than the holdout
    calm = evaluate_policy(project)
    assert calm.action == "none"
    assert "live log_loss 0.860 in 2024-W13 is 0.040 better than the holdout 0.900, within 0.05" in calm.reasons
    recorded = run_policy(project, act=False)
    assert MonitoringStore.of(project).decisions()[-1] | {"decided_at": None} == recorded.to_dict() | {
        "acted": False,
        "decided_at": None,
    }


def test_a_kubernetes_job_retrain_starts_the_training_job_and_records_it(
    games_here: tuple[Project, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """retrain_via: kubernetes-job creates a Job from the training CronJob with the policy's weeks and
    trials and records it; a refused Job is recorded with its error. Mocked: the Kubernetes API server
    cannot run here (tests/unit/monitoring/kube_api_support.py serves its two endpoints over HTTPS)."""
    from tests.unit.monitoring.kube_api_support import fake_api

    from noria.errors import ExternalToolError
    from noria.monitoring import kube_job

    project, version = games_here
    _performance(project, "2024-W13", version, "log_loss", 1.0)  # 0.1 worse than the holdout 0.9
    container = {"name": "train", "image": "trainer:1", "env": [{"name": "NORIA_TRAINING__TRIALS", "value": "50"}]}
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "games-training", "namespace": "ml", "uid": "c0ffee"},
        "spec": {
            "schedule": "0 3 * * 1",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}}},
        },
    }
    policy = project.config.monitoring.policy
    before = policy.model_dump()
    with fake_api(tmp_path / "api", namespace="ml") as api:
        api.cronjobs["games-training"] = cronjob
        monkeypatch.setattr(kube_job, "SERVICE_ACCOUNT", api.account)
        for key, value in api.environ.items():
            monkeypatch.setenv(key, value)
        policy.retrain_via, policy.training_cronjob, policy.trials = "kubernetes-job", "games-training", 3
        try:
            decision = run_policy(project)
            api.forbid.add("create jobs")
            with pytest.raises(ExternalToolError, match="the service account may not create jobs in namespace ml"):
                run_policy(project)
        finally:
            for key, value in before.items():
                setattr(policy, key, value)
    assert decision.action == "retrain" and decision.retrain_via == "kubernetes-job"
    assert (decision.train_window, decision.test_window) == ("2024-W11..2024-W12", "2024-W13..2024-W13")
    assert decision.candidate_version is None and decision.pipeline_run_id is None  # nothing trained here
    (job,) = api.jobs
    assert decision.started == {
        "kind": "kubernetes-job",
        "job": job["metadata"]["name"],
        "namespace": "ml",
        "cronjob": "games-training",
        "uid": job["metadata"]["uid"],
        "at": job["metadata"]["creationTimestamp"],
    }
    assert job["metadata"]["name"].startswith("games-training-retrain-")
    assert job["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "NORIA_TRAINING__TRAIN__FROM", "value": "2024-W11"},
        {"name": "NORIA_TRAINING__TRAIN__TO", "value": "2024-W12"},
        {"name": "NORIA_TRAINING__TEST__FROM", "value": "2024-W13"},
        {"name": "NORIA_TRAINING__TEST__TO", "value": "2024-W13"},
        {"name": "NORIA_TRAINING__TRIALS", "value": "3"},
    ]
    started, refused = MonitoringStore.of(project).decisions()[-2:]
    assert (started["acted"], started["started"], started["error"]) == (True, decision.started, None)
    assert (refused["acted"], refused["started"], refused["action"]) == (False, None, "retrain")
    assert "may not create jobs in namespace ml" in refused["error"] and "monitoring-rbac.yaml" in refused["error"]


def test_the_schedule_counts_weeks_behind_the_newest_mature_one(games_here: tuple[Project, int]) -> None:
    project, _ = games_here
    project.config.monitoring.policy.every_windows = 1
    try:
        decision = evaluate_policy(project)
    finally:
        project.config.monitoring.policy.every_windows = None
    assert decision.window is None and decision.action == "retrain"
    assert decision.checks["windows_behind"] == 2
    assert decision.reasons == ["the champion learned from data up to 2024-W11, 2 windows behind 2024-W13"]
    assert decision.test_window == "2024-W13..2024-W13"
    project.config.monitoring.policy.every_windows = 2
    try:
        calm = evaluate_policy(project)
        early = evaluate_policy(project, as_of="2024-W12")
    finally:
        project.config.monitoring.policy.every_windows = None
    assert calm.action == "none" and calm.reasons[-1] == (
        "the champion learned from data up to 2024-W11, 2 window(s) behind 2024-W13 (retrains after more than 2)"
    )
    assert early.checks["windows_behind"] == 1 and early.action == "none"


@pytest.fixture(scope="module")
def readings(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> tuple[Project, int, pd.DataFrame]:
    """Readings of March and early April ingested (windows: halves of months); the champion v1 served
    every one of them (keys and event times given by the producer)."""
    table = readings_table(n=300, seed=1)
    project = readings_project(tmp_path_factory.mktemp("readings") / "p", table, registry=migrated, git=True)
    ingest(project, "2024-03", "2024-04")
    version = _champion(
        project,
        {"train_from": "2024-03-a", "train_to": "2024-03-a", "test_from": "2024-03-a", "test_to": "2024-03-a"},
        objective="regression",
    )
    rng = np.random.default_rng(5)
    predictions = table["level"] + rng.normal(0, 15, len(table))
    rows = [
        base_row(i, version)
        | {
            "model_name": "level-in-30",
            "score": float(predictions[i]),
            "event_time": pd.Timestamp(r.at).timestamp(),
            "keys": {"reading_id": int(r.reading_id)},
            "features": {"level": float(r.level)},
        }
        for i, r in enumerate(table.itertuples())
    ]
    log_rows(project, rows)
    return project, version, table.assign(prediction=predictions)


def test_regression_policy_reads_the_rmse_feedback_stored(
    readings: tuple[Project, int, pd.DataFrame], tmp_path: Path
) -> None:
    project, version, _ = readings
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    summary = record_feedback(project)
    newest = summary.results[-1]
    assert (newest.window, newest.model_version, newest.holdout) == ("2024-04-a", version, None)  # no test_rmse
    decision = evaluate_policy(project)
    assert decision.window == "2024-04-a" and decision.checks["live"] == pytest.approx(newest.live)
    assert "the champion's training run logged no test_rmse: live rmse" in " ".join(decision.reasons)
    assert decision.action == "none"
    # a champion whose holdout RMSE was 3 below the live one: retrain on the newest halves of months
    worse = _champion(project, {"test_to": "2024-03-a", "test_rmse": float(newest.live) - 3.0}, objective="regression")
    summary = record_feedback(project)  # the log's rows are v1's: v2 has no record yet
    assert evaluate_policy(project).checks["live"] is None
    _performance(project, "2024-04-a", worse, "rmse", float(newest.live))
    decision = evaluate_policy(project)
    assert decision.action == "retrain" and decision.checks["metric_drop"] == pytest.approx(3.0)
    assert decision.checks["newest_mature_window"] == "2024-04-a"
    assert (decision.train_window, decision.test_window) == ("2024-03-a..2024-03-b", "2024-04-a..2024-04-a")
