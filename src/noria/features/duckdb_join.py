"""The point-in-time join on DuckDB (``features.offline_engine: duckdb``, the default): one machine.

For each entity row and feature view, DuckDB's ``ASOF LEFT JOIN ... ON keys AND entity.ts >= view.ts``
finds the view's latest row with the same keys stamped at or before the prediction time (a key
that is null matches nothing); :func:`noria.features.join_rows.view_values` then masks values
older than the view's TTL. These are exactly the semantics of Feast's file offline store on the
same Parquet files, many times faster, and every entity row is kept (rows without a match get
missing values and are counted). A build's join is written to Parquet by DuckDB itself
(``COPY ... TO``, sorted by entity row) within ``features.duckdb.memory_limit``, spilling beyond it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noria.features.definitions import Definitions
from noria.features.join_rows import PredictionWindow, empty_lookup, entity_table, prediction_window, view_values
from noria.features.transform import Arrays


class DuckDBJoin:
    """The ``duckdb`` join engine (see :class:`noria.features.join_engine.JoinEngine`)."""

    name = "duckdb"
    method = "duckdb-asof"  # what lineage records say joined the rows

    def require(self) -> None:
        """Nothing to check: DuckDB is one of Noria's own dependencies."""

    def join_files(
        self,
        defs: Definitions,
        views: list[str],
        entity_path: Path,
        paths: dict[str, Path],
        window: PredictionWindow,
        folder: Path,
        *,
        timings: dict[str, float],
        details: dict[str, Any],
    ) -> dict[str, Path]:
        return duckdb_join_files(defs, views, entity_path, paths, window, folder)

    def lookup(
        self,
        defs: Definitions,
        views: list[str],
        keys: Arrays,
        ts: np.ndarray,
        paths: dict[str, Path],
        matched: dict[str, int],
        *,
        timings: dict[str, float],
        details: dict[str, Any],
    ) -> Arrays:
        return asof_join(defs, views, keys, ts, paths, matched)


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
