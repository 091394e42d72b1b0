"""``noria features build``: a point-in-time correct training set from a data snapshot.

The result is one Parquet file (entity rows: ids, request columns, label, prediction time,
features) and a JSON lineage record next to it: the snapshot id, the feature-definition hash,
the service and its features, row and match counts per view, and timings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from noria.config import Project
from noria.errors import ConfigError, DataError
from noria.features.config import parse_duration
from noria.features.definitions import Definitions, FeatureDefinitionError, load_definitions
from noria.features.offline import historical_features
from noria.features.sources import SnapshotLike, _write_text_atomic, prepare_sources
from noria.features.transform import prediction_times, request_arrays
from noria.windows import Windows, in_period, ordered

LABEL = "label"
TIME = "event_timestamp"
WINDOW = "window"
# What the lineage record says joined the rows, per offline engine.
ENGINES = {"duckdb": "duckdb-asof", "spark": "spark-window-asof"}


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


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    record: TrainingSetRecord


def entity_rows(
    defs: Definitions, snapshot: SnapshotLike, start: str, end: str, windows: Windows | None = None
) -> pd.DataFrame:
    """The request table's rows whose event time falls in windows ``start``..``end``.

    Columns: the ids, the request columns and (for a column target) the target column, plus
    ``event_timestamp`` (the prediction time, UTC) and ``window`` (its window label).
    """
    project = defs.project
    request = defs.request
    windows = windows or Windows.of(project)
    windows.check(start, "--from")
    windows.check(end, "--to")
    if start > end:
        raise ConfigError(f"--from {start} is after --to {end}", fix="swap them")
    table = project.config.data.tables[request.table]
    target = project.config.model.target
    ids = request_ids(defs)
    extra = [target.column] if target is not None and target.column is not None else []
    wanted = list(dict.fromkeys([*ids, *request.columns, *extra]))
    months = windows.months(start, end) if table.partition is not None else None
    if months is not None and _reads_months(snapshot):
        frame = snapshot.read(request.table, columns=wanted, months=months)  # type: ignore[call-arg]
    else:
        frame = snapshot.read(request.table, columns=wanted)
    frame = frame.reset_index(drop=True)
    times = prediction_times(defs, request_arrays(defs, frame))
    labels = windows.labels(times)
    keep = in_period(labels, start, end)
    frame = frame[keep].reset_index(drop=True)
    frame[TIME] = pd.to_datetime(times[keep]).tz_localize("UTC")
    frame[WINDOW] = labels[keep]
    return frame


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
    from noria.tasks import task_of

    project = defs.project
    target = project.config.model.require_target()
    task = task_of(project)
    label_time: pd.Series | None = None
    if target.function is not None:
        raw, label_time = _label_function(defs, snapshot, rows)
    else:
        raw = rows[str(target.column)]
    values = task.encode_labels(raw, threshold=target.threshold, where=f"model.target ({target.rule(task.name)})")
    values = values.reset_index(drop=True)
    missing = int(values.isna().sum())
    lag = parse_duration(target.mature_after)
    known_at: pd.Series = rows[TIME] + lag if lag is not None else rows[TIME]
    if label_time is not None:
        known_at = label_time.where(label_time.notna(), known_at)
    as_of = as_of if as_of is not None else data_end(defs, snapshot)
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


def _label_function(
    defs: Definitions, snapshot: SnapshotLike, rows: pd.DataFrame
) -> tuple[pd.Series, pd.Series | None]:
    """Run the label function and join its answer to ``rows`` on the ids."""
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
    columns = list(defs.request.columns)
    if table.partition is not None and months and _reads_months(snapshot):
        frame = snapshot.read(defs.request.table, columns=columns, months=[months[-1]])  # type: ignore[call-arg]
    else:
        frame = snapshot.read(defs.request.table, columns=columns)
    if frame.empty:
        return None
    times = prediction_times(defs, request_arrays(defs, frame.reset_index(drop=True)))
    return pd.Timestamp(times.max()).tz_localize("UTC")


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

    ``engine`` joins the rows: ``"duckdb"`` (one machine) or ``"spark"`` (``features.spark``:
    local or a cluster); default ``features.offline_engine``. Both give identical frames.
    """
    began = time.perf_counter()
    defs = load_definitions(project)
    plan = defs.service(service)
    engine = engine or defs.config.offline_engine
    if engine not in ENGINES:
        raise ConfigError(
            f"offline engine {engine!r} is not one of {', '.join(ENGINES)}",
            fix="use engine='duckdb' (default) or engine='spark' (set features.offline_engine)",
        )
    if engine == "spark":
        from noria.features.spark import pyspark_modules

        pyspark_modules()  # a missing pyspark stops the build before the sources are computed
    if snapshot is None:
        from noria.data.snapshots import open_snapshot

        snapshot = open_snapshot(project, snapshot_id)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    sources = prepare_sources(defs, snapshot, on_step=on_step)
    timings["sources"] = time.perf_counter() - t
    if on_step:
        on_step("entity rows")
    t = time.perf_counter()
    rows = entity_rows(defs, snapshot, start, end)
    timings["entity_rows"] = time.perf_counter() - t
    if rows.empty:
        raise DataError(
            f"snapshot {snapshot.id[:8]} has no {defs.request.table} rows in {start}..{end}",
            fix="ingest those months (`noria data ingest`) or choose another period",
        )
    t = time.perf_counter()
    labels = label_rows(defs, snapshot, rows)
    timings["labels"] = time.perf_counter() - t
    if on_step:
        on_step(f"point-in-time join ({engine})")
    request_rows = rows.drop(columns=[TIME, WINDOW])
    retrieval = historical_features(
        defs, plan, request_rows, sources.paths, engine="spark" if engine == "spark" else "duckdb"
    )
    timings |= retrieval.timings

    target = project.config.model.require_target()
    label = labels.values
    keep = [c for c in request_rows.columns if c != target.column or c in defs.request.columns]
    features = retrieval.frame.drop(columns=[c for c in retrieval.frame.columns if c in request_rows.columns])
    frame = pd.concat(
        [request_rows[keep], pd.DataFrame({LABEL: _label_column(label, labels.info["task"])}), features], axis=1
    )

    path = out or default_path(project, plan.name, start, end)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    _write_frame_atomic(frame, path)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - began
    n = len(frame)
    record = TrainingSetRecord(
        path=str(path),
        snapshot_id=snapshot.id,
        definition_hash=defs.definition_hash,
        service=plan.name,
        features=plan.features,
        feature_types={f: defs.features[f].type for f in plan.features},
        label=labels.info,
        period={"from": start, "to": end},
        rows=n,
        labeled_rows=int(label.notna().sum()),
        matched=retrieval.matched,
        unmatched={v: n - m for v, m in retrieval.matched.items()},
        engine=ENGINES[engine],
        timings={k: round(v, 4) for k, v in timings.items()},
        created_at=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        sources_reused=sources.reused,
        extra={"source_rows": sources.rows, **retrieval.details},
    )
    _write_text_atomic(lineage_path(path), json.dumps(record.to_dict(), indent=2, sort_keys=True))
    return TrainingSet(frame=frame, record=record)


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


def _write_frame_atomic(frame: pd.DataFrame, path: Path) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
