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
        vectors = online_features(store, [as_request(row) for _, row in sample.iterrows()])
        offline = sample[features].reset_index(drop=True)
        pd.testing.assert_frame_equal(vectors.to_frame(), offline, check_dtype=True)
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
