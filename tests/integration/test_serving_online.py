"""The service on the reference flights project: features from the real Feast online store (SQLite),
computed by the same code as the training set; a model trained on that training set, served
from the real MLflow registry. The vector the service logs for a flight equals the flight's
training-set row.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.unit.serving.serving_support import KEY, flights_project, make_migrated_db, model_matrix, register

from noria.config import Project
from noria.serving.app import create_app
from noria.serving.config import ServingConfig
from noria.serving.predlog import FEATURE_PREFIX, read_prediction_log


@pytest.fixture(scope="module")
def online(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from noria.features.online import materialize
    from noria.features.repo import apply
    from noria.features.training_set import build_training_set

    tmp = tmp_path_factory.mktemp("online")
    project, snap = flights_project(tmp / "flights", make_migrated_db(None, tmp))
    apply(project, snapshot=snap)
    frame = build_training_set(project, "2013-01", "2013-01", snapshot=snap).frame
    features = [c for c in frame.columns if c in set(_service_features(project))]
    labeled = frame[frame["label"].notna()]
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "num_leaves": 15, "min_data_in_leaf": 20},
        lgb.Dataset(model_matrix(labeled, features), labeled["label"].astype(int)),
        num_boost_round=30,
    )
    register(project, lgb.Booster(model_str=booster.model_to_string()))
    day = frame[frame["day"] == 7]
    when = day["event_timestamp"].value_counts().index[0]  # a busy departure minute
    sample = day[day["event_timestamp"] == when].head(4)
    materialize(project, when.to_pydatetime(), snapshot=snap)
    return {"project": project, "sample": sample, "features": features, "booster": booster, "tmp": tmp}


def _service_features(project: Project) -> list[str]:
    from noria.features.definitions import load_definitions

    return load_definitions(project).service().features


def _api_flight(row: pd.Series) -> dict[str, Any]:
    when = row["time_hour"] + pd.Timedelta(minutes=int(row["sched_dep_time"]) % 100)
    return {
        "carrier": row["carrier"],
        "flight": int(row["flight"]) if "flight" in row and pd.notna(row.get("flight")) else 1,
        "origin": row["origin"],
        "dest": row["dest"],
        "tailnum": row["tailnum"],
        "scheduled_departure": when.tz_convert("America/New_York").isoformat(),
        "distance": float(row["distance"]),
    }


@pytest.mark.integration
def test_predict_looks_features_up_online_exactly_as_the_training_set_has_them(online: dict[str, Any]) -> None:
    project, sample, features = online["project"], online["sample"], online["features"]
    config = ServingConfig.model_validate(
        {"prediction_log": {"dir": str(online["tmp"] / "log")}, "poll_seconds": 0, "online_features": "on"}
    )
    app = create_app(project, config=config, environ={"NORIA_API_KEYS": KEY})
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        assert c.get("/ready").json()["online_store"] == "sqlite"
        body = c.post("/predict", json={"flights": [_api_flight(r) for _, r in sample.iterrows()]}).json()
        single = c.post("/predict", json=_api_flight(sample.iloc[0])).json()
        assert "noria_feature_lookup_duration_seconds_count 2.0" in c.get("/metrics").text
    expected = online["booster"].predict(model_matrix(sample, features), num_threads=1)
    np.testing.assert_allclose([p["probability"] for p in body["predictions"]], expected, atol=1e-6)
    assert single["probability"] == pytest.approx(expected[0], abs=1e-6)
    log = read_prediction_log(online["tmp"] / "log")
    logged = log[log["request_id"] == body["request_id"]].sort_values("row").reset_index(drop=True)
    for name in features:
        offline = sample[name].reset_index(drop=True)
        online_values = logged[FEATURE_PREFIX + name]
        if offline.dtype == object:
            assert list(online_values.where(online_values.notna(), None)) == list(offline), name
        else:
            np.testing.assert_allclose(online_values.astype(float), offline.astype(float), equal_nan=True, err_msg=name)
    assert logged["lookup_ms"].notna().all()


@pytest.mark.integration
def test_the_read_cache_answers_repeats_with_the_same_predictions(online: dict[str, Any]) -> None:
    project, sample, features = online["project"], online["sample"], online["features"]
    config = ServingConfig.model_validate(
        {
            "prediction_log": {"enabled": False},
            "poll_seconds": 0,
            "online_features": "on",
            "feature_cache": {"seconds": 60},
        }
    )
    app = create_app(project, config=config, environ={"NORIA_API_KEYS": KEY})
    flights = {"flights": [_api_flight(r) for _, r in sample.iterrows()]}
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        first = c.post("/predict", json=flights).json()
        second = c.post("/predict", json=flights).json()
        metrics = c.get("/metrics").text
    expected = online["booster"].predict(model_matrix(sample, features), num_threads=1)
    for body in (first, second):
        np.testing.assert_allclose([p["probability"] for p in body["predictions"]], expected, atol=1e-6)
    hits = float(metrics.split('noria_feature_cache_lookups_total{result="hit"} ')[1].split()[0])
    misses = float(metrics.split('noria_feature_cache_lookups_total{result="miss"} ')[1].split()[0])
    assert misses > 0 and hits >= misses  # the second batch came from the cache, whole
    assert "noria_feature_cache_entries " in metrics


_CHANGE_TEMP = """
import sqlite3, sys
from feast.protos.feast.types.Value_pb2 import Value
conn = sqlite3.connect(sys.argv[1])
tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
changed = 0
for table in tables:
    for rowid, data in conn.execute(f'SELECT rowid, value FROM "{table}" WHERE feature_name = ?', ("temp",)).fetchall():
        value = Value.FromString(data)
        setattr(value, value.WhichOneof("val"), 123.0)
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE rowid = ?', (value.SerializeToString(), rowid))
        changed += 1
