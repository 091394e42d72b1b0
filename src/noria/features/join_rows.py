"""The rows every offline join engine reads and writes: entity rows in, one joined row per entity row out.

An engine (:mod:`noria.features.join_engine`) gets the entity rows as :func:`entity_table` makes
them (``noria_row``, the prediction time ``event_timestamp``, the join keys typed by
:func:`entity_schema`) and each feature view's Parquet as :func:`noria.features.sources.view_table`
writes it; it gives back, per view, one row per entity row: ``noria_row``, the view's features and
``noria_feature_ts`` (the timestamp of the row the values came from, null when none).
:func:`view_values` turns that into arrays in entity-row order with the TTL applied and the
matches counted, so masking, typing and counting are one piece of code whatever the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from noria.features.definitions import Definitions, FeatureDefinitionError
from noria.features.transform import Arrays


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
    """Every feature of ``views`` for no entity row at all."""
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
