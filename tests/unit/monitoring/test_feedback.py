"""Delayed-label feedback: labels files, their quarantine, performance per window, the review queue.

The prediction log is written by the service's own writer (PredictionLog); expected figures
are computed here with scikit-learn (and training's own calibration) from the rows logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from tests.unit.serving.serving_support import CONFIG

from noria.config import Project, load_project
from noria.errors import NotFoundError, SourceError, ValidationError
from noria.monitoring.feedback import (
    compute_feedback,
    holdout_auc,
    load_labels,
    performance_trend,
    record_feedback,
)
from noria.monitoring.review import REVIEW_COLUMNS, build_review_queue
from noria.monitoring.store import MonitoringStore
from noria.serving.predlog import PredictionLog
from noria.training.metrics import calibration

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

THRESHOLD = 0.5
BAND = 0.05
NEW_YORK = "America/New_York"
QUARANTINE_COLUMNS = ["carrier", "flight", "origin", "scheduled_departure", "late", "dep_delay", "reason"]
AUGUST_V2 = [("2013-08", 2, "challenger"), ("2013-08", 2, "champion")]


@dataclass
class Served:
    """What was logged: one row per served (or shadow) prediction."""

    frame: pd.DataFrame  # carrier, flight, origin, departs (UTC), p, version, arm, served, ood


def _project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    extra = "monitoring:\n  feedback:\n    min_labels: 50\n    review_band: 0.05\n"
    (root / "noria.yaml").write_text(CONFIG + extra, encoding="utf-8")
    return load_project(root, environ={})


def _flights(month: str, n: int, seed: int, first: int) -> pd.DataFrame:
    """``n`` flights over four days of ``month``; probabilities on a 0.01 grid (ties on purpose)."""
    rng = np.random.default_rng(seed)
    start = datetime.fromisoformat(f"{month}-01T10:00:00+00:00")
    departs = [start + timedelta(days=int(i % 4), minutes=int(i)) for i in range(n)]
    return pd.DataFrame(
        {
            "carrier": rng.choice(["UA", "AA", "DL"], n),
            "flight": np.arange(first, first + n),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
            "departs": pd.to_datetime(departs, utc=True),
            "p": np.round(rng.beta(2, 3, n), 2),
            "ood": rng.random(n) < 0.05,
        }
    )


def _write_log(project: Project, served: pd.DataFrame) -> None:
    """Log rows exactly as the service does (its writer, its columns)."""
    log = PredictionLog(project.path(".noria/predictions"), roll_rows=10_000, roll_seconds=3600)
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(served.to_dict("records")):
        rows.append(
            {
                "request_id": f"req-{i}",
                "row": 0,
                "timestamp": r["departs"].timestamp() - 3600,
                "endpoint": "/predict",
                "status": 200,
                "model_name": "flight-delay",
                "model_version": r["version"],
                "arm": r["arm"],
                "served": r["served"],
                "input": "{}",
                "probability": r["p"],
                "raw_score": 0.0,
                "decision": r["p"] >= THRESHOLD,
                "threshold": THRESHOLD,
                "ood": bool(r["ood"]),
                "ood_reasons": [f"visib={i} above the training maximum 10"] if r["ood"] else [],
                "features": {"visib": 1.0 + i % 7, "carrier": r["carrier"]},
                "carrier": r["carrier"],
                "flight": int(r["flight"]),
                "origin": r["origin"],
                "scheduled_departure": r["departs"].timestamp(),
            }
        )
    rows.append({"request_id": "bad", "row": 0, "timestamp": 0.0, "status": 422, "served": False, "error": "x"})
    log.write(rows)
    log.close()
    assert log.rows_written == len(rows)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Project, pd.DataFrame, pd.DataFrame]:
    """July: v1 champion. August: v1 champion early, v2 challenger then champion after a promotion,
    and v2 shadow rows (never served). Labels for most served flights, a few cancelled, a few unserved."""
    project = _project(tmp_path / "proj")
    july = _flights("2013-07", 320, seed=1, first=1000).assign(version=1, arm="champion", served=True)
    aug = _flights("2013-08", 360, seed=2, first=5000)
    aug["version"] = np.where(np.arange(360) < 200, 1, 2)
    aug["arm"] = np.where(np.arange(360) < 200, "champion", np.where(np.arange(360) < 260, "challenger", "champion"))
    aug["served"] = True
    shadow = aug.iloc[:40].assign(version=2, arm="shadow", served=False, p=0.99)
    served = pd.concat([july, aug, shadow], ignore_index=True)
    _write_log(project, served)

    rng = np.random.default_rng(7)
    truth = served[served["served"]].copy()
    truth["late"] = rng.random(len(truth)) < truth["p"]
    truth["dep_delay"] = np.where(truth["late"], 42.0, -2.0)
    truth.loc[truth.sample(frac=0.08, random_state=3).index, "dep_delay"] = np.nan  # cancelled
    unserved = _flights("2013-07", 7, seed=9, first=9000).assign(late=True, dep_delay=60.0)
    labels = pd.concat([truth, unserved], ignore_index=True)
    return project, served, labels


def _labels_csv(labels: pd.DataFrame, path: Path) -> Path:
    """A labels file as a partner would send it: local New York times with their offset, delays in minutes."""
    local = labels["departs"].dt.tz_convert(NEW_YORK)
    out = pd.DataFrame(
        {
            "carrier": labels["carrier"],
            "flight": labels["flight"],
            "origin": labels["origin"],
            "scheduled_departure": [t.isoformat() for t in local],
            "dep_delay": labels["dep_delay"],
        }
    )
    out.to_csv(path, index=False)
    return path


def _expected(served: pd.DataFrame, labels: pd.DataFrame, month: str, version: int, arm: str) -> pd.DataFrame:
    part = served[
        served["served"]
        & (served["departs"].dt.strftime("%Y-%m") == month)
        & (served["version"] == version)
        & (served["arm"] == arm)
    ]
    known = labels[labels["dep_delay"].notna()][["carrier", "flight", "origin", "departs", "late"]]
    return part.merge(known, on=["carrier", "flight", "origin", "departs"], how="left")


def test_load_labels_reads_delays_in_local_time(
    setup: tuple[Project, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, _, labels = setup
    path = _labels_csv(labels, tmp_path / "labels.csv")
    got, rejected = load_labels(path, threshold=15, quarantine_dir=tmp_path / "q")
    assert rejected == 0 and not (tmp_path / "q").exists()
    cancelled = int(labels["dep_delay"].isna().sum())
    assert len(got) == len(labels) - cancelled
    assert got.attrs["rows_read"] == len(labels) and got.attrs["unlabelled"] == cancelled
    assert str(got["scheduled_departure"].dtype) == "datetime64[us, UTC]"
    known = labels[labels["dep_delay"].notna()].reset_index(drop=True)
    assert (got["scheduled_departure"] == known["departs"]).all()
    assert got["late"].tolist() == known["late"].tolist()


def test_bad_label_rows_are_quarantined_with_reasons(tmp_path: Path) -> None:
    text = """carrier,flight,origin,scheduled_departure,late,dep_delay
