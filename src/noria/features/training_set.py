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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from noria import atomic
from noria.config import Project
from noria.errors import ConfigError, DataError
from noria.features.config import parse_duration
from noria.features.definitions import Definitions, FeatureDefinitionError, ServicePlan, load_definitions
from noria.features.join_engine import JoinEngine, join_engine
from noria.features.join_rows import PredictionWindow, entity_schema, entity_table, prediction_window, view_values
from noria.features.offline import entity_keys, features_frame, request_stage
from noria.features.sources import SnapshotLike, prepare_sources
from noria.features.staged import FrameWriter, JoinedRows, frames, staging_dir
from noria.features.transform import Arrays, prediction_times, request_arrays, request_features
from noria.windows import Windows, in_period, ordered

LABEL = "label"
TIME = "event_timestamp"
WINDOW = "window"


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


def entity_rows(
    defs: Definitions, snapshot: SnapshotLike, start: str, end: str, windows: Windows | None = None
) -> pd.DataFrame:
    """The request table's rows whose event time falls in windows ``start``..``end`` (held in memory).

    Columns: the ids, the request columns and (for a column target) the target column, plus
    ``event_timestamp`` (the prediction time, UTC) and ``window`` (its window label).
    """
    windows = windows or Windows.of(defs.project)
    wanted, months = _request_read(defs, start, end, windows)
    table = defs.request.table
    if months is not None and _reads_months(snapshot):
        frame = snapshot.read(table, columns=wanted, months=months)  # type: ignore[call-arg]
    else:
        frame = snapshot.read(table, columns=wanted)
    return _in_period(defs, frame, windows, start, end)[0]


def _request_read(defs: Definitions, start: str, end: str, windows: Windows) -> tuple[list[str], list[str] | None]:
    """The request table's columns the entity rows need, and the months (partitions) that can hold them."""
    project = defs.project
    windows.check(start, "--from")
    windows.check(end, "--to")
    if start > end:
        raise ConfigError(f"--from {start} is after --to {end}", fix="swap them")
    table = project.config.data.tables[defs.request.table]
    target = project.config.model.target
    extra = [target.column] if target is not None and target.column is not None else []
    wanted = list(dict.fromkeys([*request_ids(defs), *defs.request.columns, *extra]))
    return wanted, windows.months(start, end) if table.partition is not None else None


def _in_period(
    defs: Definitions, frame: pd.DataFrame, windows: Windows, start: str, end: str
) -> tuple[pd.DataFrame, Arrays, np.ndarray]:
    """The rows of ``frame`` whose window lies in ``start..end`` (with ``event_timestamp`` and ``window``),
    their request columns as arrays and their prediction times."""
    frame = frame.reset_index(drop=True)
    cols = request_arrays(defs, frame)
    times = prediction_times(defs, cols)
    labels = windows.labels(times)
    keep = in_period(labels, start, end)
    frame = frame[keep].reset_index(drop=True)
    frame[TIME] = pd.to_datetime(times[keep]).tz_localize("UTC")
    frame[WINDOW] = labels[keep]
    return frame, {k: v[keep] for k, v in cols.items()}, times[keep]


def _request_chunks(
    defs: Definitions, snapshot: SnapshotLike, wanted: list[str], months: list[str] | None, rows: int
) -> Iterator[pd.DataFrame]:
    """The request table's rows (``wanted`` columns, ``months`` only) in storage order, about ``rows`` at a
    time: a snapshot's Parquet files are read batch by batch; any other snapshot is read whole, then cut."""
    import pyarrow as pa

    table = defs.request.table
    table_paths = getattr(snapshot, "table_paths", None)
    if not callable(table_paths):
        if months is not None and _reads_months(snapshot):
            frame = snapshot.read(table, columns=wanted, months=months)  # type: ignore[call-arg]
        else:
            frame = snapshot.read(table, columns=wanted)
        for first in range(0, len(frame), rows):
            yield frame.iloc[first : first + rows]
        return
    from noria.data.scan import parquet_batches

    pending: list[pa.Table] = []
    have = 0
    for batch in parquet_batches(table_paths(table, months), wanted, rows):
        pending.append(pa.Table.from_batches([batch]).select(wanted))
        have += batch.num_rows
        if have >= rows:
            yield pa.concat_tables(pending, promote_options="default").to_pandas()
            pending, have = [], 0
    if pending:
        yield pa.concat_tables(pending, promote_options="default").to_pandas()


