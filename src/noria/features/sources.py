"""Feature tables: run the source functions on a snapshot, check and write one Parquet per view.

These files are what both offline engines read (Feast's file store and Noria's DuckDB join)
and what materialization copies into the online store, so every path sees the same rows.
A manifest records the snapshot id and definition hash they were computed from; they are
recomputed only when either changes.

``bucket: day`` views get a ``noria_day`` key (the UTC day of ``event_timestamp``) plus, for
every key and day, a carried-in copy of the key's latest earlier row, so the as-of join within
(key, day) finds exactly what a join over the whole history would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from noria import atomic
from noria.features.definitions import Definitions, FeatureDefinitionError

MANIFEST = "manifest.json"
_DAY_NS = 86_400 * 10**9


class SnapshotLike(Protocol):
    """What feature code needs from a data snapshot (:class:`noria.data.snapshots.Snapshot`)."""

    @property
    def id(self) -> str: ...

    def read(self, table: str, columns: list[str] | None = None) -> pd.DataFrame: ...


@dataclass
class SourceTables:
    """The per-view Parquet files and how they were made."""

    snapshot_id: str
    definition_hash: str
    paths: dict[str, Path]
    rows: dict[str, int]
    seconds: float
    reused: bool


def data_dir(defs: Definitions) -> Path:
    return defs.repo_dir / "data"


def prepare_sources(
    defs: Definitions, snapshot: SnapshotLike, *, force: bool = False, on_step: Callable[[str], None] | None = None
) -> SourceTables:
    """The feature tables for ``snapshot``: reused when already computed from it, else computed."""
    folder = data_dir(defs)
    manifest = _read_manifest(folder)
    views = list(defs.config.feature_views)
    paths = {v: folder / f"{v}.parquet" for v in views}
    if (
        not force
        and manifest.get("snapshot_id") == snapshot.id
        and manifest.get("definition_hash") == defs.definition_hash
        and all(p.is_file() for p in paths.values())
    ):
        return SourceTables(snapshot.id, defs.definition_hash, paths, manifest.get("rows", {}), 0.0, reused=True)
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for source_name, _source in defs.config.sources.items():
        users = [v for v, spec in defs.config.feature_views.items() if spec.source == source_name]
        if not users:
            continue
        if on_step:
            on_step(f"source {source_name}")
        output = run_source(defs, source_name, snapshot)
        for view in users:
            table, dropped[view] = view_table(defs, view, output)
            _write_parquet_atomic(table, paths[view])
            rows[view] = table.num_rows
    record = {
        "snapshot_id": snapshot.id,
        "definition_hash": defs.definition_hash,
        "rows": rows,
        "dropped_null_keys": dropped,
        "written_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    atomic.write_json(folder / MANIFEST, record, indent=2, sort_keys=True)
    return SourceTables(snapshot.id, defs.definition_hash, paths, rows, time.perf_counter() - start, reused=False)


def run_source(defs: Definitions, name: str, snapshot: SnapshotLike) -> pd.DataFrame:
    """Call a source function on the snapshot tables it declares."""
    source = defs.config.sources[name]
    tables = {t: snapshot.read(t, columns=list(cols)) for t, cols in source.tables.items()}
    fn = defs.functions[source.function]
    try:
        output = fn(tables, **source.params)
    except KeyError as exc:
        raise FeatureDefinitionError(
            f"source {name!r}: {source.function} used column {exc} which it does not declare under"
            f" tables ({json.dumps(source.tables)})",
            fix=f"add the column to features.sources.{name}.tables or stop using it",
        ) from exc
    except Exception as exc:
        raise FeatureDefinitionError(
            f"source {name!r}: {source.function} failed: {type(exc).__name__}: {exc}",
            fix=f"fix {source.function} (it gets the declared tables and params {source.params})",
        ) from exc
    if not isinstance(output, pd.DataFrame):
        raise FeatureDefinitionError(
            f"source {name!r}: {source.function} returned {type(output).__name__}, not a pandas DataFrame",
            fix="return a DataFrame with the entity keys, event_timestamp and the features",
        )
    return output


def view_table(defs: Definitions, view: str, output: pd.DataFrame) -> tuple[pa.Table, int]:
    """Check a source output against the view, type it, bucket it; (Arrow table, rows dropped)."""
    spec = defs.config.feature_views[view]
    keys = [defs.config.entities[e].key(e) for e in spec.entities]
    needed = [*keys, "event_timestamp", *spec.features]
    missing = [c for c in needed if c not in output.columns]
    if missing:
        raise FeatureDefinitionError(
            f"feature view {view!r}: source {spec.source!r} did not return column {missing[0]!r}"
            f" (it returned: {', '.join(map(str, output.columns))})",
            fix=f"return {missing[0]!r} from {defs.config.sources[spec.source].function} or fix the feature name",
        )
    frame = output[needed].copy()
    ts = frame["event_timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise FeatureDefinitionError(
            f"feature view {view!r}: event_timestamp from source {spec.source!r} is {ts.dtype}, not a UTC timestamp",
            fix="return a timezone-aware timestamp (e.g. pd.to_datetime(..., utc=True))",
        )
    frame["event_timestamp"] = ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    null_keys = frame[keys].isna().any(axis=1) | frame["event_timestamp"].isna()
    frame = frame[~null_keys]
    for key in keys:
        kind = defs.config.entities[next(e for e in spec.entities if defs.config.entities[e].key(e) == key)].type
        frame[key] = frame[key].astype("int64") if kind == "int" else frame[key].astype(str)
    for name, fs in spec.features.items():
        frame[name] = _typed(frame[name], fs.type, f"feature view {view!r}: feature {name!r}")
    dup = frame.duplicated([*keys, "event_timestamp"])
    if dup.any():
        example = frame.loc[dup, [*keys, "event_timestamp"]].iloc[0].to_dict()
        raise FeatureDefinitionError(
            f"feature view {view!r}: source {spec.source!r} returned {int(dup.sum())} rows with the same keys and"
            f" event_timestamp (e.g. {example}); an as-of join would pick one at random",
            fix="return one row per entity key and event_timestamp",
        )
    if spec.bucket == "day":
        frame = bucket_by_day(frame, keys, spec.ttl_delta)
    frame = frame.sort_values([*keys, "event_timestamp"], kind="stable").reset_index(drop=True)
    return pa.Table.from_pandas(frame, preserve_index=False), int(null_keys.sum())


def _typed(values: pd.Series, kind: str, owner: str) -> pd.Series:
    try:
        if kind == "int":
            return pd.to_numeric(values).astype("Int64")
        if kind == "float":
            return pd.to_numeric(values).astype("float64")
        if kind == "bool":
            return values.astype("boolean")
        return pd.Series(_objects(values), index=values.index, dtype=object)
    except (TypeError, ValueError) as exc:
        raise FeatureDefinitionError(
            f"{owner} is declared {kind} but its values are not ({exc})", fix="fix the type in the feature config"
        ) from None


def bucket_by_day(frame: pd.DataFrame, keys: list[str], ttl: timedelta | None) -> pd.DataFrame:
    """Add ``noria_day`` and the carried-in rows (see the module doc)."""
    frame = frame.copy()
    frame["noria_day"] = utc_day(frame["event_timestamp"])
    if frame.empty or ttl is None:  # the config requires a TTL with bucket: day
        return frame
    last = frame.sort_values("event_timestamp", kind="stable").groupby([*keys, "noria_day"], sort=False).tail(1)
    # Per key, a carried-in row for every day from the day after its first row to the last day
    # on which its last row is still within the TTL: later days could only get expired values.
    spans_of = frame.groupby(keys, sort=False).agg(first=("noria_day", "min"), last=("event_timestamp", "max"))
    firsts = spans_of["first"].to_numpy(dtype=np.int64)
    spans = np.maximum(utc_day(spans_of["last"] + ttl) - firsts, 0)
    grid = spans_of.index.to_frame(index=False)
    grid = grid.loc[grid.index.repeat(spans)].reset_index(drop=True)
    grid["noria_day"] = np.repeat(firsts, spans) + _ranges(spans) + 1
    grid["prev_day"] = grid["noria_day"] - 1
    carried = pd.merge_asof(
        grid.sort_values("prev_day"),
        last.rename(columns={"noria_day": "row_day"}).sort_values("row_day"),
        left_on="prev_day",
        right_on="row_day",
        by=keys,
        direction="backward",
    ).drop(columns=["prev_day", "row_day"])
    carried = carried[carried["event_timestamp"].notna()]
    oldest = carried["noria_day"].to_numpy(dtype=np.int64) * _DAY_NS - int(ttl.total_seconds()) * 10**9
    carried = carried[_epoch_ns(carried["event_timestamp"]) >= oldest]
    carried = carried.astype(frame.dtypes.to_dict())
    return pd.concat([frame, carried[frame.columns]], ignore_index=True)


def _objects(values: pd.Series) -> np.ndarray:
    out: np.ndarray = values.to_numpy(dtype=object)
    out[np.asarray(values.isna(), dtype=bool)] = None
    return out


def _epoch_ns(timestamps: pd.Series) -> np.ndarray:
    ns: np.ndarray = timestamps.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return ns


def utc_day(timestamps: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 (UTC) of tz-aware timestamps, as int64."""
    days: np.ndarray = ((timestamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    return days


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """[0..n0-1, 0..n1-1, ...] without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    ranges: np.ndarray = np.arange(total, dtype=np.int64) - starts
    return ranges


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    with atomic.temp_path(path) as tmp:
        pq.write_table(table, tmp, coerce_timestamps="us")
