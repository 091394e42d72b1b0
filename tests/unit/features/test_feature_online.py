"""Online lookups: the serving vector equals the training row; unknown entities and stale or
not-yet-known values come back missing and flagged; bad requests get a clear error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from noria.config import Project
from noria.errors import NotFoundError, ValidationError
from noria.features.online import materialize, online_features, open_online_store
from noria.features.training_set import build_training_set
from noria.features.transform import RequestColumns

REQUEST = ["year", "month", "day", "sched_dep_time", "time_hour", "carrier", "tailnum", "origin", "dest", "distance"]


def as_request(row: pd.Series) -> dict[str, Any]:
    out = {c: row[c] for c in REQUEST}
    out["time_hour"] = row["time_hour"].isoformat()
    return {k: (None if v is pd.NA else v.item() if hasattr(v, "item") else v) for k, v in out.items()}


@pytest.fixture(scope="module")
def online_project(new_flights_project: Any) -> tuple[Project, Any, Any]:
    project, snap = new_flights_project("online")
    training = build_training_set(project, "2013-01", "2013-01", snapshot=snap)
    return project, snap, training.frame


def test_open_before_apply_is_a_clear_error(flights_project: Project) -> None:
    with pytest.raises(NotFoundError, match="not applied yet"):
        open_online_store(flights_project)


def test_online_vector_equals_offline_row(online_project: tuple[Project, Any, Any]) -> None:
    project, snap, frame = online_project
    store = None
    for day in (5, 9):
        # The busiest departure minute of the day: many flights share one prediction time.
        flights = frame[frame["day"] == day]
        when = flights["event_timestamp"].value_counts().index[0]
        sample = flights[flights["event_timestamp"] == when]
        assert len(sample) >= 5
        # The online store as it was at the prediction time: materialized up to that moment.
        materialize(project, when.to_pydatetime(), snapshot=snap)
        store = store or open_online_store(project)
        features = store.plan.features
        records = [as_request(row) for _, row in sample.iterrows()]
        vectors = online_features(store, records)
        offline = sample[features].reset_index(drop=True)
        pd.testing.assert_frame_equal(vectors.to_frame(), offline, check_dtype=True)
        # the same requests as columns (how the service hands them on) give the same vectors
        columns = RequestColumns({c: [r[c] for r in records] for c in REQUEST}, len(records))
        assert list(columns) == records and list(columns[1:3]) == records[1:3]
        pd.testing.assert_frame_equal(online_features(store, columns).to_frame(), offline, check_dtype=True)
        assert vectors.missing == [[f for f in features if pd.isna(offline.at[i, f])] for i in range(len(sample))]
        assert offline.notna().sum().sum() > 0.9 * offline.size
    assert store is not None and len(store.plan.features) == 33


def test_unknown_entities_are_missing_and_flagged(online_project: tuple[Project, Any, Any]) -> None:
    project, snap, frame = online_project
    row = frame[(frame["day"] == 10) & frame["plane_seats"].notna()].iloc[-1]
    materialize(project, row["event_timestamp"].to_pydatetime(), snapshot=snap)
    store = open_online_store(project)
    request = as_request(row) | {"carrier": "ZZ", "origin": "XYZ", "tailnum": None}
    vectors = online_features(store, [as_request(row), request])
    looked_up = [f for f in store.plan.features if store.defs.features[f].kind in ("batch", "derived")]
    assert set(vectors.missing[1]) == set(looked_up)
    assert not set(vectors.missing[0]) & {"temp", "carrier_late_rate_7d", "plane_seats"}
    record = vectors.to_records()[1]
    assert record["carrier"] == "ZZ" and record["route"] == "XYZ-" + row["dest"]
    assert record["temp"] is None and record["plane_seats"] is None
    assert np.isnan(vectors.values["route_late_rate_7d"][1])


def test_stale_and_future_values_are_refused(online_project: tuple[Project, Any, Any]) -> None:
    project, snap, frame = online_project
    day = frame[frame["day"] == 9].sort_values("event_timestamp")
    noon = day[day["event_timestamp"].dt.hour == 17].iloc[0]  # noon in New York
    materialize(project, noon["event_timestamp"].to_pydatetime(), snapshot=snap)
    store = open_online_store(project)
    morning = day[day["event_timestamp"] < noon["event_timestamp"] - pd.Timedelta(hours=2)].iloc[-1]
    evening = as_request(noon) | {"time_hour": (noon["time_hour"] + pd.Timedelta(hours=5)).isoformat()}
    vectors = online_features(store, [as_request(morning), evening])
    # Morning: the store holds values stamped after the prediction time -> refused, not leaked.
    assert {"temp", "origin_late_rate_7d"} <= set(vectors.missing[0])
    # Evening: the latest weather is more than the 3 h TTL old -> missing; the 35-day rates still hold.
    assert "temp" in vectors.missing[1] and "origin_late_rate_7d" not in vectors.missing[1]


def test_bad_requests(online_project: tuple[Project, Any, Any]) -> None:
    project, _, frame = online_project
    store = open_online_store(project)
    good = as_request(frame.iloc[0])
    with pytest.raises(ValidationError, match="lacks column.*distance"):
        online_features(store, [{k: v for k, v in good.items() if k != "distance"}])
    with pytest.raises(ValidationError, match="'year' must be int"):
        online_features(store, [good | {"year": "twenty"}])
    with pytest.raises(ValidationError, match="'carrier'.*may not be missing"):
        online_features(store, [good | {"carrier": None}])
    lacking = RequestColumns({k: [v] for k, v in good.items() if k not in ("distance", "dest")}, 1)
    with pytest.raises(ValidationError, match="lacks column.*dest, distance"):
        online_features(store, lacking)
    with pytest.raises(ValidationError, match="'year' must be int"):
        online_features(store, RequestColumns({k: [v, "twenty" if k == "year" else v] for k, v in good.items()}, 2))


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count_reads(store: Any) -> list[list[int]]:
    """Spy on the store's reader: per read of the online store, the number of entity keys of each view."""
    reads: list[list[int]] = []
    real = store.reader.read

    def counted(wanted: Any) -> Any:
        reads.append([len(keys) for _, keys in wanted])
        return real(wanted)

    store.reader.read = counted
    return reads


