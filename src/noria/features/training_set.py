"""``noria features build``: a point-in-time correct training set from a data snapshot.

The result is one Parquet file (entity rows: ids, request columns, label, prediction time,
features) and a JSON lineage record next to it: the snapshot id, the feature-definition hash,
the service and its features, row and match counts per view, and timings.

A build of any size runs in bounded memory, in three passes over files (:mod:`noria.features.staged`):
the request table is read chunk by chunk (``features.build_chunk_rows``), each chunk's rows kept
in the period are labelled and staged as Parquet with their join keys; the join engine (DuckDB
within ``features.duckdb.memory_limit``, or Spark) joins the staged rows with every feature view
and writes the result to Parquet itself, sorted by entity row; then the staged rows and the
joined views are read back in step, chunk by chunk, through the same feature code as serving,
and the training set is written row group by row group, then renamed into place.

Which rows and labels a build takes (the request table's events in the period, the target rule,
label maturity) is :mod:`noria.features.entity_rows`; its public names are importable from here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from noria import atomic
from noria.config import Project
from noria.errors import DataError
from noria.features.definitions import Definitions, ServicePlan, load_definitions
from noria.features.entity_rows import (
    LABEL,
    TIME,
    WINDOW,
    LabelRule,
    data_windows,
    entity_rows,
    label_rows,
    mature_window,
    request_chunks,
    request_ids,
    request_read,
    rows_in_period,
)
from noria.features.join_engine import JoinEngine, join_engine
from noria.features.join_rows import PredictionWindow, entity_schema, entity_table, prediction_window, view_values
from noria.features.offline import entity_keys, features_frame, request_stage
from noria.features.sources import SnapshotLike, prepare_sources
from noria.features.staged import FrameWriter, JoinedRows, frames, staging_dir
from noria.features.transform import Arrays, request_features
from noria.windows import Windows


@dataclass
class TrainingSetRecord:
    """The lineage record written next to a training set."""

    path: str
    snapshot_id: str
    definition_hash: str
    service: str
    features: list[str]
    feature_types: dict[str, str]
    label: dict[str, Any]
    period: dict[str, str]
    rows: int
    labeled_rows: int
    matched: dict[str, int]
    unmatched: dict[str, int]
    engine: str
    timings: dict[str, float]
    created_at: str
    sources_reused: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainingSet:
    """A built (or loaded) training set: its lineage record, and its rows, read from the file on first use."""

    def __init__(self, frame: pd.DataFrame | None, record: TrainingSetRecord) -> None:
        self.record = record
        self._frame = frame

    @property
    def frame(self) -> pd.DataFrame:
        """Every row, in memory (read from ``record.path`` the first time: a build never holds them all)."""
        if self._frame is None:
            self._frame = pd.read_parquet(self.record.path)
        return self._frame


def build_training_set(
    project: Project,
    start: str,
    end: str,
    *,
    snapshot_id: str | None = None,
    service: str | None = None,
    out: Path | None = None,
    snapshot: SnapshotLike | None = None,
    on_step: Callable[[str], None] | None = None,
    engine: str | None = None,
) -> TrainingSet:
    """Build, write and record the training set of ``service`` for windows ``start``..``end``.

    ``engine`` joins the rows (:func:`noria.features.join_engine.join_engine`): ``"duckdb"`` (one
    machine) or ``"spark"`` (``features.spark``: local or a cluster); default
    ``features.offline_engine``. Both give identical files. Memory
    stays bounded whatever the number of rows (see the module doc); the returned set reads its
    rows from the file only when asked for ``frame``.
    """
    began = time.perf_counter()
    defs = load_definitions(project)
    plan = defs.service(service)
    # An unknown engine or a missing extra (pyspark) stops the build before the sources are computed.
    joiner = join_engine(engine or defs.config.offline_engine)
    if snapshot is None:
        from noria.data.snapshots import open_snapshot

        snapshot = open_snapshot(project, snapshot_id)
    timings: dict[str, float] = dict.fromkeys(
        ("sources", "entity_rows", "labels", "request_features", "asof_join", "derived_features", "write"), 0.0
    )

    t = time.perf_counter()
    sources = prepare_sources(defs, snapshot, on_step=on_step)
    timings["sources"] = time.perf_counter() - t
    path = out or default_path(project, plan.name, start, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    details: dict[str, Any] = {}
    with staging_dir(defs) as folder:
        if on_step:
            on_step("entity rows")
        staged = _stage_entity_rows(defs, plan, snapshot, start, end, sources.paths, folder, timings)
        if on_step:
            on_step(f"point-in-time join ({joiner.name})")
        t = time.perf_counter()
        joined = _join(joiner, defs, plan, staged, sources.paths, folder, timings, details)
        timings["asof_join"] = time.perf_counter() - t
        if on_step:
            on_step("write")
        matched = _write_rows(defs, plan, staged, joined, path, timings)
    timings["total"] = time.perf_counter() - began
    n = staged.rows
    record = TrainingSetRecord(
        path=str(path),
        snapshot_id=snapshot.id,
        definition_hash=defs.definition_hash,
        service=plan.name,
        features=plan.features,
        feature_types={f: defs.features[f].type for f in plan.features},
        label=staged.label_info,
        period={"from": start, "to": end},
        rows=n,
        labeled_rows=staged.labeled,
        matched=matched,
        unmatched={v: n - m for v, m in matched.items()},
        engine=joiner.method,
        timings={k: round(v, 4) for k, v in timings.items()},
        created_at=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        sources_reused=sources.reused,
        extra={"source_rows": sources.rows, **details},
    )
    atomic.write_json(lineage_path(path), record.to_dict(), indent=2, sort_keys=True)
    return TrainingSet(frame=None, record=record)


@dataclass
class _Staged:
    """The entity rows of a build, staged: request columns + label, and what the join engine reads."""

    rows_path: Path  # the request table's columns the training set keeps, and the label
    entity_path: Path  # noria_row, event_timestamp, join keys (typed as the feature tables hold them)
    columns: list[str]  # the request table's columns read (a feature of the same name is not added again)
    rows: int
    labeled: int
    label_info: dict[str, Any]
    window: PredictionWindow | None
    chunk_rows: int


def _stage_entity_rows(
    defs: Definitions,
    plan: ServicePlan,
    snapshot: SnapshotLike,
    start: str,
    end: str,
    paths: dict[str, Path],
    folder: Path,
    timings: dict[str, float],
) -> _Staged:
    """Pass 1: the request table chunk by chunk -> the rows in the period, labelled, staged as Parquet."""
    import pyarrow.parquet as pq

    t = time.perf_counter()
    project = defs.project
    windows = Windows.of(project)
    wanted, months = request_read(defs, start, end, windows)
    target = project.config.model.require_target()
    keep = [c for c in wanted if c != target.column or c in defs.request.columns]
    chunk_rows = defs.config.build_chunk_rows
    schema = entity_schema(defs, plan.batch_views, paths)
    rule: LabelRule | None = None
    n = labeled = 0
    info: dict[str, Any] = {}
    window: PredictionWindow | None = None
    rows_path, entity_path = folder / "rows.parquet", folder / "entity_rows.parquet"
    spent = 0.0  # on labels and request features, timed on their own
    with FrameWriter(rows_path) as rows_out, pq.ParquetWriter(entity_path, schema) as entity_out:
        for chunk in request_chunks(defs, snapshot, wanted, months, chunk_rows):
            frame, cols, ts = rows_in_period(defs, chunk, windows, start, end)
            if frame.empty:
                continue
            tl = time.perf_counter()
            rule = rule or LabelRule.of(defs, snapshot)
            labels = rule.label(frame)
            tf = time.perf_counter()
            values = request_features(defs, plan, cols)
            keys = entity_keys(defs, plan, cols, values, ts)
            tk = time.perf_counter()
            timings["labels"] += tf - tl
            timings["request_features"] += tk - tf
            spent += tk - tl
            rows_out.write(frame[keep].assign(**{LABEL: _label_column(labels.values, labels.info["task"])}))
            entity_out.write_table(entity_table(keys, ts, first_row=n, schema=schema))
            window = prediction_window(ts, window)
            n += len(frame)
            labeled += int(labels.values.notna().sum())
            info = _add_counts(info, labels.info)
    if n == 0:
        raise DataError(
            f"snapshot {snapshot.id[:8]} has no {defs.request.table} rows in {start}..{end}",
            fix="ingest those months (`noria data ingest`) or choose another period",
        )
    timings["entity_rows"] = time.perf_counter() - t - spent
    return _Staged(rows_path, entity_path, wanted, n, labeled, info, window, chunk_rows)


def _add_counts(total: dict[str, Any], chunk: dict[str, Any]) -> dict[str, Any]:
    """The label record of the rows so far and one more chunk: the same rule, counts added."""
    if not total:
        return dict(chunk)
    return total | {k: total[k] + chunk[k] for k in ("missing_rows", "immature_rows")}


def _join(
    engine: JoinEngine,
    defs: Definitions,
    plan: ServicePlan,
    staged: _Staged,
    paths: dict[str, Path],
    folder: Path,
    timings: dict[str, float],
    details: dict[str, Any],
) -> dict[str, Path]:
    """Pass 2: the engine joins the staged entity rows with each view and writes the result itself."""
    assert staged.window is not None
    return engine.join_files(
        defs, plan.batch_views, staged.entity_path, paths, staged.window, folder, timings=timings, details=details
    )


def _write_rows(
    defs: Definitions,
    plan: ServicePlan,
    staged: _Staged,
    joined: dict[str, Path],
    path: Path,
    timings: dict[str, float],
) -> dict[str, int]:
    """Pass 3: the staged rows and the joined views in step, chunk by chunk -> the training set (a temporary
    file renamed into place); per view, how many rows found a value."""
    t = time.perf_counter()
    spent = 0.0
    views = plan.batch_views
    cursors = {v: JoinedRows(v, joined[v], staged.rows, staged.chunk_rows) for v in views}
    matched = dict.fromkeys(views, 0)
    with atomic.temp_path(path) as tmp:
        with FrameWriter(tmp) as out:
            for rows in frames(staged.rows_path, staged.chunk_rows):
                tr = time.perf_counter()
                cols, ts, values = request_stage(defs, plan, rows)
                tv = time.perf_counter()
                looked_up: Arrays = {}
                for view, cursor in cursors.items():
                    counted: dict[str, int] = {}
                    looked_up |= view_values(defs, view, cursor.take(len(rows)), ts, counted)
                    matched[view] += counted[view]
                features = features_frame(defs, plan, cols, ts, values, looked_up, rows.index)
                td = time.perf_counter()
                timings["request_features"] += tv - tr
                timings["derived_features"] += td - tv
                spent += td - tr
                features = features.drop(columns=[c for c in features.columns if c in staged.columns])
                out.write(pd.concat([rows, features], axis=1))
        for cursor in cursors.values():
            cursor.finish()
    timings["write"] = time.perf_counter() - t - spent
    return matched


def _label_column(values: pd.Series, task: str) -> Any:
    """The label as the training set stores it: Int8 0/1, Int16 class index, or float64."""
    if task == "regression":
        return values.astype("float64").to_numpy()
    codes = values.round()
    return (codes.astype("Int8") if task == "binary" else codes.astype("Int16")).mask(values.isna())


def default_path(project: Project, service: str, start: str, end: str) -> Path:
    return project.path(project.config.storage.artifacts_dir) / "training_sets" / f"{service}_{start}_{end}.parquet"


def lineage_path(path: Path) -> Path:
    return path.with_suffix(".lineage.json")


def load_training_set(path: Path) -> TrainingSet:
    """Read a training set and its lineage record (which names the feature columns)."""
    try:
        record = TrainingSetRecord(**json.loads(lineage_path(path).read_text(encoding="utf-8")))
        frame = pd.read_parquet(path)
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(
            f"cannot read training set {path}: {exc}", fix="rebuild it with `noria features build`"
        ) from None
    return TrainingSet(frame=frame, record=record)


__all__ = [
    "LABEL",
    "TIME",
    "WINDOW",
    "TrainingSet",
    "TrainingSetRecord",
    "build_training_set",
    "data_windows",
    "default_path",
    "entity_rows",
    "label_rows",
    "lineage_path",
    "load_training_set",
    "mature_window",
    "request_ids",
]