def request_ids(defs: Definitions) -> list[str]:
    """The event key: ``features.request.ids``, else the request table's primary key."""
    request = defs.request
    table = defs.project.config.data.tables[request.table]
    return list(request.ids if request.ids is not None else table.primary_key)


def _reads_months(snapshot: SnapshotLike) -> bool:
    import inspect

    return "months" in inspect.signature(snapshot.read).parameters


@dataclass
class Labels:
    """The label of each entity row and what the rule says about them (for the lineage record)."""

    values: pd.Series  # float64: 0/1, class index or the number; NaN where unknown or immature
    info: dict[str, Any]


def label_rows(
    defs: Definitions, snapshot: SnapshotLike, rows: pd.DataFrame, *, as_of: pd.Timestamp | None = None
) -> Labels:
    """The label of each row of ``rows`` (from :func:`entity_rows`) by the project's target rule.

    A label counts only once it could be known: at its ``label_time`` (a label function may
    return one) or ``mature_after`` after the event time; rows whose label is not known by
    ``as_of`` (default: the end of the snapshot's data) are unlabelled and counted as immature.
    """
    return LabelRule.of(defs, snapshot, as_of=as_of).label(rows)


@dataclass
class LabelRule:
    """The project's target rule, made ready once (a label function run, "now" found) to label entity
    rows chunk by chunk; see :func:`label_rows`."""

    defs: Definitions
    as_of: pd.Timestamp | None
    answers: pd.DataFrame | None  # a label function's answer: comparable ids, label (, label_time)

    @classmethod
    def of(cls, defs: Definitions, snapshot: SnapshotLike, *, as_of: pd.Timestamp | None = None) -> LabelRule:
        target = defs.project.config.model.require_target()
        answers = _label_answers(defs, snapshot) if target.function is not None else None
        return cls(defs, as_of if as_of is not None else data_end(defs, snapshot), answers)

    def label(self, rows: pd.DataFrame) -> Labels:
        from noria.tasks import task_of

        project = self.defs.project
        target = project.config.model.require_target()
        task = task_of(project)
        label_time: pd.Series | None = None
        if self.answers is not None:
            raw, label_time = _join_answers(self.defs, self.answers, rows)
        else:
            raw = rows[str(target.column)]
        values = task.encode_labels(raw, threshold=target.threshold, where=f"model.target ({target.rule(task.name)})")
        values = values.reset_index(drop=True)
        missing = int(values.isna().sum())
        lag = parse_duration(target.mature_after)
        known_at: pd.Series = rows[TIME] + lag if lag is not None else rows[TIME]
        if label_time is not None:
            known_at = label_time.where(label_time.notna(), known_at)
        as_of = self.as_of
        immature = values.notna() & (known_at > as_of) if as_of is not None else values.notna() & False
        values = values.mask(immature)
        info: dict[str, Any] = {
            "name": LABEL,
            "task": task.name,
            "rule": target.rule(task.name),
            "missing_when": f"{target.column} is missing" if target.column else "the label function gives none",
            "mature_after": target.mature_after,
            "as_of": None if as_of is None else as_of.isoformat(),
            "missing_rows": missing,
            "immature_rows": int(immature.sum()),
        }
        if task.classes:
            info["classes"] = list(task.classes)
        if target.unit:
            info["unit"] = target.unit
        return Labels(values, info)


