"""Offline retrieval: point-in-time correct training sets, joined by DuckDB.

For each entity row (one event to predict) and feature view, the value is that of the view's latest row
with the same keys and ``event_timestamp <= prediction time``, and only if
``event_timestamp >= prediction time - ttl`` (TTL 0 = forever). These are exactly the
semantics of Feast's file offline store (``get_historical_features``) on the same Parquet
files; DuckDB's ``ASOF LEFT JOIN`` computes them many times faster and, unlike Feast's file
store, keeps every entity row (rows without a match get missing values and are counted).
:mod:`noria.features.spark` does the same join on Spark; both hand their per-view result to
:func:`view_values`, so the TTL mask and the types are applied by one piece of code.

:func:`historical_features` holds everything in memory (a request, a test, a few days). A
training-set build of any size (:mod:`noria.features.training_set`) stages its entity rows as
Parquet and lets the engine write each view's join to Parquet itself (:func:`duckdb_join_files`,
within ``features.duckdb.memory_limit``), then reads it back chunk by chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from noria.features.definitions import Definitions, FeatureDefinitionError, ServicePlan
from noria.features.transform import (
    Arrays,
    derived_features,
    numeric,
    prediction_times,
    request_arrays,
    request_features,
    typed_columns,
)

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
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cols, ts, values = request_stage(defs, plan, rows)
    keys = entity_keys(defs, plan, cols, values, ts)
    timings["request_features"] = time.perf_counter() - start

    start = time.perf_counter()
    matched: dict[str, int] = {}
    details: dict[str, Any] = {}
    if engine == "feast":
        from noria.features.feast_offline import feast_join

        looked_up = feast_join(defs, feast_store, plan.batch_views, keys, ts, matched)
    elif engine == "spark":
        from noria.features.spark import spark_asof_join

        looked_up = spark_asof_join(defs, plan.batch_views, keys, ts, paths, matched, timings, details)
    else:
        looked_up = asof_join(defs, plan.batch_views, keys, ts, paths, matched)
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


def asof_join(
    defs: Definitions,
    views: list[str],
    keys: Arrays,
    ts: np.ndarray,
    paths: dict[str, Path],
    matched: dict[str, int],
) -> Arrays:
    """DuckDB ASOF LEFT JOIN of the entity rows with each view's Parquet; TTL applied; row order kept."""
    import duckdb

    if len(ts) == 0:
        return empty_lookup(defs, views)
    entity = entity_table(keys, ts)
    out: Arrays = {}
    window = prediction_window(ts)
    with duckdb.connect() as con:
        con.register("entity_rows", entity)
        for view in views:
            result = con.sql(view_join_sql(defs, view, "entity_rows", paths[view], window)).to_arrow_table()
            out |= view_values(defs, view, result, ts, matched)
    return out


def view_join_sql(defs: Definitions, view: str, entity: str, path: Path, window: PredictionWindow) -> str:
    """DuckDB SQL of one view's as-of join: ``noria_row``, the features and ``noria_feature_ts``, one
    row per entity row (of the relation ``entity``: ``noria_row``, ``event_timestamp``, join keys)."""
    spec = defs.config.feature_views[view]
    join = " AND ".join(f'e."{k}" = f."{k}"' for k in defs.join_keys(view))
    selected = ", ".join(f'f."{c}"' for c in spec.features)
    # Only rows that can be as-of matches: not after the last prediction time, and for
    # day-bucketed views only the days predictions fall in.
    last = pd.Timestamp(window.last_us, unit="us").isoformat() + "Z"
    where = f"event_timestamp <= '{last}'::TIMESTAMPTZ"
    if spec.bucket == "day":
        where += f" AND noria_day BETWEEN {window.first_day} AND {window.last_day}"
    return (
        f"SELECT e.noria_row, {selected}, f.event_timestamp AS noria_feature_ts"
        f" FROM {entity} e ASOF LEFT JOIN (SELECT * FROM read_parquet({sql_text(str(path))}) WHERE {where}) f"
        f" ON {join} AND e.event_timestamp >= f.event_timestamp"
    )


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def duckdb_join_files(
    defs: Definitions,
    views: list[str],
    entity_path: Path,
    paths: dict[str, Path],
    window: PredictionWindow,
    folder: Path,
) -> dict[str, Path]:
    """Each view's as-of join of the entity rows staged in ``entity_path``, written by DuckDB itself to one
    Parquet file per view in ``folder``, sorted by ``noria_row``: nothing comes back into Python, and
    DuckDB stays within ``features.duckdb.memory_limit`` by spilling to its temp directory."""
    import duckdb

    spec = defs.config.duckdb
    spill = defs.project.path(spec.temp_directory) if spec.temp_directory else folder / "duckdb_spill"
    spill.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"memory_limit": spec.memory_limit, "temp_directory": str(spill)}
    if spec.threads is not None:
        config["threads"] = spec.threads
    out: dict[str, Path] = {}
    entity = f"read_parquet({sql_text(str(entity_path))})"
    with duckdb.connect(config=config) as con:
        for view in views:
            target = folder / f"{view}.joined.parquet"
            query = view_join_sql(defs, view, entity, paths[view], window)
            con.execute(f"COPY ({query} ORDER BY e.noria_row) TO {sql_text(str(target))} (FORMAT parquet)")
            out[view] = target
    return out


