"""The point-in-time join on Spark (``features.offline_engine: spark``): the DuckDB engine's values, on one
machine or a cluster.

Everything before and after the join is shared with the default engine: the source functions
(pandas) have already written each view's Parquet file (timestamps in microseconds, which is
what Spark reads), the entity rows are staged as Parquet, and Spark writes each view's joined
rows to Parquet itself (sorted by entity row, never collected to the driver), which the build
then reads back chunk by chunk through the same masking, typing and derived features. Only the
as-of join itself runs on Spark, as built-in SQL functions (no Python code on the executors):

for each view, the entity rows (``noria_row``, prediction time, join keys) and the view's rows
are stacked; a window per join key, ordered by time with a view row before an entity row
stamped the same instant, carries the latest view row (``max`` of a struct that starts with its
timestamp) to each entity row; rows older than ``prediction time - ttl`` are dropped. This is
``ASOF LEFT JOIN ... ON keys AND entity.ts >= view.ts`` without a range join, so it scales
with the number of rows, not with rows x history; ``bucket: day`` views add the UTC day to the
key, which also spreads one busy key (an airport) over many window partitions. A view row whose
key is null is never a match (as in SQL, and in the DuckDB engine).

pyspark is optional (``pip install pyspark``, Java 17+); an active session (``spark-submit``,
a notebook on a cluster) is used as it is, otherwise one is started from ``features.spark``
and stopped afterwards.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from noria.errors import ExternalToolError, MissingExtraError
from noria.features.config import SparkSpec
from noria.features.definitions import Definitions
from noria.features.join_rows import (
    PredictionWindow,
    empty_lookup,
    entity_schema,
    entity_table,
    prediction_window,
    view_values,
)
from noria.features.staged import joined_count_error, joined_rows, staging_dir
from noria.features.transform import Arrays

INSTALL = "pip install 'pyspark>=4.0'"
MIN_VERSION = (4, 0)


def pyspark_modules(
    user: str = "the Spark offline engine (features.offline_engine: spark)",
    instead: str = "use features.offline_engine: duckdb",
) -> tuple[Any, Any, Any]:
    """``(pyspark.sql, pyspark.sql.functions, pyspark.sql.window.Window)``, or a clear error.

    ``user`` names what needs Spark and ``instead`` what works without it (batch scoring calls
    this too, with its own words).
    """
    try:
        pyspark = importlib.import_module("pyspark")
        sql = importlib.import_module("pyspark.sql")
        functions = importlib.import_module("pyspark.sql.functions")
        window = importlib.import_module("pyspark.sql.window")
    except ImportError:
        raise MissingExtraError(
            f"{user} needs pyspark, which is not installed",
            fix=f"{INSTALL} (it also needs Java 17 or later), or {instead}",
        ) from None
    version = tuple(int(p) for p in str(pyspark.__version__).split(".")[:2] if p.isdigit())
    if version < MIN_VERSION:
        raise MissingExtraError(
            f"{user} needs pyspark 4.0 or later, found {pyspark.__version__}",
            fix=f"{INSTALL} (Spark 4 needs Java 17 or later)",
        )
    return sql, functions, window.Window


def session_settings(spec: SparkSpec) -> dict[str, str]:
    """The Spark settings Noria starts a session with: small and quiet by default, ``conf`` on top."""
    return {
        "spark.driver.memory": spec.driver_memory,
        "spark.sql.shuffle.partitions": str(spec.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        **spec.conf,
    }


@contextmanager
def spark_session(spec: SparkSpec) -> Iterator[tuple[Any, bool]]:
    """``(session, started_here)``: the active Spark session if there is one (left running), else a new
    one from ``spec`` (stopped afterwards)."""
    sql, _, _ = pyspark_modules()
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        yield active, False
        return
    builder = sql.SparkSession.builder.appName(spec.app_name)
    if spec.master:
        builder = builder.master(spec.master)
    for key, value in session_settings(spec).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: no Java, a bad JAVA_HOME, an unreachable master
        raise ExternalToolError(
            f"cannot start Spark (master {spec.master or 'from spark-submit'}): {type(exc).__name__}: {exc}",
            fix="install Java 17+ (or set JAVA_HOME) and check features.spark.master",
        ) from None
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session, True
    finally:
        session.stop()


def _pyspark_version() -> str:
    return str(importlib.import_module("pyspark").__version__)


class SparkJoin:
    """The ``spark`` join engine (see :class:`noria.features.join_engine.JoinEngine`)."""

    name = "spark"
    method = "spark-window-asof"  # what lineage records say joined the rows

    def require(self) -> None:
        """A clear error (:class:`MissingExtraError`, naming the install command) when pyspark is missing."""
        pyspark_modules()

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
        return spark_join_files(defs, views, entity_path, paths, window, folder, timings=timings, details=details)

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
        """The entity rows staged as Parquet, joined by :func:`spark_join_files` and read back (held in
        memory; a training set of any size goes through ``join_files`` chunk by chunk)."""
        pyspark_modules()  # fail before any work when pyspark is missing
        if len(ts) == 0:
            return empty_lookup(defs, views)
        out: Arrays = {}
        with staging_dir(defs) as folder:
            entity_path = folder / "entity_rows.parquet"
            pq.write_table(entity_table(keys, ts, schema=entity_schema(defs, views, paths)), entity_path)
            joined = spark_join_files(
                defs, views, entity_path, paths, prediction_window(ts), folder, timings=timings, details=details
            )
            for view in views:
                table = joined_rows(joined[view])
                if table.num_rows != len(ts):
                    raise joined_count_error(view, table.num_rows, len(ts))
                out |= view_values(defs, view, table, ts, matched)
        return out


def spark_join_files(
    defs: Definitions,
    views: list[str],
    entity_path: Path,
    paths: dict[str, Path],
    window: PredictionWindow,
    folder: Path,
    *,
    timings: dict[str, float] | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Each view's as-of join of the entity rows staged in ``entity_path``, written by Spark itself
    (``DataFrame.write.parquet``) to a folder per view in ``folder``: nothing is collected to the
    driver. Each task's part file is sorted by ``noria_row`` (``sortWithinPartitions``: no global
    sort, no second shuffle); :func:`~noria.features.staged.joined_batches` merges the parts back
    into entity-row order chunk by chunk. ``timings`` gets ``spark_session``, ``details`` what ran
    the join."""
    pyspark_modules()
    out: dict[str, Path] = {}
    started = time.perf_counter()
    with spark_session(defs.config.spark) as (session, started_here):
        if timings is not None:
            timings["spark_session"] = time.perf_counter() - started
        if details is not None:
            details["spark"] = {
                "pyspark": _pyspark_version(),
                "spark": str(session.version),
                "master": str(session.conf.get("spark.master", "unknown")),
                "session": "started" if started_here else "active",
            }
        entity = session.read.parquet(entity_path.resolve().as_uri())
        for view in views:
            target = folder / f"{view}.joined"
            result = _view_join(defs, session, view, entity, paths[view], window)
            result.sortWithinPartitions("noria_row").write.parquet(target.resolve().as_uri())
            out[view] = target
    return out