def test_a_batch_reads_each_distinct_key_once(online_project: tuple[Project, Any, Any]) -> None:
    project, snap, frame = online_project
    flights = frame[frame["day"] == 6]
    when = flights["event_timestamp"].value_counts().index[0]
    sample = flights[flights["event_timestamp"] == when]
    materialize(project, when.to_pydatetime(), snapshot=snap)
    store = open_online_store(project)
    reads = _count_reads(store)
    requests = [as_request(row) for _, row in sample.iterrows()]
    vectors = online_features(store, requests + requests)  # every key twice
    assert store.reader.kind == "sqlite"
    assert len(reads) == 1 and len(reads[0]) == len(store.views)  # one read of the store for every view
    origins = sample["origin"].nunique()
    weather = next(i for i, view in enumerate(store.views) if "temp" in view.features)
    assert reads[0][weather] == origins < len(sample)  # one airport-hour each, not one per flight
    assert sum(reads[0]) < 2 * len(sample) * len(store.views)
    once = online_features(open_online_store(project), requests).to_frame()
    doubled = vectors.to_frame()
    pd.testing.assert_frame_equal(doubled.iloc[: len(requests)].reset_index(drop=True), once)
    pd.testing.assert_frame_equal(doubled.iloc[len(requests) :].reset_index(drop=True), once)


def _afternoon_and_night(online_project: tuple[Project, Any, Any]) -> tuple[Project, Any, pd.Series, pd.Series]:
    """A flight at 14:00 and one at 22:00 of one day, the store materialized up to the first."""
    project, snap, frame = online_project
    day = frame[frame["day"] == 8].sort_values("event_timestamp")
    early = day[day["event_timestamp"].dt.hour == 14].iloc[0]
    late = day[day["event_timestamp"].dt.hour == 22].iloc[0]
    materialize(project, early["event_timestamp"].to_pydatetime(), snapshot=snap)
    return project, snap, early, late


def test_read_cache_serves_repeats_and_expires(online_project: tuple[Project, Any, Any]) -> None:
    """A time-limited cache (what a store that cannot say it changed gets, e.g. Redis): within its
    lifetime a cached read answers without the store, even after a new materialization (the
    documented staleness); the usability rule still runs at each request's time; after the
    lifetime the store is read again and the new values appear."""
    from noria.features.lookup import ReadCache

    project, snap, early, late = _afternoon_and_night(online_project)
    clock = _Clock()
    cache = ReadCache(5.0, clock=clock, until_changed=False)
    store = open_online_store(project, cache=cache)
    reads = _count_reads(store)
    request = as_request(early)
    first = online_features(store, [request]).to_frame()
    assert reads == [[1] * len(store.views)] and cache.misses == len(store.views) and cache.hits == 0
    again = online_features(store, [request]).to_frame()
    assert len(reads) == 1 and cache.hits == len(store.views)  # no new store read
    pd.testing.assert_frame_equal(again, first)
    # An hour earlier: the cached weather is stamped after that moment -> refused, as without a cache.
    before = request | {"time_hour": (early["time_hour"] - pd.Timedelta(hours=1)).isoformat()}
    assert "temp" in online_features(store, [before]).missing[0]

    later = as_request(late) | {"origin": early["origin"]}
    materialize(project, late["event_timestamp"].to_pydatetime(), snapshot=snap)
    fresh = online_features(open_online_store(project), [later]).to_frame()
    cached = online_features(store, [later])
    assert "temp" in cached.missing[0]  # the cached 14:00 weather is older than the 3 h TTL at 22:00
    clock.now += 5.0  # the lifetime is over: read again
    pd.testing.assert_frame_equal(online_features(store, [later]).to_frame(), fresh)
    assert pd.notna(fresh.at[0, "temp"])


