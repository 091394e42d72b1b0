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
from noria.features.definitions import Definitions, load_definitions
from noria.features.offline import historical_features
from noria.features.sources import SnapshotLike, _write_text_atomic, prepare_sources

LABEL = "label"
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


def _months(start: str, end: str) -> list[str]:
    try:
        periods = pd.period_range(start=start, end=end, freq="M")
    except ValueError:
        raise ConfigError(f"--from {start!r} / --to {end!r} are not months", fix="write them as YYYY-MM") from None
    if len(periods) == 0:
        raise ConfigError(f"--from {start} is after --to {end}", fix="swap them")
    return [str(p) for p in periods]


def entity_rows(defs: Definitions, snapshot: SnapshotLike, months: list[str]) -> pd.DataFrame:
    """The request table's rows in ``months`` with request columns, ids and the label column."""
    project = defs.project
    request = defs.request
    table = project.config.data.tables[request.table]
    target = project.config.model.target
    ids = request.ids if request.ids is not None else table.primary_key
    part = table.partition
    wanted = list(dict.fromkeys([*ids, *request.columns, target.column, *([part.year, part.month] if part else [])]))
    if part is not None and _reads_months(snapshot):
        frame = snapshot.read(request.table, columns=wanted, months=months)  # type: ignore[call-arg]
    else:
        frame = snapshot.read(request.table, columns=wanted)
    if part is not None:
        month = (
            frame[part.year].astype("int64").astype(str) + "-" + frame[part.month].astype("int64").map("{:02d}".format)
        )
        frame = frame[month.isin(months)]
    return frame.reset_index(drop=True)


def _reads_months(snapshot: SnapshotLike) -> bool:
    import inspect

    return "months" in inspect.signature(snapshot.read).parameters


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
    """Build, write and record the training set of ``service`` for months ``start``..``end``.

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
    months = _months(start, end)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    sources = prepare_sources(defs, snapshot, on_step=on_step)
    timings["sources"] = time.perf_counter() - t
    if on_step:
        on_step("entity rows")
    t = time.perf_counter()
    rows = entity_rows(defs, snapshot, months)
    timings["entity_rows"] = time.perf_counter() - t
    if rows.empty:
        raise DataError(
            f"snapshot {snapshot.id[:8]} has no {defs.request.table} rows in {start}..{end}",
            fix="ingest those months (`noria data ingest`) or choose another period",
        )
    if on_step:
        on_step(f"point-in-time join ({engine})")
    retrieval = historical_features(defs, plan, rows, sources.paths, engine="spark" if engine == "spark" else "duckdb")
    timings |= retrieval.timings

    target = project.config.model.target
    outcome = pd.to_numeric(rows[target.column])
    label = (outcome > target.threshold).astype("Int8").mask(outcome.isna())
    keep = [c for c in rows.columns if c != target.column or c in defs.request.columns]
    features = retrieval.frame.drop(columns=[c for c in retrieval.frame.columns if c in rows.columns])
    frame = pd.concat([rows[keep], pd.DataFrame({LABEL: label}), features], axis=1)

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
        label={
            "name": LABEL,
            "rule": f"{target.table}.{target.column} > {target.threshold:g}",
            "missing_when": f"{target.column} is missing",
        },
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
