"""The offline point-in-time join behind one interface: :class:`JoinEngine`, chosen by name.

``features.offline_engine`` (or ``engine=`` / ``--engine``) names the engine; :func:`join_engine`
gives it, or a clear error for an unknown name or a missing extra. Two engines, one contract
(tests/integration/test_join_engine_contract.py runs the same cases on both):

- ``duckdb`` (:class:`noria.features.duckdb_join.DuckDBJoin`, the default): one machine, within
  ``features.duckdb.memory_limit``;
- ``spark`` (:class:`noria.features.spark.SparkJoin`): PySpark, local or a cluster (``features.spark``);
  needs ``pip install 'pyspark>=4.0'`` and Java 17+.

Everything before and after the join is shared (:mod:`noria.features.join_rows`): the entity rows
go in as :func:`~noria.features.join_rows.entity_table` makes them, each view's rows as
:func:`noria.features.sources.view_table` writes them (one row per keys and timestamp, no null key,
TTL and ``bucket`` in ``defs.config.feature_views``), and what comes back is read through
:func:`~noria.features.join_rows.view_values`, which applies the TTL, types and counts the values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from noria.errors import ConfigError
from noria.features.definitions import Definitions
from noria.features.duckdb_join import DuckDBJoin
from noria.features.join_rows import PredictionWindow
from noria.features.spark import SparkJoin
from noria.features.transform import Arrays

CONFIG_KEY = "features.offline_engine"


class JoinEngine(Protocol):
    """An offline point-in-time join: for each entity row and feature view, the values of the view's latest
    row with the same join keys stamped at or before the row's prediction time (``event_timestamp``),
    missing when there is none, when a key is null, or when that row is older than the view's TTL.

    A row stamped exactly at the prediction time is used; a later one never is. Entity rows are
    never dropped, merged or reordered: two rows with the same keys and time both get the value.
    """

    name: str  # the value of features.offline_engine that chooses it
    method: str  # what a training set's lineage record says joined its rows

    def require(self) -> None:
        """Raise :class:`~noria.errors.MissingExtraError` (naming the install command) if the engine
        cannot run here; called before any work."""
        ...

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
        """Join the entity rows staged in ``entity_path`` (Parquet, :func:`~noria.features.join_rows.entity_schema`)
        with each of ``views`` (``paths[view]``: its Parquet), writing the result into ``folder`` without
        holding it in memory. ``window`` spans the prediction times (rows outside it may be skipped).

        Returns, per view, a Parquet file, or a folder of part files, each sorted by ``noria_row``:
        ``noria_row``, the view's features and ``noria_feature_ts``, exactly one row per entity row
        (values may come back older than the TTL: the reader masks them). ``timings`` and ``details``
        get what the engine wants recorded (Spark: session start; versions, master).
        """
        ...

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
        """The same join held in memory: entity rows given as join-key arrays ``keys`` and prediction times
        ``ts`` (``datetime64``, UTC, may be empty); returns every feature of ``views`` as an array in
        entity-row order, TTL applied (NaN / None where missing); ``matched[view]`` = rows with values."""
        ...


# The engines by name: the values features.offline_engine allows (noria.features.config.OfflineEngine).
ENGINES: dict[str, Callable[[], JoinEngine]] = {"duckdb": DuckDBJoin, "spark": SparkJoin}


def join_engine(name: str) -> JoinEngine:
    """The engine called ``name``, ready to run: an unknown name is a :class:`~noria.errors.ConfigError`
    naming the key and the choices; an engine whose extra is missing raises
    :class:`~noria.errors.MissingExtraError` naming the install command."""
    make = ENGINES.get(name)
    if make is None:
        raise ConfigError(
            f"{CONFIG_KEY} (or --engine): {name!r} is not an offline join engine; choose one of {', '.join(ENGINES)}",
            fix="use engine='duckdb' (default, one machine) or engine='spark' (PySpark, local or a cluster):"
            f" set {CONFIG_KEY} in noria.yaml, NORIA_FEATURES__OFFLINE_ENGINE, or --engine",
        )
    engine = make()
    engine.require()
    return engine


__all__ = ["CONFIG_KEY", "ENGINES", "JoinEngine", "join_engine"]
