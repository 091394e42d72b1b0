"""Delayed-label feedback of a binary model: the flights reference project, its New York months.

The prediction log is written by the service's own writer, which computes each request's event
key and time from the logged body with the project's own request mapping (flights_api.py), as
in production. Labels come in a file a partner sends (the flights table's ids + dep_delay).
Expected figures are computed here with scikit-learn from the rows logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from tests.unit.monitoring.task_projects import log_rows
from tests.unit.serving.serving_support import make_migrated_db, make_project, train_booster

from noria.config import Project
from noria.errors import ConfigError, NotFoundError, SnapshotNotFoundError, ValidationError
from noria.monitoring.feedback import (
    TREND_COLUMNS,
    compute_feedback,
    holdout_metric,
    performance_trend,
    record_feedback,
)
from noria.monitoring.labels import load_labels
from noria.monitoring.review import build_review_queue, review_columns
from noria.monitoring.store import MonitoringStore
from noria.monitoring.window import read_window, windows_in_log
from noria.tasks import task_of

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

THRESHOLD = 0.5
BAND = 0.05
MIN_LABELS = 50
NEW_YORK = "America/New_York"
IDS = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]
KEYS = [f"key.{c}" for c in IDS]
AUGUST_V2 = [("2013-08", 2, "challenger"), ("2013-08", 2, "champion")]


@dataclass
class Logged:
    project: Project
    served: pd.DataFrame  # one row per logged prediction: the flight, p, version, arm, served, ood
    labels: pd.DataFrame  # the flights' outcomes: the flight, dep_delay (NaN: cancelled), late


def _flights(month: str, n: int, seed: int, first: int) -> pd.DataFrame:
    """``n`` flights over four New York days of ``month`` and its last evening (already the next
    month in UTC); probabilities on a 0.01 grid (ties on purpose)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(f"{month}-01T06:00:00", tz=NEW_YORK)
    last = (start + pd.offsets.MonthEnd(0)).replace(hour=21, minute=0)
    i = np.arange(n)
    departs = [
        last + pd.Timedelta(minutes=int(k % 150))
        if k % 16 == 5
        else start + pd.Timedelta(days=int(k % 4), minutes=int(k))
        for k in i
    ]
    return pd.DataFrame(
        {
            "carrier": rng.choice(["UA", "AA", "DL"], n),
            "flight": np.arange(first, first + n),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
            "departs": pd.DatetimeIndex(departs).tz_convert("UTC"),
            "p": np.round(rng.beta(2, 3, n), 2),
            "ood": rng.random(n) < 0.05,
        }
    )


def _body(flight: dict[str, Any]) -> str:
    """The public request (flights_api.Flight), departure in New York time with its offset."""
    return json.dumps(
        {
            "carrier": flight["carrier"],
            "flight": int(flight["flight"]),
            "origin": flight["origin"],
            "dest": "IAH",
            "tailnum": "N14228",
            "scheduled_departure": flight["departs"].tz_convert(NEW_YORK).isoformat(),
            "distance": 1400.0,
        }
    )