UA,1545,EWR,2013-07-01T05:15:00-04:00,1,
UA,12x,EWR,2013-07-01T06:00:00-04:00,0,
AA,11,JFK,yesterday,0,
AA,12,JFK,2013-07-01T06:00:00,0,
DL,13,LGA,2013-07-01T07:00:00Z,maybe,
DL,14,LGA,2013-07-01T07:30:00Z,1,
DL,14,LGA,2013-07-01T07:30:00Z,0,
B6,15,JFK,2013-07-01T08:00:00Z,true,
B6,15,JFK,2013-07-01T08:00:00Z,TRUE,
,16,JFK,2013-07-01T08:00:00Z,0,
WN,17,EWR,2013-07-01T09:00:00Z,,abc
WN,18,EWR,2013-07-01T09:00:00Z,,
WN,19,EWR,2013-07-01T09:00:00Z,,20
WN,20,EWR,2013-07-01T09:00:00Z,0,30
"""
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    labels, rejected = load_labels(path, threshold=15, quarantine_dir=tmp_path / "q")
    # accepted: UA 1545 (late), B6 15 once (late), WN 19 (late from dep_delay 20 > 15)
    assert sorted(labels["flight"].tolist()) == [15, 19, 1545] and labels["late"].all()
    assert rejected == 9
    assert labels.attrs["duplicates"] == 1 and labels.attrs["unlabelled"] == 1  # B6 15 twice; WN 18 no outcome
    q = pd.read_parquet(labels.attrs["quarantine_path"])
    assert len(q) == rejected and list(q.columns) == ["row", *QUARANTINE_COLUMNS]
    reasons = dict(zip(q["row"], q["reason"], strict=True))
    assert "is not a positive whole number" in reasons[2] and "12x" in reasons[2]
    assert "yesterday is not an ISO 8601 time" in reasons[3]
    assert "has no UTC offset" in reasons[4]
    assert "late=maybe is not true/false or 1/0" in reasons[5]
    assert reasons[6] == reasons[7] == "the flight appears 2 times with different labels"
    assert reasons[10] == "carrier is missing"
    assert "dep_delay=abc is not a number of minutes" in reasons[11]
    assert "late disagrees with dep_delay=30" in reasons[14]
    assert q["flight"].tolist()[0] == "12x"  # kept as written


def test_labels_from_parquet_with_utc_timestamps(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "carrier": ["UA", "AA"],
            "flight": [1, 2],
            "origin": ["EWR", "JFK"],
            "scheduled_departure": pd.to_datetime(["2013-07-01 09:00", "2013-07-01 10:00"]).tz_localize(NEW_YORK),
            "late": [True, False],
        }
    )
    frame.to_parquet(tmp_path / "l.parquet")
    labels, rejected = load_labels(tmp_path / "l.parquet", threshold=15, quarantine_dir=tmp_path / "q")
    assert rejected == 0 and labels["late"].tolist() == [True, False]
    assert labels["scheduled_departure"].iloc[0] == pd.Timestamp("2013-07-01 13:00", tz="UTC")
    assert labels["dep_delay"].isna().all()
    frame["scheduled_departure"] = frame["scheduled_departure"].dt.tz_localize(None)
    frame.to_parquet(tmp_path / "naive.parquet")
    with pytest.raises(ValidationError, match="without a time zone") as info:
        load_labels(tmp_path / "naive.parquet", threshold=15, quarantine_dir=tmp_path / "q")
    assert info.value.fix and "UTC" in info.value.fix


def test_unusable_labels_files_raise_clear_errors(tmp_path: Path) -> None:
    q = tmp_path / "q"
    (tmp_path / "no_origin.csv").write_text("carrier,flight,scheduled_departure,late\nUA,1,2013-07-01T00:00Z,1\n")
    with pytest.raises(ValidationError, match="no column 'origin'") as info:
        load_labels(tmp_path / "no_origin.csv", threshold=15, quarantine_dir=q)
    assert "expected the flight key" in info.value.message and info.value.fix
    (tmp_path / "no_label.csv").write_text("carrier,flight,origin,scheduled_departure\nUA,1,EWR,2013-07-01T00:00Z\n")
    with pytest.raises(ValidationError, match="neither a 'late' nor a 'dep_delay'"):
        load_labels(tmp_path / "no_label.csv", threshold=15, quarantine_dir=q)
    with pytest.raises(SourceError, match="does not exist"):
        load_labels(tmp_path / "missing.csv", threshold=15, quarantine_dir=q)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SourceError, match="cannot read labels file"):
        load_labels(tmp_path / "broken.parquet", threshold=15, quarantine_dir=q)
    (tmp_path / "labels.xlsx").write_bytes(b"")
    with pytest.raises(ValidationError, match="neither Parquet nor CSV"):
        load_labels(tmp_path / "labels.xlsx", threshold=15, quarantine_dir=q)
    assert not q.exists()


def test_compute_feedback_matches_scikit_learn(
    setup: tuple[Project, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    project, served, raw = setup
    labels, _ = load_labels(_labels_csv(raw, tmp_path / "l.csv"), threshold=15, quarantine_dir=tmp_path / "q")
    results = compute_feedback(project, labels)
    got = {(r.window, r.model_version, r.arm): r for r in results}
    assert sorted(got) == [("2013-07", 1, "champion"), ("2013-08", 1, "champion"), *AUGUST_V2]
    for (month, version, arm), r in got.items():
        exp = _expected(served, raw, month, version, arm)
        lab = exp[exp["late"].notna()]
        y, p = lab["late"].astype(int).to_numpy(), lab["p"].to_numpy()
        flagged = p >= THRESHOLD
        assert (r.predictions, r.labelled, r.positives) == (len(exp), len(lab), int(y.sum()))
        m = r.metrics
        assert m.precision == pytest.approx((flagged & (y == 1)).sum() / flagged.sum())
        assert m.recall == m.kpi_delayed_flagged == pytest.approx((flagged & (y == 1)).sum() / y.sum())
        assert m.brier == pytest.approx(brier_score_loss(y, p))
        assert m.base_rate == pytest.approx(y.mean())
        assert m.flagged_rate == pytest.approx((exp["p"] >= THRESHOLD).mean())
        reference = calibration(y, p, n_bins=10)
        assert m.ece == pytest.approx(reference.expected_calibration_error)
        assert [b["count"] for b in r.calibration] == [b.rows for b in reference.bins]
        assert [b["observed"] for b in r.calibration] == pytest.approx([b.observed_rate for b in reference.bins])
        if len(lab) >= 50:
            assert m.roc_auc == pytest.approx(roc_auc_score(y, p))
            assert m.pr_auc == pytest.approx(average_precision_score(y, p))
        else:  # the challenger's 60 rows leave fewer than min_labels labelled
            assert m.roc_auc is None and m.pr_auc is None
        assert r.holdout_auc is None  # no registry in this project
        # days: counts and the rank-based AUC against scikit-learn, day by day
        exp["day"] = exp["departs"].dt.strftime("%Y-%m-%d")
        assert [d["day"] for d in r.days] == sorted(exp["day"].unique())
        for d in r.days:
            day = exp[exp["day"] == d["day"]]
            dl = day[day["late"].notna()]
            dy, dp = dl["late"].astype(int).to_numpy(), dl["p"].to_numpy()
            assert (d["predictions"], d["labelled"], d["positives"]) == (len(day), len(dl), int(dy.sum()))
            assert d["mean_score"] == pytest.approx(day["p"].mean())
            assert d["base_rate"] == pytest.approx(dy.mean())
            assert d["recall"] == d["kpi_delayed_flagged"] == pytest.approx(((dp >= 0.5) & (dy == 1)).sum() / dy.sum())
            if len(dl) >= 50:
                assert d["roc_auc"] == pytest.approx(roc_auc_score(dy, dp), abs=1e-12)
            else:
                assert d["roc_auc"] is None
    assert got[("2013-07", 1, "champion")].unmatched_labels == 7
    assert got[("2013-07", 1, "champion")].days[0]["roc_auc"] is not None


def test_records_are_stored_one_per_version_with_other_arms(
    setup: tuple[Project, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    project, _, raw = setup
    labels, _ = load_labels(_labels_csv(raw, tmp_path / "l.csv"), threshold=15, quarantine_dir=tmp_path / "q")
    results = compute_feedback(project, labels)
    store = MonitoringStore.of(project)
    records = store.records("performance")
    assert [(r["window"], r["model_version"]) for r in records] == [("2013-07", 1), ("2013-08", 1), ("2013-08", 2)]
    v2 = records[2]
    assert v2["arm"] == "champion" and list(v2["arms"]) == ["challenger"]
    assert set(v2) >= {"threshold", "predictions", "labelled", "metrics", "holdout_auc", "days", "calibration"}
    assert set(v2["metrics"]) == {
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "brier",
        "ece",
        "base_rate",
        "flagged_rate",
        "kpi_delayed_flagged",
    }
    challenger = next(r for r in results if r.arm == "challenger")
    assert v2["arms"]["challenger"]["predictions"] == challenger.predictions == 60
    assert v2["arms"]["challenger"]["metrics"] == json.loads(json.dumps(challenger.metrics.to_dict()))
    assert set(v2["days"][0]) >= {"day", "predictions", "labelled", "roc_auc", "precision", "recall"}
    assert v2["unmatched_labels"] == 0 and records[0]["unmatched_labels"] == 7
    assert all(r.path == store.record_path("performance", r.window, r.model_version) for r in results)
    # re-computing a window replaces its records
    compute_feedback(project, labels, windows=["2013-07"])
    assert len(store.records("performance")) == 3
    with pytest.raises(NotFoundError, match="2013-09"):
        compute_feedback(project, labels, windows=["2013-09"])


def test_review_queue_holds_low_certainty_and_ood_rows(
    setup: tuple[Project, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    project, served, raw = setup
    july = served[served["departs"].dt.strftime("%Y-%m") == "2013-07"]
    expected = july[(july["p"] - THRESHOLD).abs().lt(BAND - 1e-12) | july["ood"]]
    path = build_review_queue(project, "2013-07")
    queue = pd.read_parquet(path)
    assert path == MonitoringStore.of(project).review_path("2013-07")
    assert list(queue.columns) == REVIEW_COLUMNS
    assert len(queue) == len(expected) > 0 and queue["late"].isna().all()
    assert queue["scheduled_departure"].is_monotonic_increasing
    for row in queue.itertuples():
        if abs(row.probability - THRESHOLD) < BAND - 1e-12:
            assert row.reason.startswith(f"low certainty: p={round(row.probability, 3)} within 0.05 of 0.5")
        else:
            assert row.reason.startswith("out of distribution: ")
    ood = queue[queue["reason"].str.contains("out of distribution")]
    assert len(ood) == int(expected["ood"].sum())
    assert ood["reason"].str.contains(r"out of distribution: visib=\d+ above the training maximum 10").all()
    # with labels, the queue says which doubtful calls were right
    labels, _ = load_labels(_labels_csv(raw, tmp_path / "l.csv"), threshold=15, quarantine_dir=tmp_path / "q")
    queue = pd.read_parquet(build_review_queue(project, "2013-07", labels))
    known = raw[raw["dep_delay"].notna()].set_index(["carrier", "flight", "origin"])["late"]
    for row in queue.itertuples():
        key = (row.carrier, row.flight, row.origin)
        assert (pd.isna(row.late) and key not in known.index) or row.late == known[key]
    with pytest.raises(NotFoundError):
        build_review_queue(project, "2013-10")


def test_record_feedback_summary_and_trend(setup: tuple[Project, pd.DataFrame, pd.DataFrame], tmp_path: Path) -> None:
    project, _, raw = setup
    path = _labels_csv(raw, tmp_path / "l.csv")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("UA,77,EWR,not a time,5\n")
    summary = record_feedback(project, path)
    out = summary.to_dict()
    cancelled = int(raw["dep_delay"].isna().sum())
    assert out["rows_read"] == len(raw) + 1 and out["rejected"] == 1 and out["unlabelled"] == cancelled
    assert out["accepted"] == len(raw) - cancelled and out["unmatched"] == 7
    assert out["matched"] == out["accepted"] - 7
    assert Path(out["quarantine"]).parent == MonitoringStore.of(project).root / "quarantine"
    assert sorted(out["review_queues"]) == ["2013-07", "2013-08"]
    assert all(Path(p).is_file() for p in out["review_queues"].values())
    assert len(out["windows"]) == 4 and "days" not in out["windows"][0]
    json.dumps(out)  # JSON-ready as the CLI prints it
    assert {row["window"] for row in summary.table()} == {"2013-07", "2013-08"}

    trend = performance_trend(project)
    assert list(trend[["window", "model_version"]].itertuples(index=False, name=None)) == [
        ("2013-07", 1),
        ("2013-08", 1),
        ("2013-08", 2),
    ]
    assert trend["holdout_auc"].isna().all() and trend["auc_drop"].isna().all()
    july = summary.results[0]
    assert trend.loc[0, "roc_auc"] == pytest.approx(july.metrics.roc_auc)
    assert trend.loc[0, "kpi_delayed_flagged"] == pytest.approx(july.metrics.recall)
    assert trend.loc[0, "labelled"] == july.labelled


def test_trend_of_an_empty_store_and_labels_outside_the_log(tmp_path: Path) -> None:
    project = _project(tmp_path / "proj")
    trend = performance_trend(project)
    assert trend.empty and "auc_drop" in trend.columns
    flights = _flights("2013-07", 10, seed=3, first=1).assign(version=1, arm="champion", served=True)
    _write_log(project, flights)
    labels = pd.DataFrame(
        {
            "carrier": ["UA"],
            "flight": [1],
            "origin": ["EWR"],
            "scheduled_departure": [pd.Timestamp("2013-11-02 10:00", tz="UTC")],
            "late": [True],
        }
    )
    with pytest.raises(NotFoundError, match=r"labels: 2013-11; log: 2013-07"):
        compute_feedback(project, labels)
    naive = labels.assign(scheduled_departure=labels["scheduled_departure"].dt.tz_localize(None))
    with pytest.raises(ValidationError, match="not a time-zone aware timestamp"):
        compute_feedback(project, naive)
    with pytest.raises(ValidationError, match="no column 'late'"):
        compute_feedback(project, labels.drop(columns=["late"]))


def test_holdout_auc_without_a_registry_is_none(tmp_path: Path) -> None:
    project = _project(tmp_path / "proj")
    assert holdout_auc(project, "flight-delay", 1) is None
    assert not (tmp_path / "proj" / ".noria" / "mlflow.db").exists()  # MLflow was not started


def test_holdout_auc_from_a_real_registry(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    import mlflow
    from tests.unit.serving.serving_support import make_migrated_db, make_project, train_booster

    from noria.registry import Evaluation, collect_lineage, record_evaluation, start_run

    cache_plugin = getattr(request.config, "cache", None)
    cache = cache_plugin.mkdir(f"mlflow-db-{mlflow.__version__}") if cache_plugin is not None else None
    project = make_project(tmp_path / "proj", make_migrated_db(cache, tmp_path))
    booster = train_booster(seed=0, rounds=5)
    lineage = collect_lineage(project, data_snapshot="s", feature_service="f", feature_definition_hash="h")
    with start_run(project, "train", lineage) as run:
        run.log_metrics({"test_roc_auc": 0.81})
        version = run.log_model(booster, "flight-delay").version
    assert holdout_auc(project, "flight-delay", version) == pytest.approx(0.81)  # the run's metric
    # the evaluation the promotion gate records with the version wins over the run metric
    record_evaluation(project, "flight-delay", version, Evaluation.from_arrays({"roc_auc": 0.79}, [0.2, 0.7]))
    assert holdout_auc(project, "flight-delay", version) == pytest.approx(0.79)
    assert holdout_auc(project, "flight-delay", version + 1) is None