def _label_answers(defs: Definitions, snapshot: SnapshotLike) -> pd.DataFrame:
    """Run the label function (once per build): its answer with the ids in comparable form."""
    from noria.features.definitions import resolve_function

    target = defs.project.config.model.require_target()
    assert target.function is not None
    fn = resolve_function(defs.project.root, target.function, "model.target.function")
    tables = {name: snapshot.read(name, columns=list(cols)) for name, cols in target.tables.items()}
    result = fn(tables, **target.params)
    owner = f"model.target.function {target.function}"
    if not isinstance(result, pd.DataFrame):
        raise FeatureDefinitionError(f"{owner} returned {type(result).__name__}", fix="return a pandas DataFrame")
    ids = request_ids(defs)
    missing = [c for c in [*ids, LABEL] if c not in result.columns]
    if missing:
        raise FeatureDefinitionError(
            f"{owner} returned no column {', '.join(map(repr, missing))}"
            f" (it returned: {', '.join(map(str, result.columns))})",
            fix=f"return the request ids ({', '.join(ids)}), 'label' and optionally 'label_time'",
        )
    keys = _comparable(result[ids])
    repeated = keys.duplicated(keep=False)
    if repeated.any():
        example = result.loc[repeated, ids].iloc[0].to_dict()
        raise FeatureDefinitionError(
            f"{owner} returned {int(repeated.sum())} rows with duplicate ids, e.g. {example}",
            fix="return one label per event (request ids unique)",
        )
    right = keys.assign(**{LABEL: result[LABEL].to_numpy()})
    if "label_time" in result.columns:
        stamps = pd.to_datetime(result["label_time"], utc=True)
        right["label_time"] = stamps.to_numpy()
    return right


def _join_answers(defs: Definitions, right: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
    """The label function's answer for each of ``rows``, joined on the ids (row order kept)."""
    ids = request_ids(defs)
    joined = _comparable(rows[ids]).merge(right, on=ids, how="left", sort=False)
    label_time = None
    if "label_time" in joined.columns:
        label_time = pd.to_datetime(joined["label_time"], utc=True).reset_index(drop=True)
    return joined[LABEL].reset_index(drop=True), label_time


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Id columns in one comparable form: timestamps as UTC, numbers as float, the rest as text."""
    out: dict[str, Any] = {}
    for col in frame.columns:
        values = frame[col]
        if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
            out[col] = pd.to_datetime(values, utc=True).dt.as_unit("us")
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            out[col] = pd.to_numeric(values).astype("float64")
        else:
            out[col] = values.astype("string")
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def data_end(defs: Definitions, snapshot: SnapshotLike) -> pd.Timestamp | None:
    """The newest event time of the request table in the snapshot: "now" for label maturity."""
    table = defs.project.config.data.tables[defs.request.table]
    months = getattr(getattr(snapshot, "record", None), "months", None)
    last = [months[-1]] if table.partition is not None and months else None
    newest = [
        prediction_times(defs, request_arrays(defs, frame.reset_index(drop=True))).max()
        for frame in _request_chunks(defs, snapshot, list(defs.request.columns), last, defs.config.build_chunk_rows)
        if not frame.empty
    ]
    return pd.Timestamp(np.max(newest)).tz_localize("UTC") if newest else None


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
    wanted, months = _request_read(defs, start, end, windows)
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
        for chunk in _request_chunks(defs, snapshot, wanted, months, chunk_rows):
            frame, cols, ts = _in_period(defs, chunk, windows, start, end)
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


def data_windows(project: Project, snapshot: SnapshotLike | None = None) -> tuple[list[str], pd.Timestamp | None]:
    """The windows the snapshot's request table has events in (oldest first), and its newest event time."""
    defs = load_definitions(project)
    if snapshot is None:
        from noria.data.snapshots import open_snapshot

        snapshot = open_snapshot(project)
    frame = snapshot.read(defs.request.table, columns=list(defs.request.columns))
    if frame.empty:
        return [], None
    times = prediction_times(defs, request_arrays(defs, frame.reset_index(drop=True)))
    labels = Windows.of(project).labels(times)
    return ordered(labels), pd.Timestamp(times.max()).tz_localize("UTC")


def mature_window(project: Project, end: pd.Timestamp, windows: Windows | None = None) -> str | None:
    """The window of the newest event whose label is known at ``end`` (``model.target.mature_after``)."""
    target = project.config.model.target
    lag = parse_duration(target.mature_after or 0) if target is not None else None
    moment = end - lag if lag else end
    label = (windows or Windows.of(project)).labels(pd.DatetimeIndex([moment]))[0]
    return None if label is None else str(label)


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