def entity_table(keys: Arrays, ts: np.ndarray, first_row: int = 0, schema: pa.Schema | None = None) -> pa.Table:
    """The entity rows as Arrow: ``noria_row`` (input position, from ``first_row``), ``event_timestamp``
    (UTC, µs), join keys (cast to ``schema``'s types when given: see :func:`entity_schema`)."""
    table = pa.table(
        {
            "noria_row": pa.array(np.arange(first_row, first_row + len(ts), dtype=np.int64)),
            "event_timestamp": pa.array(ts.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")),
            **{k: pa.array(v, from_pandas=True) for k, v in keys.items()},
        }
    )
    if schema is None:
        return table
    for key in keys:
        column, wanted = table.column(key), schema.field(key).type
        if column.type == wanted:
            continue
        try:
            column = column.cast(wanted)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise FeatureDefinitionError(
                f"join key {key!r} is {column.type} in the request rows but {wanted} in the feature tables: {exc}",
                fix=f"make the source function (or request view) give {key!r} one type on both sides",
            ) from None
        table = table.set_column(table.schema.get_field_index(key), key, column)
    return table


def entity_schema(defs: Definitions, views: list[str], paths: dict[str, Path]) -> pa.Schema:
    """The entity rows' Arrow schema: ``noria_row``, ``event_timestamp`` and each join key typed as the
    (first) view file holding it stores it, so the rows are written chunk by chunk with one schema and
    every engine compares keys of one type (a key missing in every row would otherwise be Arrow's
    null type, and a nullable int key float)."""
    import pyarrow.parquet as pq

    fields = [pa.field("noria_row", pa.int64()), pa.field("event_timestamp", pa.timestamp("us", tz="UTC"))]
    seen: set[str] = set()
    for view in views:
        stored = pq.read_schema(paths[view])
        for key in defs.join_keys(view):
            if key not in seen:
                seen.add(key)
                fields.append(pa.field(key, stored.field(key).type))
    return pa.schema(fields)


@dataclass(frozen=True)
class PredictionWindow:
    """The span of the prediction times: feature rows outside it can never be as-of matches."""

    last_us: int  # the last prediction time, microseconds since the epoch (UTC)
    first_day: int  # UTC days since the epoch
    last_day: int


def prediction_window(ts: np.ndarray, widen: PredictionWindow | None = None) -> PredictionWindow:
    """The window of ``ts`` (not empty), widened to hold ``widen`` too (chunk by chunk)."""
    days = ts.astype("datetime64[D]").astype(np.int64)
    last_us = int(ts.max().astype("datetime64[us]").astype(np.int64))
    window = PredictionWindow(last_us=last_us, first_day=int(days.min()), last_day=int(days.max()))
    if widen is None:
        return window
    return PredictionWindow(
        last_us=max(window.last_us, widen.last_us),
        first_day=min(window.first_day, widen.first_day),
        last_day=max(window.last_day, widen.last_day),
    )


def empty_lookup(defs: Definitions, views: list[str]) -> Arrays:
    return {f: np.zeros(0) for v in views for f in defs.config.feature_views[v].features}


def view_values(defs: Definitions, view: str, result: pa.Table, ts: np.ndarray, matched: dict[str, int]) -> Arrays:
    """One view's join result (``noria_row``, features, ``noria_feature_ts``; one row per entity row,
    in any order) as arrays in entity-row order, values older than the TTL masked; counts matches."""
    spec = defs.config.feature_views[view]
    # Back to entity-row order (cheaper than ORDER BY in SQL).
    order = np.argsort(result.column("noria_row").to_numpy(), kind="stable")
    result = result.take(pa.array(order))
    feature_ts = result.column("noria_feature_ts").to_numpy().astype("datetime64[ns]")
    valid = ~np.isnat(feature_ts)
    ttl = spec.ttl_delta
    if ttl is not None:
        valid &= feature_ts >= ts - np.timedelta64(int(ttl.total_seconds()), "s")
    matched[view] = int(valid.sum())
    out: Arrays = {}
    for feature, fs in spec.features.items():
        column = result.column(feature).to_numpy(zero_copy_only=False)
        out[feature] = _mask(column, valid, fs.type)
    return out


def _mask(values: np.ndarray, valid: np.ndarray, kind: str) -> np.ndarray:
    if valid.all():
        return values
    if kind == "str" or values.dtype == object:
        values = values.astype(object)
        values[~valid] = None
        return values
    values = values.astype(np.float64)
    values[~valid] = np.nan
    return values
