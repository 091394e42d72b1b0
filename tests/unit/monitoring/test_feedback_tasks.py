"""Delayed-label feedback of a multi-class and a regression model: the same code, the task's metrics.

* games (multi-class H / D / A): ISO weeks of Berlin time; labels from the ingested snapshot
  through the project's label function (a result counts from the final whistle, else 3 h after
  kickoff); the log's keys are given by the producer (the kickoff as Unix seconds, as batch
  scoring writes it).
* readings (regression): windows from a project function (halves of months); the log's keys are
  computed by the writer from each logged body with the project's request schema.

Expected figures are computed here with scikit-learn from the rows logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, mean_squared_error, r2_score
from tests.unit.monitoring.task_projects import (
    BERLIN,
    CLASSES,
    base_row,
    game_probabilities,
    games_project,
    games_table,
    log_rows,
    multiclass_row,
    readings_project,
    readings_table,
    regression_input,
)

from noria.config import Project
from noria.data.ingest import ingest
from noria.monitoring.feedback import compute_feedback, performance_trend, record_feedback
from noria.monitoring.labels import load_labels
from noria.monitoring.review import review_columns
from noria.monitoring.store import MonitoringStore
from noria.monitoring.window import read_window, windows_in_log
from noria.tasks import task_of

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


def _weeks(times: pd.Series) -> np.ndarray:
    iso = pd.DatetimeIndex(times).tz_convert(BERLIN).isocalendar()
    return np.array([f"{y}-W{w:02d}" for y, w in zip(iso["year"], iso["week"], strict=True)], dtype=object)


# --- multi-class -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, pd.DataFrame]:
    """240 games ingested; every 9th never served; v1 champion until week 12, then v2 (and v2 as a
    challenger on a few requests of week 12 before); a few OOD rows."""
    table = games_table(n=240, seed=0)
    project = games_project(tmp_path_factory.mktemp("games") / "p", table, function_target=True, git=True)
    ingest(project, "2024-03", "2024-04")
    p = game_probabilities(table, seed=4)
    week = _weeks(table["kickoff"])
    served = table.assign(week=week, p=list(p), i=np.arange(len(table)))
    served = served[served["i"] % 9 != 4].copy()
    served["version"] = np.where(served["week"] < "2024-W12", 1, 2)
    served["arm"] = np.where((served["week"] == "2024-W12") & (served["i"] % 5 == 0), "challenger", "champion")
    served["ood"] = served["i"] % 23 == 0
    rows = [
        multiclass_row(int(r.i), r.kickoff, r.home, r.p, int(r.version), arm=r.arm)
        | {"ood": bool(r.ood), "ood_reasons": ["rating=9 above the training maximum 3"] if r.ood else []}
        for r in served.itertuples()
    ]
    log_rows(project, rows)
    return project, served


@pytest.fixture
def games_project_here(games: tuple[Project, pd.DataFrame], tmp_path: Path) -> Project:
    project, _ = games
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    project.config.monitoring.feedback.min_labels = 5
    return project


def _mature(games: pd.DataFrame) -> pd.Series:
    """The label of each game known at the newest kickoff of the snapshot (NaN: none yet)."""
    end = games["kickoff"].max()
    known_at = pd.Series(games["final_whistle"]).fillna(games["kickoff"] + pd.Timedelta(hours=3))
    codes = games["result"].map({c: float(i) for i, c in enumerate(CLASSES)})
    return codes.where(known_at <= end)


def test_multiclass_feedback_from_the_snapshot_matches_scikit_learn(
    games: tuple[Project, pd.DataFrame], games_project_here: Project
) -> None:
    project = games_project_here
    _, served = games
    table = games_table(n=240, seed=0)
    truth = _mature(table)
    assert windows_in_log(project) == served["week"].value_counts().sort_index().to_dict()
    summary = record_feedback(project)
    assert summary.source.startswith("snapshot ")
    assert summary.rows_read == len(table)  # every game of the served weeks
    assert summary.immature > 0 and summary.unlabelled == int(table["result"].isna().sum())
    assert summary.rows_read == summary.accepted + summary.rejected + summary.unlabelled + summary.immature
    assert summary.matched == int(truth[served["i"].to_numpy()].notna().sum())
    assert summary.unmatched == int(truth.notna().sum()) - summary.matched > 0  # the games never served
    got = {(r.window, r.model_version, r.arm): r for r in summary.results}
    assert sorted(got) == [
        ("2024-W10", 1, "champion"),
        ("2024-W11", 1, "champion"),
        ("2024-W12", 2, "challenger"),
        ("2024-W12", 2, "champion"),
        ("2024-W13", 2, "champion"),
    ]
    for (week, version, arm), r in got.items():
        part = served[(served["week"] == week) & (served["version"] == version) & (served["arm"] == arm)]
        y_all = truth[part["i"].to_numpy()].to_numpy()
        lab = part[~np.isnan(y_all)]
        y = y_all[~np.isnan(y_all)].astype(int)
        p = np.vstack(lab["p"].to_numpy())
        assert (r.predictions, r.labelled, r.threshold) == (len(part), len(lab), None)
        m = r.metrics
        assert r.primary_metric == "log_loss" and r.live == m["log_loss"] and r.holdout is None
        assert m["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2]))
        assert m["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(axis=1)))
        assert m["macro_f1"] == pytest.approx(
            f1_score(y, p.argmax(axis=1), labels=[0, 1, 2], average="macro", zero_division=0)
        )
        assert m["brier"] == pytest.approx(float(((p - np.eye(3)[y]) ** 2).sum(axis=1).mean()))
        assert [m[f"share_{c}"] for c in CLASSES] == pytest.approx([float((y == j).mean()) for j in range(3)])
        assert m["mean_confidence"] == pytest.approx(p.max(axis=1).mean())
        # reliability of the top label: its probability against whether it was right
        right = (p.argmax(axis=1) == y).astype(int)
        observed, predicted = calibration_curve(right, p.max(axis=1), n_bins=10, strategy="uniform")
        assert [b["observed"] for b in r.calibration] == pytest.approx(observed)
        assert [b["mean_predicted"] for b in r.calibration] == pytest.approx(predicted)
        assert r.kpi == {"metric": "accuracy", "name": "accuracy", "value": m["accuracy"]}
        # the window's games whose label is known but that no served prediction of the window matched
        in_week = _weeks(table["kickoff"]) == week
        served_here = served.loc[served["week"] == week, "i"].to_numpy()
        assert r.unmatched_labels == int(truth[in_week].notna().sum()) - int(truth[served_here].notna().sum())
        # Berlin days: log loss and accuracy of each day's labelled rows
        day = pd.DatetimeIndex(part["kickoff"]).tz_convert(BERLIN).strftime("%Y-%m-%d")
        assert [d["day"] for d in r.days] == sorted(set(day))
        for d in r.days:
            mine = (day == d["day"]) & ~np.isnan(y_all)
            dy, dp = y_all[mine].astype(int), np.vstack(part["p"].to_numpy()[mine]) if mine.any() else None
            assert (d["predictions"], d["labelled"]) == (int((day == d["day"]).sum()), int(mine.sum()))
            if mine.sum() >= 5:
                assert dp is not None
                assert d["log_loss"] == pytest.approx(log_loss(dy, dp, labels=[0, 1, 2]))
                assert d["accuracy"] == pytest.approx(accuracy_score(dy, dp.argmax(axis=1)))
            else:
                assert d["log_loss"] is None and d["accuracy"] is None
    records = MonitoringStore.of(project).records("performance")
    assert [(r["window"], r["model_version"]) for r in records] == [
        ("2024-W10", 1),
        ("2024-W11", 1),
        ("2024-W12", 2),
        ("2024-W13", 2),
    ]
    assert records[2]["arm"] == "champion" and list(records[2]["arms"]) == ["challenger"]
    trend = performance_trend(project)
    assert (trend["metric"] == "log_loss").all() and trend["live"].tolist() == pytest.approx(
        [got[(w, v, "champion")].live for w, v in zip(trend["window"], trend["model_version"], strict=True)]
    )


def test_multiclass_review_queue_holds_close_calls_and_ood_rows(
    games: tuple[Project, pd.DataFrame], games_project_here: Project
) -> None:
    project = games_project_here
    _, served = games
    summary = record_feedback(project, windows=["2024-W11"])
    queue = pd.read_parquet(summary.review_paths["2024-W11"])
    week = served[served["week"] == "2024-W11"]
    top = np.sort(np.vstack(week["p"].to_numpy()), axis=1)[:, -2:]
    close = (top[:, 1] - top[:, 0]) < 0.1 - 1e-12
    assert len(queue) == int((close | week["ood"].to_numpy()).sum()) > 0
    assert list(queue.columns) == review_columns(task_of(project), ["key.kickoff", "key.home"])
    assert list(queue.columns)[-5:] == ["predicted_class", "score", "probabilities", "reason", "label"]
    doubt = queue["reason"].str.startswith("low certainty: the two likeliest classes are ")
    assert int(doubt.sum()) == int(close.sum())
    assert queue.loc[~doubt, "reason"].eq("out of distribution: rating=9 above the training maximum 3").all()
    by_request = week.set_index(week["i"].map(lambda i: f"req-{i}"))
    truth = _mature(games_table(n=240, seed=0))
    for row in queue.itertuples():
        game = by_request.loc[row.request_id]
        code = truth[int(game["i"])]
        assert row.label == (None if np.isnan(code) else CLASSES[int(code)])
        assert row.predicted_class == CLASSES[int(np.argmax(game["p"]))]
    assert queue["label"].notna().any()


# --- regression ----------------------------------------------------------------------------------------


def _half(times: pd.Series) -> list[str]:
    stamps = pd.DatetimeIndex(times)
    return [f"{t:%Y-%m}-{'a' if t.day <= 15 else 'b'}" for t in stamps]


@pytest.fixture(scope="module")
def readings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, pd.DataFrame]:
    """300 readings ingested, all served by v3 (predictions: the level plus noise); the writer keys
    each logged body with the project's request schema."""
    table = readings_table(n=300, seed=1)
    project = readings_project(tmp_path_factory.mktemp("readings") / "p", table, git=True)
    ingest(project, "2024-03", "2024-04")
    rng = np.random.default_rng(8)
    served = table.assign(prediction=np.round(table["level"] + rng.normal(2, 12, len(table)), 2))
    served["ood"] = np.arange(len(served)) % 17 == 0
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(served.to_dict("records")):
        rows.append(
            base_row(i, 3)
            | {
                "model_name": "level-in-30",
                "input": regression_input(r),
                "score": r["prediction"],
                "ood": bool(r["ood"]),
                "ood_reasons": [f"level={r['level']} above the training maximum 150"] if r["ood"] else [],
                "features": {"level": r["level"]},
            }
        )
    log_rows(project, rows, keyed_by_writer=True)
    return project, served