conn.commit()
print(changed)
"""


@pytest.mark.integration
def test_the_default_cache_sees_another_process_change_the_store_at_once(online: dict[str, Any]) -> None:
    """By default reads are cached until SQLite says the store changed (its data_version): repeats
    come from the cache, and a write committed by another process (here a plain sqlite3 client
    rewriting Feast's ``temp`` values) shows in the very next answer, not seconds later.

    Runs before the broken-store test and leaves ``temp`` changed: the tests after it do not use it.
    """
    import subprocess
    import sys

    from noria.features.definitions import load_definitions
    from noria.features.repo import open_store

    project, sample = online["project"], online["sample"]
    config = ServingConfig.model_validate(
        {"prediction_log": {"dir": str(online["tmp"] / "log-changes")}, "poll_seconds": 0, "online_features": "on"}
    )
    app = create_app(project, config=config, environ={"NORIA_API_KEYS": KEY})
    flight = _api_flight(sample.iloc[0])
    db = open_store(load_definitions(project)).config.online_store.path
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        ids = [c.post("/predict", json=flight).json()["request_id"] for _ in range(3)]
        before = c.get("/metrics").text
        done = subprocess.run(
            [sys.executable, "-c", _CHANGE_TEMP, str(project.root / db)], capture_output=True, text=True
        )
        assert done.returncode == 0 and int(done.stdout) > 0, done.stderr
        ids.append(c.post("/predict", json=flight).json()["request_id"])
        after = c.get("/metrics").text
    hits = float(before.split('noria_feature_cache_lookups_total{result="hit"} ')[1].split()[0])
    assert hits > 0  # the repeats came from the cache
    assert "noria_feature_cache_store_changes_total 1.0" in after
    log = read_prediction_log(online["tmp"] / "log-changes").set_index("request_id")
    temps = [float(log.loc[i, FEATURE_PREFIX + "temp"]) for i in ids]
    assert temps[:3] == [float(sample.iloc[0]["temp"])] * 3 and temps[3] == 123.0


@pytest.mark.integration
def test_a_broken_online_store_is_a_503_naming_it_not_a_guess(online: dict[str, Any]) -> None:
    """Runs last: it breaks the module's online store."""
    project, sample = online["project"], online["sample"]
    config = ServingConfig.model_validate({"prediction_log": {"enabled": False}, "poll_seconds": 0})
    app = create_app(project, config=config, environ={"NORIA_API_KEYS": KEY})
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {KEY}"
        assert c.post("/predict", json=_api_flight(sample.iloc[0])).status_code == 200
        store = project.path(".noria/feast/online.db")
        with sqlite3.connect(store) as db:  # the tables vanish under the service's open connection
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                db.execute(f'DROP TABLE "{table}"')
        r = c.post("/predict", json=_api_flight(sample.iloc[0]))
        assert r.status_code == 503 and "online feature store" in r.json()["error"]["message"]
        # Inline features still work: nothing is looked up when the request brings them all.
        inline = {
            name: None if pd.isna(v) else (v if isinstance(v, str) else float(v))
            for name, v in sample.iloc[0][online["features"]].items()
        }
        assert c.post("/predict", json={**_api_flight(sample.iloc[0]), "features": inline}).status_code == 200
