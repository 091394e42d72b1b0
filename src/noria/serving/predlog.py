"""The prediction log: every request and response, as Parquet files, written off the request path.

A request puts one small :class:`ScoredRow` record per scored row on a queue: references to
what it already holds (the body, the flight, the scores, the feature values), no dict, no
text, no I/O, no Arrow on the request path (failures and tests put plain dicts). A writer
thread looks at the queue every ``TICK`` seconds, takes everything waiting, converts it to
Arrow column by column in small chunks (one list per column over many rows; Arrow's own
converter decides whether a feature column is numeric) and writes a file when ``roll_rows``
rows are waiting or the oldest has waited ``roll_seconds``; :meth:`PredictionLog.close` (the
app's shutdown, e.g. on SIGTERM) writes what is left. Files appear atomically (written to a
hidden temp file in the same folder, then renamed) under ``<dir>/date=YYYY-MM-DD/``, so a
reader never sees half a file. Each process writes its own files (the pid is in the name), so
several workers share one folder safely.

Columns: request_id, row, timestamp (UTC), endpoint, status, model_name, model_version, arm
(champion / challenger / shadow), served (false for shadow rows), input (the flight as JSON),
probability, raw_score, decision, threshold, ood, ood_reasons, latency_ms, lookup_ms (the
request's wait for its features, the online read included: concurrent requests share a read),
model_ms, error, the flight's key (carrier, flight, origin) and scheduled_departure (UTC; the
event time monitoring windows by and joins delayed labels on), and one ``feature.<name>``
column per model feature (the vector the model saw).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("noria.serving")

FEATURE_PREFIX = "feature."
CHUNK_ROWS = 128  # rows converted to Arrow at a time by the writer (about 1 ms of interpreter time)
TICK = 0.05  # seconds between the writer's looks at the queue
_FIXED: dict[str, str] = {
    "request_id": "string",
    "row": "int32",
    "timestamp": "timestamp",
    "endpoint": "string",
    "status": "int32",
    "model_name": "string",
    "model_version": "int32",
    "arm": "string",
    "served": "bool",
    "input": "string",
    "probability": "float64",
    "raw_score": "float64",
    "decision": "bool",
    "threshold": "float64",
    "ood": "bool",
    "ood_reasons": "list",
    "latency_ms": "float64",
    "lookup_ms": "float64",
    "model_ms": "float64",
    "error": "string",
    "carrier": "string",
    "flight": "int32",
    "origin": "string",
    "scheduled_departure": "timestamp",
}


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "string": pa.string(),
        "int32": pa.int32(),
        "bool": pa.bool_(),
        "float64": pa.float64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "list": pa.list_(pa.string()),
    }[kind]


@dataclass(slots=True)
class ScoredRow:
    """One scored row as the request path leaves it: references to what it already holds, no copies.

    Building the log's columns (the input as JSON text, the reasons, the feature vector) is the
    writer thread's work, done for many rows at once; the request only allocates this record.
    :meth:`as_dict` is the same row as a plain dict (what :meth:`PredictionLog.write` also takes).
    """

    request_id: str
    row: int
    timestamp: float  # Unix seconds
    model_name: str
    model_version: int
    arm: str
    served: bool
    input: Any  # the request body (bytes) or the flight (a pydantic model)
    scored: Any  # noria.serving.model.Scored: probability, raw, late, ood, values
    threshold: float
    features: tuple[str, ...]  # the model's feature names, in the order of ``scored.values``
    flight: Any  # the FlightRequest: carrier, flight, origin, scheduled_departure
    latency_ms: float | None = None
    lookup_ms: float | None = None
    model_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        scored, flight = self.scored, self.flight
        return {
            "request_id": self.request_id,
            "row": self.row,
            "timestamp": self.timestamp,
            "endpoint": "/predict",
            "status": 200,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "arm": self.arm,
            "served": self.served,
            "input": self.input,
            "probability": scored.probability,
            "raw_score": scored.raw,
            "decision": scored.late,
            "threshold": self.threshold,
            "ood": bool(scored.ood),
            "ood_reasons": [r["detail"] for r in scored.ood],
            "latency_ms": self.latency_ms,
            "lookup_ms": self.lookup_ms,
            "model_ms": self.model_ms,
            "features": (self.features, scored.values),
            "carrier": flight.carrier,
            "flight": flight.flight,
            "origin": flight.origin,
            "scheduled_departure": flight.scheduled_departure.timestamp(),
        }


LogRow = ScoredRow | Mapping[str, Any]


def rows_to_table(rows: Sequence[LogRow]) -> Any:
    """An Arrow table of log rows; feature columns are strings if any value is text, else float64.

    Rows are plain mappings or :class:`ScoredRow` records; a chunk of records only (the request
    path's) is read column by column, without a dict per row.
    """
    import pyarrow as pa

    if all(type(r) is ScoredRow for r in rows):
        values, vectors = _record_columns(rows)  # type: ignore[arg-type]
    else:
        dicts = [r.as_dict() if isinstance(r, ScoredRow) else r for r in rows]
        values = {name: [r.get(name) for r in dicts] for name in _FIXED}
        vectors = [r.get("features") for r in dicts]
    columns: dict[str, Any] = {}
    for name, kind in _FIXED.items():
        column = values[name]
        if kind == "timestamp":  # epoch seconds -> microseconds, no datetime objects
            column = [None if v is None else round(v * 1_000_000) for v in column]
        elif name == "input":
            column = [_text(v) for v in column]
        columns[name] = pa.array(column, type=_arrow_type(kind))
    for feature, column in _feature_columns(vectors).items():
        columns[FEATURE_PREFIX + feature] = _feature_array(column)
    return pa.table(columns)


def _record_columns(rows: Sequence[ScoredRow]) -> tuple[dict[str, list[Any]], list[Any]]:
    """The fixed columns and feature vectors of request-path records, one list per column."""
    n = len(rows)
    scored = [r.scored for r in rows]
    flights = [r.flight for r in rows]
    columns: dict[str, list[Any]] = {
        "request_id": [r.request_id for r in rows],
        "row": [r.row for r in rows],
        "timestamp": [r.timestamp for r in rows],
        "endpoint": ["/predict"] * n,
        "status": [200] * n,
        "model_name": [r.model_name for r in rows],
        "model_version": [r.model_version for r in rows],
        "arm": [r.arm for r in rows],
        "served": [r.served for r in rows],
        "input": [r.input for r in rows],
        "probability": [s.probability for s in scored],
        "raw_score": [s.raw for s in scored],
        "decision": [s.late for s in scored],
        "threshold": [r.threshold for r in rows],
        "ood": [bool(s.ood) for s in scored],
        "ood_reasons": [[reason["detail"] for reason in s.ood] for s in scored],
        "latency_ms": [r.latency_ms for r in rows],
        "lookup_ms": [r.lookup_ms for r in rows],
        "model_ms": [r.model_ms for r in rows],
        "error": [None] * n,
        "carrier": [f.carrier for f in flights],
        "flight": [f.flight for f in flights],
        "origin": [f.origin for f in flights],
        "scheduled_departure": [f.scheduled_departure.timestamp() for f in flights],
    }
    return columns, [(r.features, s.values) for r, s in zip(rows, scored, strict=True)]


def _feature_array(values: list[Any]) -> Any:
    """float64 unless a value is text (then every value as text): Arrow's own conversion decides."""
    import pyarrow as pa

    try:
        return pa.array(values, type=pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # text among the values (or something not a number)
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _feature_columns(vectors: list[Any]) -> dict[str, list[Any]]:
    """Feature vectors (mappings, or (names, values) as the request path leaves them) as columns.

    Rows of one model share the very same names tuple: their values are transposed in one step.
    """
    first = vectors[0] if vectors else None
    if isinstance(first, tuple) and all(isinstance(v, tuple) and v[0] is first[0] for v in vectors):
        names = first[0]
        return dict(zip(names, (list(col) for col in zip(*(v[1] for v in vectors), strict=True)), strict=True))
    mappings = [_features(v) for v in vectors]
    keys: dict[str, None] = {}
    for mapping in mappings:
        for key in mapping:
            keys.setdefault(key, None)
    return {key: [m.get(key) for m in mappings] for key in keys}


def _text(value: Any) -> str | None:
    """The request input as JSON text: bytes of a body, a pydantic model, or text already."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    dump = getattr(value, "model_dump_json", None)
    return str(dump(exclude_none=True)) if dump is not None else str(value)


def _features(value: Any) -> dict[str, Any]:
    """A feature vector given as a mapping, or as (names, values) as the request path leaves it."""
    if not value:
        return {}
    if isinstance(value, tuple):
        names, values = value
        return dict(zip(names, values, strict=True))
    return dict(value)


class PredictionLog:
    """A background Parquet writer; :meth:`write` never blocks and never touches the disk."""

    def __init__(
        self,
        folder: Path,
        *,
        roll_rows: int = 10_000,
        roll_seconds: float = 60.0,
        max_queue_rows: int = 200_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.roll_rows = roll_rows
        self.roll_seconds = roll_seconds
        self.max_queue_rows = max_queue_rows
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._on_drop = on_drop
        self._seq = itertools.count()
        self.files: list[Path] = []
        self.rows_written = 0
        self.dropped = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="noria-prediction-log", daemon=True)
        self._thread.start()

    def write(self, rows: Iterable[LogRow]) -> None:
        """Queue rows for the writer (the request path: a queue put per row, nothing else)."""
        if self._closed:
            return
        for row in rows:
            if self._queue.qsize() >= self.max_queue_rows:
                self.dropped += 1
                if self._on_drop:
                    self._on_drop(1)
                continue
            self._queue.put(row)

    def _run(self) -> None:
        # The writer wakes every TICK seconds and takes everything queued at once, instead of waking
        # for each row: the request path shares the interpreter with it, so the fewer wake-ups and
        # the shorter each hold, the less a request waits.
        pending: list[LogRow] = []  # rows not yet converted
        tables: list[Any] = []  # converted chunks waiting for the roll
        rows = 0  # rows in both
        first_at = 0.0
        while True:
            stopping = self._stop.wait(TICK)
            taken = self._take_all()
            if taken and not rows:
                first_at = time.monotonic()
            pending.extend(taken)
            rows += len(taken)
            while len(pending) >= CHUNK_ROWS or (pending and (stopping or rows >= self.roll_rows)):
                chunk, pending = pending[:CHUNK_ROWS], pending[CHUNK_ROWS:]
                tables.append(self._convert(chunk))
                time.sleep(0)  # let a waiting request have the interpreter between chunks
            due = rows >= self.roll_rows or (rows and time.monotonic() - first_at >= self.roll_seconds)
            if due or (stopping and rows):
                if pending:
                    tables.append(self._convert(pending))
                    pending = []
                self._flush([t for t in tables if t is not None])
                tables, rows = [], 0
                first_at = time.monotonic()
            if stopping and self._queue.empty():
                return

    def _take_all(self) -> list[LogRow]:
        taken: list[LogRow] = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                return taken

    def _convert(self, chunk: list[LogRow]) -> Any:
        try:
            return rows_to_table(chunk)
        except Exception:  # a malformed row must not kill the writer; the rows are counted as lost
            log.exception("cannot convert %d prediction log rows", len(chunk))
            self._lost(len(chunk))
            return None

    def _lost(self, n: int) -> None:
        self.dropped += n
        if self._on_drop:
            self._on_drop(n)

    def _flush(self, tables: list[Any]) -> None:
        if not tables:
            return
        import pyarrow as pa

        try:
            groups = [pa.concat_tables(tables, promote_options="permissive")]
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a feature changed type between versions
            groups = tables
        for group in groups:
            for offset in range(0, group.num_rows, self.roll_rows):  # a file holds at most roll_rows rows
                table = group.slice(offset, self.roll_rows)
                try:
                    self._write_file(table)
                except Exception:  # a full disk must not kill the writer; the rows are counted as lost
                    log.exception("cannot write %d prediction log rows to %s", table.num_rows, self.folder)
                    self._lost(table.num_rows)

    def _write_file(self, table: Any) -> None:
        import pyarrow.parquet as pq

        now = datetime.now(UTC)
        folder = self.folder / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"predictions-{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-{next(self._seq):06d}.parquet"
        final = folder / name
        tmp = folder / f".{name}.tmp"
        try:
            pq.write_table(table, tmp, compression="zstd")
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        self.files.append(final)
        self.rows_written += table.num_rows

    def close(self, timeout: float = 60.0) -> None:
        """Stop taking rows, write everything queued, wait for the writer to finish."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=timeout)


def read_prediction_log(folder: Path | str) -> Any:
    """Every finished file of a prediction log folder as one pandas DataFrame (empty if none)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(Path(folder).glob("date=*/predictions-*.parquet"))
    if not files:
        return pd.DataFrame(columns=list(_FIXED))
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


__all__ = ["FEATURE_PREFIX", "LogRow", "PredictionLog", "ScoredRow", "read_prediction_log", "rows_to_table"]