def test_regression_feedback_on_function_windows_matches_scikit_learn(
    readings: tuple[Project, pd.DataFrame], tmp_path: Path
) -> None:
    project, served = readings
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    project.config.monitoring.feedback.min_labels = 5
    halves = _half(served["at"])
    assert windows_in_log(project) == pd.Series(halves).value_counts().sort_index().to_dict()
    rows = read_window(project, "2024-03-b")
    assert rows["key.reading_id"].tolist() == served.loc[np.array(halves) == "2024-03-b", "reading_id"].tolist()
    summary = record_feedback(project)  # labels from the snapshot: the later level, 30 minutes on
    end = served["at"].max()
    mature = served["later"].notna() & (served["at"] + pd.Timedelta(minutes=30) <= end)
    assert summary.matched == summary.accepted == int(mature.sum()) and summary.unmatched == 0
    assert summary.immature >= 1
    assert [r.window for r in summary.results] == ["2024-03-a", "2024-03-b", "2024-04-a"]
    scored = 0
    for r in summary.results:
        part = served[np.array(halves) == r.window]
        lab = part[mature[part.index]]
        y, v = lab["later"].to_numpy(), lab["prediction"].to_numpy()
        m = r.metrics
        assert (r.predictions, r.labelled, r.unmatched_labels) == (len(part), len(lab), 0)
        assert r.primary_metric == "rmse" and r.live == m["rmse"]
        assert m["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, v)))
        assert m["mae"] == pytest.approx(mean_absolute_error(y, v))
        assert m["r2"] == pytest.approx(r2_score(y, v))
        assert m["bias"] == pytest.approx(float(np.mean(v - y)))
        assert (m["mean_label"], m["mean_prediction"]) == pytest.approx((y.mean(), v.mean()))
        assert r.calibration == [] and r.threshold is None
        assert r.kpi == {"metric": "mae", "name": "mean absolute error (mg/dL)", "value": m["mae"], "target": 12.0}
        day = pd.DatetimeIndex(part["at"]).strftime("%Y-%m-%d")
        for d in r.days:
            here = lab[pd.DatetimeIndex(lab["at"]).strftime("%Y-%m-%d") == d["day"]]
            assert (d["predictions"], d["labelled"]) == (int((day == d["day"]).sum()), len(here))
            if len(here) >= 5:
                assert d["rmse"] == pytest.approx(np.sqrt(mean_squared_error(here["later"], here["prediction"])))
                assert d["mae"] == pytest.approx(mean_absolute_error(here["later"], here["prediction"]))
                scored += 1
            else:
                assert d["rmse"] is None and d["mae"] is None
    assert scored > 5  # days with enough labels for a figure
    # the review queue of a regression model: out-of-distribution predictions, with their outcome
    queue = pd.read_parquet(summary.review_paths["2024-03-a"])
    first = served[np.array(halves) == "2024-03-a"]
    assert len(queue) == int(first["ood"].sum()) > 0
    assert list(queue.columns) == review_columns(task_of(project), ["key.reading_id"])
    assert queue["reason"].str.match(r"out of distribution: level=[\d.]+ above the training maximum 150").all()
    want = first["later"].where(mature[first.index])[first["ood"]].set_axis(first.loc[first["ood"], "reading_id"])
    assert queue["label"].tolist() == [None if np.isnan(want[k]) else want[k] for k in queue["key.reading_id"]]


def test_regression_feedback_from_a_labels_file(readings: tuple[Project, pd.DataFrame], tmp_path: Path) -> None:
    project, served = readings
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    picked = served.iloc[::3]
    path = tmp_path / "levels.csv"
    pd.DataFrame({"reading_id": picked["reading_id"], "label": picked["later"]}).to_csv(path, index=False)
    labels = load_labels(project, path, quarantine_dir=tmp_path / "q")
    assert labels.unlabelled == int(picked["later"].isna().sum())
    results = compute_feedback(project, labels, windows=["2024-03-a"])
    [r] = results
    part = picked[(np.array(_half(picked["at"])) == "2024-03-a") & picked["later"].notna()]
    assert r.labelled == len(part) and r.unmatched_labels is None
    assert r.metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(part["later"], part["prediction"])))
    assert json.loads(json.dumps(r.to_dict()))["metrics"]["rmse"] == pytest.approx(r.metrics["rmse"])


