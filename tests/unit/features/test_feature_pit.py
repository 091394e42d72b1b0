"""Point-in-time correctness as a property: random feature and event timestamps, never a future value.

A tiny project with one feature view is joined by Noria's offline path (source checks, day
buckets with carried-in rows, DuckDB ASOF join, TTL) and compared with a brute-force
reference: the latest row of the same key with ``t - ttl <= ts <= t``, else missing.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from noria.config import Project, load_project
from noria.features.config import FeaturesConfig
from noria.features.definitions import load_definitions
from noria.features.offline import historical_features
from noria.features.sources import _write_parquet_atomic, view_table

BASE = pd.Timestamp("2013-03-09T20:00:00Z")  # spans a DST change in New York, irrelevant in UTC
HORIZON_MIN = 4 * 24 * 60
TTLS = [None, "45m", "6h", "2d"]

NORIA_YAML = textwrap.dedent(
    """\
    project: pit
    data:
      source: {kind: directory, path: raw}
      tables:
        events:
          file: events.csv
          primary_key: [key, ts]
          columns:
            key: {type: str}
            ts: {type: timestamp}
            outcome: {type: float, nullable: true}
        obs:
          file: obs.csv
          primary_key: [key, ts]
          columns:
            key: {type: str}
            ts: {type: timestamp}
            value: {type: float}
    model:
      target: {table: events, column: outcome, threshold: 0}
    """
)
CODE = textwrap.dedent(
    """\
    def when(columns):
        return columns["ts"]


    def observations(tables):
        return tables["obs"].rename(columns={"ts": "event_timestamp"})
    """
)


@pytest.fixture(scope="module")
def pit_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root: Path = tmp_path_factory.mktemp("pit")
    (root / "noria.yaml").write_text(NORIA_YAML)
    (root / "pit_features.py").write_text(CODE)
    return load_project(root, environ={})


def features_config(ttl: str | None, bucket: str) -> FeaturesConfig:
    return FeaturesConfig.model_validate(
        {
            "request": {"table": "events", "columns": ["key", "ts"], "timestamp": "pit_features:when"},
            "entities": {"key": {}},
            "sources": {"obs": {"function": "pit_features:observations", "tables": {"obs": ["key", "ts", "value"]}}},
            "feature_views": {
                "v": {"source": "obs", "entities": ["key"], "ttl": ttl, "bucket": bucket, "features": {"value": {}}}
            },
            "services": {"s": {"features": ["v"]}},
        }
    )


def reference(obs: pd.DataFrame, events: pd.DataFrame, ttl: timedelta | None) -> np.ndarray:
    """The slow definition: for each event, the latest row of its key within [t - ttl, t]."""
    out = np.full(len(events), np.nan)
    for i, (key, t) in enumerate(zip(events["key"], events["ts"], strict=True)):
        rows = obs[(obs["key"] == key) & (obs["ts"] <= t)]
        if ttl is not None:
            rows = rows[rows["ts"] >= t - ttl]
        if len(rows):
            out[i] = rows.loc[rows["ts"].idxmax(), "value"]
    return out


minutes = st.integers(min_value=0, max_value=HORIZON_MIN)
keys = st.sampled_from(["a", "b", "c"])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    obs_rows=st.lists(st.tuples(keys, minutes), min_size=0, max_size=40, unique=True),
    event_rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "zz"]), minutes), min_size=1, max_size=40),
    ttl_bucket=st.sampled_from([(t, b) for t in TTLS for b in ("none", "day") if t or b == "none"]),
)
@example(obs_rows=[("a", 0)], event_rows=[("a", 2600), ("a", 0), ("b", 5)], ttl_bucket=("2d", "day"))  # carried 2 days
def test_as_of_join_matches_reference_and_never_leaks(
    pit_project: Project,
    tmp_path_factory: pytest.TempPathFactory,
    obs_rows: list[tuple[str, int]],
    event_rows: list[tuple[str, int]],
    ttl_bucket: tuple[str | None, str],
) -> None:
    ttl, bucket = ttl_bucket
    defs = load_definitions(pit_project, features_config(ttl, bucket))
    plan = defs.service()
    obs = pd.DataFrame(
        {
            "key": [k for k, _ in obs_rows],
            "ts": [BASE + pd.Timedelta(minutes=m) for _, m in obs_rows],
            "value": np.arange(len(obs_rows), dtype=float),  # a value identifies its row
        }
    )
    obs["ts"] = pd.to_datetime(obs["ts"], utc=True)
    events = pd.DataFrame(
        {
            "key": [k for k, _ in event_rows],
            "ts": pd.to_datetime([BASE + pd.Timedelta(minutes=m) for _, m in event_rows], utc=True),
        }
    )
    table, dropped = view_table(defs, "v", obs.rename(columns={"ts": "event_timestamp"}))
    assert dropped == 0
    path = tmp_path_factory.mktemp("v") / "v.parquet"
    _write_parquet_atomic(table, path)

    result = historical_features(defs, plan, events, {"v": path})

    got = result.frame["value"].to_numpy()
    expected = reference(obs, events, features_config(ttl, bucket).feature_views["v"].ttl_delta)
    np.testing.assert_array_equal(got, expected)
    assert len(result.frame) == len(events)  # no entity row lost, duplicates included
    # Never a future value: every value found comes from a row stamped at or before the event.
    stamp_of = dict(zip(obs["value"], obs["ts"], strict=True))
    for value, t in zip(got, events["ts"], strict=True):
        if not np.isnan(value):
            assert stamp_of[value] <= t
    assert result.matched["v"] == int((~np.isnan(expected)).sum())
