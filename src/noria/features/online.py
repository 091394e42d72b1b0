"""Online features: materialize the feature tables into the online store, look up request rows.

Serving calls one function, :func:`online_features`, with a store opened once by
:func:`open_online_store`. It computes the prediction time, request-view features and join
keys with the same code the training sets use (:mod:`noria.features.transform`), reads the
feature views from Feast's online store (SQLite or Redis; :mod:`noria.features.lookup`),
applies the same TTL rule as the offline join, refuses values stamped after the prediction
time, then computes derived features. Unknown entities give missing values, flagged per row.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from noria.config import Project
from noria.errors import ConfigError, NotFoundError
from noria.features.definitions import Definitions, ServicePlan, load_definitions
from noria.features.lookup import OnlineLookup, ReadCache
from noria.features.materialized import next_state, plan, read_state, write_state
from noria.features.offline import entity_keys
from noria.features.repo import APPLIED_FILE, ensure_applied, open_store
from noria.features.sources import SnapshotLike, prepare_sources
from noria.features.transform import (
    Arrays,
    derived_features,
    prediction_times,
    request_arrays,
    request_features,
    typed_columns,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class MaterializeResult:
    until: datetime
    views: list[str]
    keys: dict[str, int]  # entity keys with a value as of ``until``, per view
    snapshot_id: str
    seconds: float
    online_store: str
    # Per view, where the load started: None = from the beginning (a new snapshot or definitions,
    # or no record in the store); a time = only later events (the store held the rest already).
    since: dict[str, str | None] = field(default_factory=dict)


def parse_time(value: str | datetime | pd.Timestamp) -> datetime:
    """A UTC datetime from ISO text (naive = UTC), ``now`` (this moment), or a datetime."""
    if isinstance(value, str) and value.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{value!r} is not a timestamp", fix="write it as ISO 8601, e.g. 2013-07-01 or 2013-07-01T12:00Z, or now"
        ) from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def materialize(
    project: Project,
    until: str | datetime,
    *,
    snapshot: SnapshotLike | None = None,
    snapshot_id: str | None = None,
    views: list[str] | None = None,
) -> MaterializeResult:
    """Load every online view's latest values as of ``until`` into the online store."""
    start = time.perf_counter()
    end = parse_time(until)
    defs = load_definitions(project)
    if snapshot is None:
        from noria.data.snapshots import open_snapshot

        snapshot = open_snapshot(project, snapshot_id)
    sources = prepare_sources(defs, snapshot)
    ensure_applied(defs, sources)
    names = views or [v for v, spec in defs.config.feature_views.items() if spec.online]
    unknown = [v for v in names if v not in defs.config.feature_views]
    if unknown:
        raise NotFoundError(
            f"no feature view {unknown[0]!r}", fix=f"choose among {', '.join(defs.config.feature_views)}"
        )
    store = open_store(defs)
    state = read_state(store)
    starts = plan(state, snapshot.id, defs.definition_hash, names, end)
    groups: dict[datetime | None, list[str]] = {}
    for view, since in starts.items():
        groups.setdefault(since, []).append(view)
    with contextlib.redirect_stdout(io.StringIO()):
        for since, group in groups.items():
            if since is None or since < end:  # a view loaded up to ``end`` already has nothing new
                store.materialize(start_date=since or EPOCH, end_date=end, feature_views=group)
    write_state(store, next_state(state, snapshot.id, defs.definition_hash, names, end))
    keys = {}
    for view in names:
        frame = pd.read_parquet(sources.paths[view], columns=[*defs.join_keys(view), "event_timestamp"])
        frame = frame[frame["event_timestamp"] <= pd.Timestamp(end)]
        keys[view] = len(frame.drop_duplicates(defs.join_keys(view)))
    return MaterializeResult(
        until=end,
        views=names,
        keys=keys,
        snapshot_id=snapshot.id,
        seconds=time.perf_counter() - start,
        online_store=defs.config.online_store.type,
        since={view: (since.isoformat() if since else None) for view, since in starts.items()},
    )


@dataclass
class FeatureVectors:
    """Feature values of a batch of requests: arrays by name, plus what is missing per row."""

    features: list[str]
    values: dict[str, np.ndarray]
    event_timestamp: np.ndarray  # prediction times, datetime64[ns] UTC
    missing: list[list[str]]  # per row: features without a value (unknown entity, too old, not yet known)
    defs: Definitions
    plan: ServicePlan

    def __len__(self) -> int:
        return len(self.event_timestamp)

    def to_frame(self) -> pd.DataFrame:
        """The features with their declared types, exactly as the training set holds them."""
        return pd.DataFrame(typed_columns(self.defs, self.plan, self.values))

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per row with declared types; missing values are None (JSON-friendly)."""
        casts = {"int": int, "float": float, "bool": bool, "str": str}
        columns = {name: self.values[name].tolist() for name in self.features}
        out = []
        for i in range(len(self)):
            row: dict[str, Any] = {}
            for name in self.features:
                value = columns[name][i]
                missing = value is None or value != value  # None or NaN
                row[name] = None if missing else casts[self.defs.features[name].type](value)
            out.append(row)
        return out


def open_online_store(project: Project, service: str | None = None, *, cache: ReadCache | None = None) -> OnlineLookup:
    """Open the project's online store for lookups (call once; reuse for every request).

    ``cache``: keep recent reads for a few seconds (:class:`noria.features.lookup.ReadCache`).
    """
    defs = load_definitions(project)
    if not (defs.repo_dir / APPLIED_FILE).is_file() and defs.config.online_store.type == "sqlite":
        # A SQLite store is a file this project's own apply and materialize create: none, no values.
        raise NotFoundError(
            f"the feature store of project {project.config.project!r} is not applied yet",
            fix="run `noria features apply` and `noria features materialize --until TS`",
        )
    # A shared store (Redis) is filled by other processes (on a cluster, the features CronJob): a
    # serving pod starts with no local registry and registers the same definitions to read it.
    ensure_applied(defs)
    return OnlineLookup(defs, service, cache=cache)


def online_features(store: OnlineLookup, rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> FeatureVectors:
    """The service's features for request rows, computed/looked up exactly as in training sets."""
    defs, plan = store.defs, store.plan
    cols = request_arrays(defs, rows)
    ts = prediction_times(defs, cols)
    values: Arrays = request_features(defs, plan, cols)
    keys = entity_keys(defs, plan, cols, values, ts, store.join_keys)
    if store.refs:
        values.update(store.read(keys, ts))
    needed = {**cols, **values}
    derived_features(defs, plan, needed)
    out = {name: needed[name] for name in plan.features}
    missing: list[list[str]] = [[] for _ in range(len(ts))]
    for name in plan.features:
        for i, value in enumerate(out[name].tolist()):
            if value is None or value != value:  # None or NaN
                missing[i].append(name)
    return FeatureVectors(plan.features, out, ts, missing, defs, plan)