def test_rows_without_every_class_probability_are_counted_not_scored(tmp_path: Path) -> None:
    """A served multi-class row whose probabilities are missing or of the wrong length cannot be
    scored: it is counted (``unscored``) and its label does not enter the metrics."""
    table = games_table(n=40, seed=2)
    project = games_project(tmp_path / "games", table)
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    project.config.monitoring.feedback.min_labels = 5
    p = game_probabilities(table, seed=1)
    rows = [multiclass_row(i, r.kickoff, r.home, p[i], 1) for i, r in enumerate(table.itertuples())]
    rows[3]["probabilities"] = None
    rows[8]["probabilities"] = [0.5, 0.5]
    log_rows(project, rows)
    path = tmp_path / "results.csv"
    pd.DataFrame(
        {"kickoff": table["kickoff"].map(pd.Timestamp.isoformat), "home": table["home"], "result": table["result"]}
    ).to_csv(path, index=False)
    labels = load_labels(project, path, quarantine_dir=tmp_path / "q")
    week = _weeks(table["kickoff"])
    results = compute_feedback(project, labels)
    unscored = {r.window: r.metrics["unscored"] for r in results}
    assert unscored == {w: float(sum(week[i] == w for i in (3, 8))) for w in unscored}
    for r in results:
        mine = (week == r.window) & table["result"].notna().to_numpy()
        mine[[3, 8]] = False
        y = table.loc[mine, "result"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
        assert r.labelled == int(mine.sum()) and r.predictions == int((week == r.window).sum())
        assert r.metrics["log_loss"] == pytest.approx(log_loss(y, p[mine], labels=[0, 1, 2]))


def test_a_log_keyed_by_the_writer_and_by_the_producer_joins_alike(tmp_path: Path) -> None:
    """The writer keys served requests with the id's type (a timestamp); batch scoring gives the
    kickoff as Unix seconds (a number): files of both kinds in one log join the same labels."""
    table = games_table(n=60, seed=3)
    project = games_project(tmp_path / "games", table)
    project.config.monitoring.dir = str(tmp_path / "monitoring")
    project.config.monitoring.feedback.min_labels = 5
    p = game_probabilities(table, seed=2)
    rows = [multiclass_row(i, r.kickoff, r.home, p[i], 1) for i, r in enumerate(table.itertuples())]
    served = []
    for row, game in zip(rows[:30], table.itertuples(), strict=False):
        body = {"kickoff": game.kickoff.isoformat(), "home": game.home, "rating": float(game.rating)}
        served.append({k: v for k, v in row.items() if k not in ("event_time", "keys")} | {"input": json.dumps(body)})
    log_rows(project, served, keyed_by_writer=True)
    log_rows(project, rows[30:])
    kinds = {
        str(pd.read_parquet(f)["key.kickoff"].dtype)
        for f in Path(project.path(".noria/predictions")).rglob("*.parquet")
    }
    assert kinds == {"datetime64[us, UTC]", "float64"}
    path = tmp_path / "results.csv"
    results = table.assign(kickoff=table["kickoff"].map(pd.Timestamp.isoformat))[["kickoff", "home", "result"]]
    results.to_csv(path, index=False)
    labels = load_labels(project, path, quarantine_dir=tmp_path / "q")
    found = compute_feedback(project, labels)
    assert sum(r.predictions for r in found) == 60
    assert sum(r.labelled for r in found) == len(labels) == int(table["result"].notna().sum())
