"""Offline retrieval: point-in-time correct features for rows held in memory, by any join engine.

For each entity row (one event to predict) and feature view, the value is that of the view's latest row
with the same keys and ``event_timestamp <= prediction time``, and only if
``event_timestamp >= prediction time - ttl`` (TTL 0 = forever). These are exactly the
semantics of Feast's file offline store (``get_historical_features``) on the same Parquet
files; the join engines (:mod:`noria.features.join_engine`: DuckDB by default, Spark) compute
them many times faster and, unlike Feast's file store, keep every entity row (rows without a
match get missing values and are counted).

:func:`historical_features` holds everything in memory (a request, a test, a few days). A
training-set build of any size (:mod:`noria.features.training_set`) stages its entity rows as
Parquet and lets the engine write each view's join to Parquet itself, then reads it back chunk by
chunk; both go through the request and feature code here, so only the join differs by engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from noria.features.definitions import Definitions, ServicePlan
from noria.features.feast_offline import feast_join
from noria.features.join_engine import join_engine
from noria.features.transform import (
    Arrays,
    derived_features,
    numeric,
    prediction_times,
    request_arrays,
    request_features,
    typed_columns,
)

# The join engines (features.offline_engine), and Feast's file offline store: a reference for checks and
# benchmarks (same values, much slower), not an engine a project chooses.
Engine = Literal["duckdb", "feast", "spark"]


@dataclass
class Retrieval:
    """A point-in-time join's result: the typed frame plus, per view, how many rows matched."""

    frame: pd.DataFrame
    matched: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # what the engine ran on (Spark: versions, master)


def plan_join_keys(defs: Definitions, plan: ServicePlan) -> list[str]:
    """Every join key the plan's feature views need, once each."""
    return list(dict.fromkeys(k for view in plan.batch_views for k in defs.join_keys(view)))


def entity_keys(
    defs: Definitions,
    plan: ServicePlan,
    cols: Arrays,
    features: Arrays,
    ts: np.ndarray,
    names: list[str] | None = None,
) -> Arrays:
    """Join-key arrays for the plan's feature views (request columns or request features; noria_day)."""
    keys: Arrays = {}
    for key in names if names is not None else plan_join_keys(defs, plan):
        if key == "noria_day":
            keys[key] = ts.astype("datetime64[D]").astype(np.int64)
        else:
            keys[key] = cols[key] if key in cols else features[key]
    return keys


def historical_features(
    defs: Definitions,
    plan: ServicePlan,
    rows: pd.DataFrame,
    paths: dict[str, Path],
    *,
    engine: Engine = "duckdb",
    feast_store: Any = None,
) -> Retrieval:
    """Features of ``plan`` for every row of ``rows`` (request columns), as of each row's prediction time.

    The frame has one row per input row, in the same order: ``event_timestamp`` then the
    plan's features with their declared types. ``engine="spark"`` joins on Spark (settings:
    ``features.spark``; same values); ``engine="feast"`` joins with Feast's file offline store
    (same values, much slower; ``feast_store`` = an applied FeatureStore). Everything is held in
    memory: a training set of any size is built chunk by chunk by
    :func:`noria.features.training_set.build_training_set` instead.
    """
    # Feast's file store is the reference, not a join engine (see Engine); an unknown engine or a missing
    # extra fails before any work.
    joiner = None if engine == "feast" else join_engine(engine)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cols, ts, values = request_stage(defs, plan, rows)
    keys = entity_keys(defs, plan, cols, values, ts)
    timings["request_features"] = time.perf_counter() - start

    start = time.perf_counter()
    matched: dict[str, int] = {}
    details: dict[str, Any] = {}
    if joiner is None:
        looked_up = feast_join(defs, feast_store, plan.batch_views, keys, ts, matched)
    else:
        looked_up = joiner.lookup(defs, plan.batch_views, keys, ts, paths, matched, timings=timings, details=details)
    timings["asof_join"] = time.perf_counter() - start

    start = time.perf_counter()
    frame = features_frame(defs, plan, cols, ts, values, looked_up, rows.index)
    timings["derived_features"] = time.perf_counter() - start
    return Retrieval(frame=frame, matched=matched, timings=timings, details=details)


def request_stage(defs: Definitions, plan: ServicePlan, rows: pd.DataFrame) -> tuple[Arrays, np.ndarray, Arrays]:
    """The request columns as arrays, each row's prediction time and the plan's request features."""
    cols = request_arrays(defs, rows)
    ts = prediction_times(defs, cols)
    return cols, ts, request_features(defs, plan, cols)


def features_frame(
    defs: Definitions,
    plan: ServicePlan,
    cols: Arrays,
    ts: np.ndarray,
    values: Arrays,
    looked_up: Arrays,
    index: pd.Index,
) -> pd.DataFrame:
    """``event_timestamp`` and the plan's features, typed: request features + looked-up values + derived."""
    values = values | {k: numeric(v) for k, v in looked_up.items()}
    needed = {**cols, **values}
    derived_features(defs, plan, needed)
    values.update({d: needed[d] for d in plan.derived})
    return pd.DataFrame(
        {"event_timestamp": pd.DatetimeIndex(ts).tz_localize("UTC"), **typed_columns(defs, plan, values)},
        index=index,
    )