def _log(project: Project, served: pd.DataFrame) -> None:
    """Log rows as the service does; the writer keys them from the body with the project's code."""
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
                "input": _body(r),
                "score": r["p"],
                "probability": r["p"],
                "raw_score": 0.0,
                "decision": r["p"] >= THRESHOLD,
                "threshold": THRESHOLD,
                "ood": bool(r["ood"]),
                "ood_reasons": [f"visib={i} above the training maximum 10"] if r["ood"] else [],
                "features": {"visib": 1.0 + i % 7, "carrier": r["carrier"]},
            }
        )
    rows.append({"request_id": "bad", "row": 0, "timestamp": 0.0, "status": 422, "served": False, "error": "x"})
    # a body that is not one flight (cannot be keyed): logged, never windowed
    rows.append(rows[0] | {"request_id": "batch", "input": json.dumps({"flights": []})})
    assert log_rows(project, rows, keyed_by_writer=True) == len(rows)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    import mlflow

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_migrated_db(folder, tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> Logged:
    """July: v1 champion. August: v1 champion early, v2 challenger then champion after a promotion,
    and v2 shadow rows (never served). Outcomes for most served flights, a few cancelled, a few unserved."""
    extra = f"monitoring:\n  feedback: {{min_labels: {MIN_LABELS}, review_band: {BAND}}}\n"
    project = make_project(tmp_path_factory.mktemp("flights") / "p", migrated, extra)
    july = _flights("2013-07", 320, seed=1, first=1000).assign(version=1, arm="champion", served=True)
    aug = _flights("2013-08", 360, seed=2, first=5000)
    aug["version"] = np.where(np.arange(360) < 200, 1, 2)
    aug["arm"] = np.where(np.arange(360) < 200, "champion", np.where(np.arange(360) < 260, "challenger", "champion"))
    aug["served"] = True
    shadow = aug.iloc[:40].assign(version=2, arm="shadow", served=False, p=0.99)
    served = pd.concat([july, aug, shadow], ignore_index=True)
    _log(project, served)

    rng = np.random.default_rng(7)
    truth = served[served["served"]].copy()
    truth["dep_delay"] = np.where(rng.random(len(truth)) < truth["p"], 42.0, -2.0)
    truth.loc[truth.sample(frac=0.08, random_state=3).index, "dep_delay"] = np.nan  # cancelled
    unserved = _flights("2013-07", 7, seed=9, first=9000).assign(dep_delay=60.0)
    labels = pd.concat([truth, unserved], ignore_index=True)[["carrier", "flight", "origin", "departs", "dep_delay"]]
    labels["late"] = (labels["dep_delay"] > 15).where(labels["dep_delay"].notna())
    return Logged(project, served, labels)


@pytest.fixture
def project(logged: Logged, tmp_path: Path) -> Project:
    """The logged project with a monitoring folder of this test's own."""
    logged.project.config.monitoring.dir = str(tmp_path / "monitoring")
    return logged.project


def _month(departs: pd.Series) -> pd.Series:
    return departs.dt.tz_convert(NEW_YORK).dt.strftime("%Y-%m")


def _labels_csv(labels: pd.DataFrame, path: Path) -> Path:
    """Outcomes as a partner sends them: the flights table's ids (New York date and HHMM) and dep_delay."""
    local = labels["departs"].dt.tz_convert(NEW_YORK)
    out = pd.DataFrame(
        {
            "year": local.dt.year,
            "month": local.dt.month,
            "day": local.dt.day,
            "carrier": labels["carrier"],
            "flight": labels["flight"],
            "origin": labels["origin"],
            "sched_dep_time": local.dt.hour * 100 + local.dt.minute,
            "dep_delay": labels["dep_delay"],
        }
    )
    out.to_csv(path, index=False)
    return path


def _expected(logged: Logged, month: str, version: int, arm: str) -> pd.DataFrame:
    served = logged.served
    part = served[
        served["served"]
        & (_month(served["departs"]) == month)
        & (served["version"] == version)
        & (served["arm"] == arm)
    ]
    known = logged.labels[logged.labels["late"].notna()][["carrier", "flight", "origin", "departs", "late"]]
    return part.merge(known, on=["carrier", "flight", "origin", "departs"], how="left")


def test_the_writer_keys_each_request_with_the_projects_own_mapping(logged: Logged) -> None:
    project = logged.project
    july = read_window(project, "2013-07")
    served = logged.served
    expected = served[served["served"] & (_month(served["departs"]) == "2013-07")]
    assert len(july) == len(expected) == 320 and july["served"].all() and (july["status"] == 200).all()
    assert july["event_time"].is_monotonic_increasing
    # the last evening of July in New York is August in UTC: still July's window
    assert (july["event_time"].dt.strftime("%Y-%m") == "2013-08").sum() == (np.arange(320) % 16 == 5).sum()
    by_id = july.set_index("request_id")
    first = expected.iloc[0]
    local = first["departs"].tz_convert(NEW_YORK)
    row = by_id.loc["req-0"]
    assert row["event_time"] == first["departs"]
    assert [row[k] for k in KEYS] == [
        local.year,
        local.month,
        local.day,
        first["carrier"],
        first["flight"],
        first["origin"],
        local.hour * 100 + local.minute,
    ]
    # the shadow rows count in the log's windows; the failure and the unkeyable body do not
    assert windows_in_log(project) == {"2013-07": 320, "2013-08": 400}


def test_compute_feedback_matches_scikit_learn(logged: Logged, project: Project, tmp_path: Path) -> None:
    labels = load_labels(project, _labels_csv(logged.labels, tmp_path / "l.csv"), quarantine_dir=tmp_path / "q")
    results = compute_feedback(project, labels)
    got = {(r.window, r.model_version, r.arm): r for r in results}
    assert sorted(got) == [("2013-07", 1, "champion"), ("2013-08", 1, "champion"), *AUGUST_V2]
    for (month, version, arm), r in got.items():
        exp = _expected(logged, month, version, arm)
        lab = exp[exp["late"].notna()]
        y, p = lab["late"].astype(int).to_numpy(), lab["p"].to_numpy()
        flagged = p >= THRESHOLD
        assert (r.predictions, r.labelled, r.threshold) == (len(exp), len(lab), THRESHOLD)
        m = r.metrics
        assert (m["predictions"], m["labelled"], m["unscored"]) == (len(exp), len(lab), 0)
        assert m["flagged_rate"] == pytest.approx((exp["p"] >= THRESHOLD).mean())
        assert r.primary_metric == "roc_auc" and r.live == m["roc_auc"]
        assert r.holdout is None and r.metric_drop is None  # nothing registered yet
        assert r.unmatched_labels is None  # a labels file does not say which window a label is of
        assert r.kpi == {
            "metric": "recall",
            "name": "share of delayed flights flagged in advance",
            "value": m["recall"],
        }
        if len(lab) < MIN_LABELS:  # the challenger's 60 rows: counts only
            assert (arm, m["roc_auc"], m["recall"], m["brier"], r.calibration) == ("challenger", None, None, None, [])
            continue
        assert m["precision"] == pytest.approx((flagged & (y == 1)).sum() / flagged.sum())
        assert m["recall"] == pytest.approx((flagged & (y == 1)).sum() / y.sum())
        assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
        assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
        assert m["brier"] == pytest.approx(brier_score_loss(y, p))
        assert m["log_loss"] == pytest.approx(log_loss(y, p))
        assert m["base_rate"] == pytest.approx(y.mean()) and m["mean_score"] == pytest.approx(p.mean())
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
        counts = counts[counts > 0]
        assert [b["count"] for b in r.calibration] == counts.tolist()
        assert [b["observed"] for b in r.calibration] == pytest.approx(observed)
        assert [b["mean_predicted"] for b in r.calibration] == pytest.approx(predicted)
        assert m["ece"] == pytest.approx(float(np.sum(counts * np.abs(observed - predicted)) / len(y)))
        # days: New York days, counts and the rank-based AUC against scikit-learn, day by day
        exp["day"] = exp["departs"].dt.tz_convert(NEW_YORK).dt.strftime("%Y-%m-%d")
        assert [d["day"] for d in r.days] == sorted(exp["day"].unique())
        assert all(d["day"].startswith(month) for d in r.days)
        for d in r.days:
            day = exp[exp["day"] == d["day"]]
            dl = day[day["late"].notna()]
            dy, dp = dl["late"].astype(int).to_numpy(), dl["p"].to_numpy()
            assert (d["predictions"], d["labelled"], d["positives"]) == (len(day), len(dl), int(dy.sum()))
            assert d["mean_score"] == pytest.approx(day["p"].mean())
            assert d["base_rate"] == pytest.approx(dy.mean())
            assert d["recall"] == pytest.approx(((dp >= THRESHOLD) & (dy == 1)).sum() / dy.sum())
            if len(dl) >= MIN_LABELS:
                assert d["roc_auc"] == pytest.approx(roc_auc_score(dy, dp), abs=1e-12)
            else:
                assert d["roc_auc"] is None
    assert got[("2013-07", 1, "champion")].days[0]["roc_auc"] is not None


def test_records_are_stored_one_per_version_with_other_arms(logged: Logged, project: Project, tmp_path: Path) -> None:
    labels = load_labels(project, _labels_csv(logged.labels, tmp_path / "l.csv"), quarantine_dir=tmp_path / "q")
    results = compute_feedback(project, labels)
    store = MonitoringStore.of(project)
    records = store.records("performance")
    assert [(r["window"], r["model_version"]) for r in records] == [("2013-07", 1), ("2013-08", 1), ("2013-08", 2)]
    v2 = records[2]
    assert v2["arm"] == "champion" and list(v2["arms"]) == ["challenger"]
    assert set(v2) >= {"threshold", "predictions", "labelled", "metrics", "primary_metric", "holdout", "metric_drop"}
    assert set(v2) >= {"kpi", "days", "calibration", "unmatched_labels"}
    assert set(v2["metrics"]) == {
        *task_of(project).metric_directions,
        "rows",
        "predictions",
        "labelled",
        "unscored",
        "flagged_rate",
        "base_rate",
        "mean_score",
    }
    challenger = next(r for r in results if r.arm == "challenger")
    assert v2["arms"]["challenger"]["predictions"] == challenger.predictions == 60
    assert v2["arms"]["challenger"]["metrics"] == json.loads(json.dumps(challenger.metrics))
    assert set(v2["days"][0]) >= {"day", "predictions", "labelled", "roc_auc", "precision", "recall"}
    assert all(r.path == store.record_path("performance", r.window, r.model_version) for r in results)
    # re-computing a window replaces its records
    compute_feedback(project, labels, windows=["2013-07"])
    assert len(store.records("performance")) == 3
    with pytest.raises(NotFoundError, match="2013-09"):
        compute_feedback(project, labels, windows=["2013-09"])
    with pytest.raises(ConfigError, match="window: 'July' is not a month window"):
        compute_feedback(project, labels, windows=["July"])


def test_review_queue_holds_low_certainty_and_ood_rows(logged: Logged, project: Project, tmp_path: Path) -> None:
    served = logged.served
    july = served[served["served"] & (_month(served["departs"]) == "2013-07")]
    expected = july[(july["p"] - THRESHOLD).abs().lt(BAND - 1e-12) | july["ood"]]
    path = build_review_queue(project, "2013-07")
    queue = pd.read_parquet(path)
    assert path == MonitoringStore.of(project).review_path("2013-07")
    assert list(queue.columns) == review_columns(task_of(project), KEYS)
    assert list(queue.columns)[-5:] == ["score", "threshold", "decision", "reason", "label"]
    assert len(queue) == len(expected) > 0 and queue["label"].isna().all()
    assert queue["event_time"].is_monotonic_increasing
    unsure = (queue["score"] - THRESHOLD).abs() < BAND - 1e-12
    assert queue.loc[unsure, "reason"].str.startswith("low certainty: p=").all()
    for row in queue[unsure].itertuples():
        assert row.reason.startswith(f"low certainty: p={round(row.score, 3)} within 0.05 of 0.5")
    assert queue.loc[~unsure, "reason"].str.startswith("out of distribution: ").all()
    ood = queue[queue["reason"].str.contains("out of distribution")]
    assert len(ood) == int(expected["ood"].sum())
    assert ood["reason"].str.contains(r"out of distribution: visib=\d+ above the training maximum 10").all()
    # with labels, the queue says which doubtful calls were right
    labels = load_labels(project, _labels_csv(logged.labels, tmp_path / "l.csv"), quarantine_dir=tmp_path / "q")
    queue = pd.read_parquet(build_review_queue(project, "2013-07", labels))
    keys = queue[["key.carrier", "key.flight", "key.origin"]].set_axis(["carrier", "flight", "origin"], axis=1)
    truth = keys.merge(logged.labels[["carrier", "flight", "origin", "late"]], how="left")["late"]
    assert queue["label"].tolist() == [None if pd.isna(v) else bool(v) for v in truth]
    assert queue["label"].notna().any() and queue["label"].isna().any()
    with pytest.raises(NotFoundError):
        build_review_queue(project, "2013-10")


def test_record_feedback_summary_counts_and_trend(logged: Logged, project: Project, tmp_path: Path) -> None:
    path = _labels_csv(logged.labels, tmp_path / "l.csv")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("2013,7,1,UA,77,EWR,9am,5\n")
        fh.write("2013,7,1,UA,78,EWR,900,5\n2013,7,1,UA,78,EWR,900,6\n")  # the same outcome twice
    summary = record_feedback(project, path)
    out = summary.to_dict()
    cancelled = int(logged.labels["dep_delay"].isna().sum())
    assert out["rows_read"] == len(logged.labels) + 3 and out["rejected"] == 1 and out["unlabelled"] == cancelled
    assert out["duplicates"] == 1 and out["immature"] == 0
    assert out["rows_read"] == out["accepted"] + out["rejected"] + out["unlabelled"] + out["duplicates"]
    served = logged.served[logged.served["served"]]
    known = logged.labels[logged.labels["late"].notna()]
    matched = known.merge(served, on=["carrier", "flight", "origin", "departs"])
    assert out["matched"] == len(matched) and out["unmatched"] == out["accepted"] - out["matched"] == 7 + 1
    assert Path(out["quarantine"]).parent == MonitoringStore.of(project).root / "quarantine"
    q = pd.read_parquet(out["quarantine"])
    assert q["reason"].tolist() == ["sched_dep_time=9am is not a whole number"]
    assert sorted(out["review_queues"]) == ["2013-07", "2013-08"]
    assert all(Path(p).is_file() for p in out["review_queues"].values())
    assert len(out["windows"]) == 4 and "days" not in out["windows"][0]
    json.dumps(out)  # JSON-ready as the CLI prints it
    assert {row["window"] for row in summary.table()} == {"2013-07", "2013-08"}
    assert set(summary.table()[0]) == {
        "window",
        "version",
        "arm",
        "predictions",
        "labelled",
        "roc_auc",
        "holdout",
        "drop",
        "recall",
    }

    trend = performance_trend(project)
    assert list(trend.columns) == TREND_COLUMNS
    assert list(trend[["window", "model_version"]].itertuples(index=False, name=None)) == [
        ("2013-07", 1),
        ("2013-08", 1),
        ("2013-08", 2),
    ]
    assert trend["holdout"].isna().all() and trend["drop"].isna().all() and (trend["metric"] == "roc_auc").all()
    july = summary.results[0]
    assert trend.loc[0, "live"] == pytest.approx(july.metrics["roc_auc"])
    assert trend.loc[0, "kpi"] == pytest.approx(july.metrics["recall"])
    assert trend.loc[0, "labelled"] == july.labelled


def test_holdout_and_metric_drop_from_a_real_registry(logged: Logged, project: Project, tmp_path: Path) -> None:
    from noria.registry import Evaluation, collect_lineage, record_evaluation, start_run

    assert holdout_metric(project, "flight-delay", 1, "roc_auc") is None  # nothing registered yet
    booster = train_booster(seed=0, rounds=5)
    lineage = collect_lineage(project, data_snapshot="s", feature_service="f", feature_definition_hash="h")
    for holdout in (0.81, 0.83):
        with start_run(project, "train", lineage) as run:
            run.log_metrics({"test_roc_auc": holdout})
            run.log_model(booster, "flight-delay")
    assert holdout_metric(project, "flight-delay", 1, "roc_auc") == pytest.approx(0.81)  # the run's metric
    # the evaluation the promotion gate records with the version wins over the run metric
    record_evaluation(project, "flight-delay", 2, Evaluation.from_arrays({"roc_auc": 0.79}, [0.2, 0.7]))
    assert holdout_metric(project, "flight-delay", 2, "roc_auc") == pytest.approx(0.79)
    assert holdout_metric(project, "flight-delay", 3, "roc_auc") is None
    labels = load_labels(project, _labels_csv(logged.labels, tmp_path / "l.csv"), quarantine_dir=tmp_path / "q")
    results = compute_feedback(project, labels)
    for r in results:
        assert r.holdout == pytest.approx(0.81 if r.model_version == 1 else 0.79)
        if r.live is not None:
            assert r.metric_drop == pytest.approx(r.holdout - r.live)  # positive = worse than the holdout
    trend = performance_trend(project)
    assert trend["holdout"].tolist() == pytest.approx([0.81, 0.81, 0.79])
    assert trend["drop"].tolist() == pytest.approx((trend["holdout"] - trend["live"]).tolist())


def test_feedback_refuses_what_it_cannot_use(logged: Logged, project: Project, tmp_path: Path) -> None:
    with pytest.raises(SnapshotNotFoundError, match="no data snapshot yet"):
        record_feedback(project)  # labels from the snapshot: none ingested
    path = tmp_path / "none.csv"
    path.write_text("year,month,day,carrier,flight,origin,sched_dep_time,dep_delay\n2013,7,1,UA,1,EWR,x,1\n")
    with pytest.raises(ValidationError, match="no usable label in .*1 row\\(s\\) rejected") as info:
        record_feedback(project, path)
    assert info.value.fix and "quarantine" in info.value.fix
    project.config.monitoring.kpi.metric = "rmse"
    try:
        labels = load_labels(project, _labels_csv(logged.labels, tmp_path / "l.csv"), quarantine_dir=tmp_path / "q")
        with pytest.raises(ConfigError, match="monitoring.kpi.metric 'rmse' is not a metric of a binary model") as err:
            compute_feedback(project, labels)
        assert err.value.fix and "recall" in err.value.fix
    finally:
        project.config.monitoring.kpi.metric = "recall"


def test_a_log_without_event_keys_is_a_clear_error(logged: Logged, tmp_path: Path, migrated: Path) -> None:
    from tests.unit.monitoring.task_projects import base_row

    project = make_project(tmp_path / "p", migrated)
    when = pd.Timestamp("2013-07-01T12:00:00Z").timestamp()
    row = base_row(0, 1) | {"model_name": "flight-delay", "score": 0.3, "threshold": 0.5, "event_time": when}
    log_rows(project, [row])  # an event time but no key (not keyed by the writer)
    labels = load_labels(project, _labels_csv(logged.labels, tmp_path / "l.csv"), quarantine_dir=tmp_path / "q")
    with pytest.raises(ValidationError, match=r"no event key column key\.year, key\.month") as info:
        compute_feedback(project, labels)
    assert info.value.fix


def test_the_trend_of_an_empty_store(tmp_path: Path, migrated: Path) -> None:
    project = make_project(tmp_path / "p", migrated)
    trend = performance_trend(project)
    assert trend.empty and list(trend.columns) == TREND_COLUMNS