def _view_join(defs: Definitions, session: Any, view: str, entity: Any, path: Path, window: PredictionWindow) -> Any:
    """One view's as-of join as a Spark DataFrame: ``noria_row``, the features and ``noria_feature_ts``,
    one row per entity row."""
    _, F, Window = pyspark_modules()  # noqa: N806 (pyspark's conventional names)
    spec = defs.config.feature_views[view]
    key_cols = defs.join_keys(view)
    rows = session.read.parquet(path.resolve().as_uri())
    # As in the DuckDB engine: only rows that can be matches reach the shuffle (a null key equals nothing).
    rows = rows.where(F.unix_micros("event_timestamp") <= window.last_us)
    for key in key_cols:
        rows = rows.where(F.col(f"`{key}`").isNotNull())
    if spec.bucket == "day":
        rows = rows.where(F.col("noria_day").between(window.first_day, window.last_day))
    value = F.struct(
        F.col("event_timestamp").alias("noria_feature_ts"), *[F.col(f"`{f}`") for f in spec.features]
    ).alias("noria_value")
    view_rows = rows.select(
        *[F.col(f"`{k}`") for k in key_cols],
        F.unix_micros("event_timestamp").alias("noria_at"),
        F.lit(0).alias("noria_kind"),
        F.lit(None).cast("long").alias("noria_row"),
        value,
    )
    value_type = view_rows.schema["noria_value"].dataType
    entity_rows = entity.select(
        *[F.col(f"`{k}`").cast(view_rows.schema[k].dataType).alias(k) for k in key_cols],
        F.unix_micros("event_timestamp").alias("noria_at"),
        F.lit(1).alias("noria_kind"),
        F.col("noria_row"),
        F.lit(None).cast(value_type).alias("noria_value"),
    )
    # View rows sort before entity rows of the same instant: a value stamped t is usable at t.
    upto = (
        Window.partitionBy(*[F.col(f"`{k}`") for k in key_cols])
        .orderBy("noria_at", "noria_kind")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    latest = F.max("noria_value").over(upto)  # the struct starts with the (per key unique) timestamp
    joined = view_rows.unionByName(entity_rows).withColumn("noria_latest", latest).where(F.col("noria_kind") == 1)
    ttl = spec.ttl_delta
    if ttl is not None:
        oldest = F.col("noria_at") - int(ttl.total_seconds()) * 1_000_000
        fresh = F.unix_micros(F.col("noria_latest.noria_feature_ts")) >= oldest
        joined = joined.withColumn("noria_latest", F.when(fresh, F.col("noria_latest")))
    names = [*spec.features, "noria_feature_ts"]
    result = joined.select("noria_row", *[F.col("noria_latest").getField(n).alias(n) for n in names])
    return result