def test_read_cache_keeps_sqlite_reads_until_feast_changes_the_store(online_project: tuple[Project, Any, Any]) -> None:
    """The default cache on SQLite: repeats answer from the cache with no time limit, and a
    materialization (another connection, as Feast's own) is seen by the very next lookup: the
    cache drops everything when SQLite's data_version moves, so it never answers stale."""
    from noria.features.lookup import ReadCache

    project, snap, early, late = _afternoon_and_night(online_project)
    clock = _Clock()
    cache = ReadCache(clock=clock)  # until_changed, no lifetime
    store = open_online_store(project, cache=cache)
    assert store.cache is cache and store.reader.kind == "sqlite"
    reads = _count_reads(store)
    request = as_request(early)
    first = online_features(store, [request]).to_frame()
    clock.now += 86_400.0  # no lifetime: a day later the read still answers
    for _ in range(3):
        pd.testing.assert_frame_equal(online_features(store, [request]).to_frame(), first)
    assert len(reads) == 1 and cache.hits == 3 * len(store.views) and cache.changes == 0

    later = as_request(late) | {"origin": early["origin"]}
    assert "temp" in online_features(store, [later]).missing[0]  # the cached 14:00 weather is past the TTL at 22:00
    materialize(project, late["event_timestamp"].to_pydatetime(), snapshot=snap)
    fresh = online_features(open_online_store(project), [later]).to_frame()
    assert pd.notna(fresh.at[0, "temp"])
    pd.testing.assert_frame_equal(online_features(store, [later]).to_frame(), fresh)  # at once: not stale
    # The store changed: every view of the request is read again, the ones cached a moment ago too.
    assert len(reads) == 3 and reads[-1] == [1] * len(store.views) and cache.changes == 1


def test_a_store_that_cannot_say_it_changed_gets_no_untimed_cache(online_project: tuple[Project, Any, Any]) -> None:
    """A reader without ``version`` (Redis, Feast's own online_read): a cache with no lifetime would
    answer stale forever, so the lookup drops it; one with a lifetime is kept."""
    from noria.features import lookup
    from noria.features.lookup import OnlineLookup, ReadCache

    project, snap, frame = online_project
    materialize(project, frame["event_timestamp"].max().to_pydatetime(), snapshot=snap)
    store = open_online_store(project)

    class Plain:  # a reader that cannot say when the store changed
        kind = "feast"

        def __init__(self, reader: Any) -> None:
            self.read = reader.read

    real = lookup.open_reader
    try:
        lookup.open_reader = lambda *args: Plain(real(*args))  # type: ignore[assignment]
        assert OnlineLookup(store.defs, cache=ReadCache()).cache is None
        timed = ReadCache(5.0)
        assert OnlineLookup(store.defs, cache=timed).cache is timed
    finally:
        lookup.open_reader = real  # type: ignore[assignment]


def test_read_cache_bounds_its_entries() -> None:
    from noria.features.lookup import ReadCache

    clock = _Clock()
    cache = ReadCache(10.0, max_entries=3, clock=clock)
    for n in range(5):
        cache.put("weather", ("EWR", n), (n, [float(n)]))
        clock.now += 1
    assert len(cache) == 3
    assert cache.get("weather", ("EWR", 0)) is not None and cache.misses == 1  # evicted: unknown
    assert cache.get("weather", ("EWR", 4)) == (4, [4.0])
    cache.put("weather", ("JFK", 0), None)  # absent from the store: cached as absent
    assert cache.get("weather", ("JFK", 0)) is None and cache.hits == 2
    clock.now += 10
    assert cache.get("weather", ("EWR", 4)) is not None and cache.misses == 2
    with pytest.raises(ValueError):
        ReadCache(0)
    with pytest.raises(ValueError):
        ReadCache(until_changed=False)  # neither a lifetime nor a store's word: nothing to go by
    cache.validate(7)
    assert len(cache) == 0 and cache.changes == 0  # the first version seen: nothing changed yet
    cache.put("weather", ("EWR", 9), (9, [9.0]))
    cache.validate(7)
    assert len(cache) == 1
    cache.validate(8)
    assert len(cache) == 0 and cache.changes == 1
    cache.put("weather", ("EWR", 9), (9, [9.0]))
    cache.reset()  # handed to a lookup on another connection: its versions are not comparable
    assert len(cache) == 0
    cache.validate(8)
    assert cache.changes == 1  # a first version again, not a change
