"""The prediction log: every request and response, as Parquet files, written by a child process.

The request path turns each scored row into a tuple of plain values (:func:`record`: strings,
numbers, the body bytes; about a microsecond) and puts it on a queue. A sender thread looks at
the queue every ``TICK`` seconds and hands everything waiting to a writer process in one
pickled frame through a pipe: pickling plain values is C code, and the pipe write releases the
interpreter. The writer process (``python -m noria.serving.predlog``) builds the Arrow columns
and writes a Parquet file when ``roll_rows`` rows are waiting or the oldest has waited
``roll_seconds``. The conversion and the file writes never hold the service's interpreter: in
the service's own thread they had (measured: ~30 % fewer requests per second and 2-3x the p99
with the log on than off; with the writer process the log costs a few per cent).

:meth:`PredictionLog.close` (the app's shutdown, e.g. on SIGTERM) sends what is left, closes
the pipe and waits for the writer to write it: nothing is lost. The writer ignores SIGINT and
SIGTERM (a Ctrl-C reaches the whole process group) and stops when its pipe closes, so it also
ends when the service dies. If the writer dies, the rows it had not written are counted as
dropped and a new writer is started. Files appear atomically (written to a hidden temp file in
the same folder, then renamed) under ``<dir>/date=YYYY-MM-DD/``, so a reader never sees half a
file; the service's pid is in each name, so several workers share one folder safely.

With a ``remote`` (``serving.prediction_log.remote: s3://bucket/prefix``) the writer process
also ships every file it rolls to object storage and deletes the local file only once the upload
succeeded (:class:`noria.remote_log.Shipper`: a content-hashed key, so shipping twice is
harmless); a failed upload is retried later, and a writer started on a folder ships the files an
earlier one left there (a process killed between the write and the upload). Uploads and
failures are counted (``files_shipped``, ``ship_failures``; ``on_ship`` feeds the metrics).

Columns: request_id, row, timestamp (UTC), endpoint, status, model_name, model_version, arm
(champion / challenger / shadow), served (false for shadow rows), input (the request as JSON),
the answer in the task's terms (``score``: the probability of a binary model's positive class,
a multi-class model's probability of its predicted class, a regression model's value;
``probability``, ``decision`` and ``threshold`` for binary models, ``predicted_class`` and
``probabilities`` for multi-class ones, ``raw_score``), ood, ood_reasons, latency_ms, lookup_ms
(the request's wait for its features, the online read included: concurrent requests share a
read), model_ms, error, the request's event key (one ``key.<id>`` column per id of
``features.request.ids``) and ``event_time`` (the prediction time the project's timestamp
function gives: what monitoring windows are cut on and delayed labels join by), and one
``feature.<name>`` column per model feature (the vector the model saw).

The event key and event time are computed by the writer process, from the logged request,
with the project's own request mapping and timestamp function (:class:`EventKeyer`): the
request path does not pay for them. Batch scoring, which has them already, passes them along.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

log = logging.getLogger("noria.serving")

FEATURE_PREFIX = "feature."
KEY_PREFIX = "key."
EVENT_TIME = "event_time"
TICK = 0.05  # seconds between the sender's looks at the queue
_FRAME = struct.Struct("<Q")  # the length of each pickled frame on the pipe
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
    "score": "float64",
    "probability": "float64",
    "raw_score": "float64",
    "decision": "bool",
    "predicted_class": "string",
    "probabilities": "floats",
    "threshold": "float64",
    "ood": "bool",
    "ood_reasons": "list",
    "latency_ms": "float64",
    "lookup_ms": "float64",
    "model_ms": "float64",
    "error": "string",
    EVENT_TIME: "timestamp",
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
        "floats": pa.list_(pa.float64()),
        "int64": pa.int64(),
    }[kind]


@dataclass(slots=True)
class ScoredRow:
    """One scored row as the request path leaves it: references to what it already holds, no copies.

    :meth:`PredictionLog.write` turns it into a tuple of plain values (:func:`record`); building
    the log's columns from those is the writer process's work, done for many rows at once.
    :meth:`as_dict` is the same row as a plain dict (what :meth:`PredictionLog.write` also takes).
    """

    request_id: str
    row: int
    timestamp: float  # Unix seconds
    model_name: str
    model_version: int
    arm: str
    served: bool
    input: Any  # the request body (bytes) or one request of a batch (a pydantic model)
    scored: Any  # noria.serving.model.Scored: score, probability, raw, decision, label, probabilities, ood, values
    threshold: float | None
    features: tuple[str, ...]  # the model's feature names, in the order of ``scored.values``
    latency_ms: float | None = None
    lookup_ms: float | None = None
    model_ms: float | None = None
    event_time: float | None = None  # Unix seconds, when the producer knows it (batch scoring)
    keys: dict[str, Any] | None = None  # id -> value, likewise

    def as_dict(self) -> dict[str, Any]:
        return dict(_as_dict(record(self)))


# A scored row as plain values, in this order (what the request path queues; see :func:`record`).
RECORD_FIELDS = (
    "request_id", "row", "timestamp", "model_name", "model_version", "arm", "served", "input",
    "score", "probability", "raw_score", "decision", "predicted_class", "probabilities", "threshold",
    "ood_reasons", "latency_ms", "lookup_ms", "model_ms", "event_time", "keys", "feature_names", "feature_values",
)  # fmt: skip
LogRow = ScoredRow | Mapping[str, Any] | tuple[Any, ...]


def record(row: ScoredRow) -> tuple[Any, ...]:
    """A :class:`ScoredRow` as a tuple of plain values in ``RECORD_FIELDS`` order (cheap to pickle)."""
    scored = row.scored
    body = row.input
    return (
        row.request_id,
        row.row,
        row.timestamp,
        row.model_name,
        row.model_version,
        row.arm,
        row.served,
        body if type(body) is bytes or type(body) is str else _text(body),  # a batch's request: JSON text
        scored.score,
        scored.probability,
        scored.raw,
        scored.decision,
        scored.label,
        scored.probabilities,
        row.threshold,
        [reason["detail"] for reason in scored.ood],
        row.latency_ms,
        row.lookup_ms,
        row.model_ms,
        row.event_time,
        row.keys,
        row.features,
        scored.values,
    )


def rows_to_table(rows: Sequence[LogRow], keyer: EventKeyer | None = None) -> Any:
    """An Arrow table of log rows; feature columns are strings if any value is text, else float64.

    Rows are records (:func:`record`, what the request path queues), :class:`ScoredRow` records
    or plain mappings (failures, tests); a chunk of records only is read column by column,
    without a dict per row. ``keyer`` fills in the event key and time of served rows that do not
    carry them (computed from the logged request).
    """
    import pyarrow as pa

    plain: list[Mapping[str, Any] | tuple[Any, ...]] = [record(r) if isinstance(r, ScoredRow) else r for r in rows]
    if plain and all(type(r) is tuple for r in plain):
        values, vectors = _record_columns(plain)  # type: ignore[arg-type]
    else:
        dicts = [_as_dict(r) for r in plain]
        values = {name: [r.get(name) for r in dicts] for name in (*_FIXED, "keys")}
        vectors = [r.get("features") for r in dicts]
    keys: list[Any] = list(values.get("keys") or [None] * len(plain))
    if keyer is not None:
        _fill_keys(values, keys, keyer)
    columns: dict[str, Any] = {}
    for name, kind in _FIXED.items():
        column = values[name]
        if kind == "timestamp":  # epoch seconds -> microseconds, no datetime objects
            column = [None if v is None else round(v * 1_000_000) for v in column]
        elif name == "input":
            column = [_text(v) for v in column]
        columns[name] = pa.array(column, type=_arrow_type(kind))
    for name, column in _key_columns(keys, keyer).items():
        columns[KEY_PREFIX + name] = column
    for feature, column in _feature_columns(vectors).items():
        columns[FEATURE_PREFIX + feature] = _feature_array(column)
    return pa.table(columns)


def _fill_keys(values: dict[str, list[Any]], keys: list[Any], keyer: EventKeyer) -> None:
    """Event times and keys of rows that lack them, from their logged requests (in place)."""
    times = values[EVENT_TIME]
    status = values.get("status") or [200] * len(times)
    todo = [i for i, t in enumerate(times) if t is None and status[i] == 200 and values["input"][i] is not None]
    if not todo:
        return
    found_times, found_keys = keyer.compute([values["input"][i] for i in todo])
    for i, when, key in zip(todo, found_times, found_keys, strict=True):
        times[i] = when
        keys[i] = key


def _key_columns(keys: list[Any], keyer: EventKeyer | None) -> dict[str, Any]:
    """One Arrow column per id (typed by the request table when known, else by Arrow)."""
    import pyarrow as pa

    names: dict[str, None] = dict.fromkeys(keyer.ids) if keyer is not None else {}
    for key in keys:
        if key:
            for name in key:
                names.setdefault(name, None)
    out: dict[str, Any] = {}
    for name in names:
        column = [None if not key else key.get(name) for key in keys]
        kind = keyer.arrow_kind(name) if keyer is not None else None
        if kind == "timestamp":
            column = [None if v is None else round(v * 1_000_000) for v in column]
        try:
            out[name] = pa.array(column, type=_arrow_type(kind) if kind else None)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            out[name] = pa.array([None if v is None else str(v) for v in column], type=pa.string())
    return out


class EventKeyer:
    """The event key and event time of logged requests: the project's request mapping and timestamp function.

    Built in the writer process from the project folder. A request that cannot be keyed (it
    cannot happen for a request the service validated, short of a bug in the project's own
    functions) is logged without a key, and counted in the log of the writer.
    """

    def __init__(self, project: Any) -> None:
        from pydantic import TypeAdapter

        from noria.features.definitions import load_definitions
        from noria.serving.requests import request_schema

        self.defs = load_definitions(project)
        self.schema = request_schema(project, self.defs)
        self.ids = list(self.schema.ids)
        self._types = self.schema.column_types
        self._single = TypeAdapter(self.schema.model)
        self.unkeyed = 0

    def arrow_kind(self, name: str) -> str | None:
        kind = self._types.get(name, ("", False))[0]
        return {"int": "int64", "float": "float64", "str": "string", "bool": "bool", "timestamp": "timestamp"}.get(kind)

    def compute(self, inputs: Sequence[Any]) -> tuple[list[float | None], list[dict[str, Any] | None]]:
        """(event time in Unix seconds, {id: value}) per logged request; None where it cannot be read."""
        requests: list[Any] = []
        where: list[int] = []
        for i, text in enumerate(inputs):
            try:
                requests.append(self._single.validate_json(text if isinstance(text, bytes | str) else str(text)))
                where.append(i)
            except Exception:  # a batch body logged whole, or a body that was refused: no single request
                continue
        times: list[float | None] = [None] * len(inputs)
        keys: list[dict[str, Any] | None] = [None] * len(inputs)
        if not requests:
            return times, keys
        try:
            found = self._compute(requests)
        except Exception:  # one bad request must not cost the others their key: one at a time
            found = []
            for request in requests:
                try:
                    found.extend(self._compute([request]))
                except Exception:
                    log.exception("cannot compute the event key of a logged request")
                    self.unkeyed += 1
                    found.append((None, None))
        for i, (when, key) in zip(where, found, strict=True):
            times[i], keys[i] = when, key
        return times, keys

    def _compute(self, requests: list[Any]) -> list[tuple[float | None, dict[str, Any] | None]]:
        columns = self.schema.columns(requests)
        stamps, values = self.schema.event_keys(self.defs, columns)
        seconds = stamps.astype("datetime64[us]").astype("int64") / 1_000_000
        out: list[tuple[float | None, dict[str, Any] | None]] = []
        for i in range(len(requests)):
            key = {name: _plain_key(values[name][i]) for name in self.ids}
            out.append((float(seconds[i]), key))
        return out


def _plain_key(value: Any) -> Any:
    """An id value as Arrow takes it: timestamps as Unix seconds, numpy scalars as Python values."""
    from datetime import datetime as _datetime

    import numpy as np

    if value is None:
        return None
    if isinstance(value, np.datetime64):
        return float(value.astype("datetime64[us]").astype("int64")) / 1_000_000
    if isinstance(value, _datetime):
        return value.timestamp() if value.tzinfo is not None else value.replace(tzinfo=UTC).timestamp()
    item = getattr(value, "item", None)
    return item() if item is not None else value


def _as_dict(row: Mapping[str, Any] | tuple[Any, ...]) -> Mapping[str, Any]:
    if type(row) is not tuple:
        return row  # type: ignore[return-value]
    fields = dict(zip(RECORD_FIELDS, row, strict=True))
    fields.update(
        endpoint="/predict",
        status=200,
        ood=bool(fields["ood_reasons"]),
        features=(fields.pop("feature_names"), fields.pop("feature_values")),
    )
    return fields


def _record_columns(rows: Sequence[tuple[Any, ...]]) -> tuple[dict[str, list[Any]], list[Any]]:
    """The fixed columns and feature vectors of records, one list per column."""
    n = len(rows)
    by_field = dict(zip(RECORD_FIELDS, (list(column) for column in zip(*rows, strict=True)), strict=True))
    columns: dict[str, list[Any]] = {name: by_field[name] for name in RECORD_FIELDS[:-2]}
    columns.update(
        endpoint=["/predict"] * n,
        status=[200] * n,
        ood=[bool(reasons) for reasons in by_field["ood_reasons"]],
        error=[None] * n,
    )
    return columns, list(zip(by_field["feature_names"], by_field["feature_values"], strict=True))


def _feature_array(values: list[Any]) -> Any:
    """float64 unless a value is text (then every value as text): Arrow's own conversion decides.

    A column with no value at all is Arrow's null type, which files of other types merge with
    (a text feature missing from every row of one file must not make it "double" there).
    """
    import pyarrow as pa

    if all(v is None for v in values):
        return pa.nulls(len(values))
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
    """The service's side of the log: :meth:`write` never blocks and never touches the disk."""

    def __init__(
        self,
        folder: Path,
        *,
        roll_rows: int = 10_000,
        roll_seconds: float = 60.0,
        max_queue_rows: int = 200_000,
        on_drop: Callable[[int], None] | None = None,
        project_root: Path | None = None,
        profile: str | None = None,
        remote: str | None = None,
        on_ship: Callable[[bool, int], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        # Rolled files go to object storage (s3://bucket/prefix) and leave the disk once there.
        self.remote = remote or None
        if self.remote is not None:
            _check_remote(self.remote)
        self._on_ship = on_ship  # (shipped?, files not yet shipped) after each upload attempt
        # The writer computes each request's event key and time with the project's own code.
        self.project_root = project_root
        self.profile = profile
        self.roll_rows = roll_rows
        self.roll_seconds = roll_seconds
        self.max_queue_rows = max_queue_rows
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._on_drop = on_drop
        self.files: list[Path] = []
        self.rows_written = 0
        self.dropped = 0
        self.shipped: list[str] = []  # object keys of the files shipped to the remote
        self.ship_failures = 0  # upload attempts that failed (the file stays and is tried again)
        self.unshipped = 0  # files not yet shipped, as the writer last reported
        self._closed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the counters, updated by the sender and the reader threads
        self._writers = itertools.count()
        self._writer: _Writer | None = self._start_writer()  # fails here, loudly, if no writer process can run
        self._thread = threading.Thread(target=self._run, name="noria-prediction-log", daemon=True)
        self._thread.start()

    def write(self, rows: Iterable[LogRow]) -> None:
        """Queue rows for the writer (the request path: a tuple and a queue put per row, nothing else)."""
        if self._closed:
            return
        for row in rows:
            if self._queue.qsize() >= self.max_queue_rows:
                self._lost(1)
                continue
            try:
                self._queue.put(record(row) if type(row) is ScoredRow else row)
            except Exception:  # a malformed record must not fail the request it logs
                log.exception("cannot log a prediction row")
                self._lost(1)

    def wait_for_room(self, rows: int, timeout: float = 600.0) -> bool:
        """Block until ``rows`` more rows fit in the queue: back-pressure for a batch producer,
        which would rather wait for the writer than drop rows (the service never waits). False
        when the writer made no room within ``timeout`` seconds (the rows are then dropped and
        counted as usual)."""
        deadline = time.monotonic() + timeout
        limit = max(self.max_queue_rows - rows, 0)
        while self._queue.qsize() > limit and not self._closed:
            if time.monotonic() >= deadline:
                return False
            time.sleep(TICK)
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Stop taking rows, hand everything queued to the writer, wait for it to write it all."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        # The sender wakes every TICK seconds and sends everything queued in one frame: the request
        # path shares the interpreter with it, so the fewer wake-ups and the shorter each hold
        # (a pickle of plain values), the less a request waits.
        while True:
            stopping = self._stop.wait(TICK)
            rows = self._take_all()
            if rows:
                self._send(rows)
            if stopping and self._queue.empty():
                break
        if self._writer is not None:
            self._writer.finish(timeout=60.0)

    def _take_all(self) -> list[LogRow]:
        taken: list[LogRow] = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                return taken

    def _send(self, rows: list[LogRow]) -> None:
        try:
            frame = pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a row that cannot be pickled: drop it (counted), send the others
            log.exception("cannot pickle a prediction log row; sending the others")
            keep = [row for row in rows if _picklable(row)]
            self._lost(len(rows) - len(keep))
            if not keep:
                return
            rows, frame = keep, pickle.dumps(keep, protocol=pickle.HIGHEST_PROTOCOL)
        writer = self._writer
        if writer is None or not writer.alive():
            writer = self._writer = self._restart_writer(writer)
            if writer is None:
                self._lost(len(rows))
                return
        if not writer.send(frame, len(rows)):
            self._lost(len(rows))
            self._writer = self._restart_writer(writer)

    def _start_writer(self) -> _Writer:
        return _Writer(self, next(self._writers))

    def _restart_writer(self, old: _Writer | None) -> _Writer | None:
        if old is not None:
            old.abandon()
        try:
            return self._start_writer()
        except OSError:
            log.exception("cannot start a prediction log writer")
            time.sleep(1.0)  # do not spin: the next frame tries again
            return None

    def _written(self, path: Path, rows: int) -> None:
        with self._lock:
            self.files.append(path)
            self.rows_written += rows

    def _shipping(self, report: Mapping[str, Any]) -> None:
        ok = "shipped" in report
        pending = int(report.get("pending", 0))
        with self._lock:
            if ok:
                self.shipped.append(str(report["shipped"]))
            else:
                self.ship_failures += 1
            self.unshipped = pending
        if self._on_ship:
            self._on_ship(ok, pending)

    def _lost(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self.dropped += n
        if self._on_drop:
            self._on_drop(n)


def _check_remote(remote: str) -> None:
    """A remote the writer can ship to, or a clear error now (not a writer that fails later)."""
    import importlib.util

    from noria.errors import MissingExtraError
    from noria.remote_log import parse_remote

    parse_remote(remote)
    if importlib.util.find_spec("boto3") is None:
        raise MissingExtraError(
            f"shipping the prediction log to {remote} needs boto3", fix="pip install 'noria[cluster]'"
        )


def _picklable(row: Any) -> bool:
    try:
        pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return False
    return True


class _Writer:
    """One writer process, the pipe to it and a thread reading what it reports (files, lost rows)."""

    def __init__(self, owner: PredictionLog, number: int) -> None:
        self.owner = owner
        self.sent = 0  # rows sent
        self.settled = 0  # rows the writer reported written or lost
        # A write and its count happen together: the reader must not settle a dead writer's account
        # between the two (rows in the pipe but not yet in ``sent`` would be lost uncounted).
        self._sending = threading.Lock()
        argv = [
            sys.executable, "-m", "noria.serving.predlog", str(owner.folder),
            str(owner.roll_rows), str(owner.roll_seconds), f"{os.getpid()}-{number}",
            str(owner.project_root or ""), owner.profile or "", owner.remote or "",
        ]  # fmt: skip
        # Its own session: a Ctrl-C or a signal to the service's process group does not reach it; it
        # ends when the service closes the pipe (or dies, which closes it too).
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, start_new_session=True
        )
        self.ready = threading.Event()  # the writer is running and ignores interrupts
        self._reader = threading.Thread(target=self._read, name="noria-prediction-log-reader", daemon=True)
        self._reader.start()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, frame: bytes, rows: int) -> bool:
        stdin = self.proc.stdin
        assert stdin is not None
        with self._sending:
            try:
                stdin.write(_FRAME.pack(len(frame)))
                stdin.write(frame)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                log.error("the prediction log writer (pid %d) is gone; starting a new one", self.proc.pid)
                return False
            self.sent += rows
        return True

    def finish(self, timeout: float) -> None:
        """Close the pipe (the writer writes what it holds and exits) and wait for it."""
        stdin = self.proc.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):  # a writer that died has a broken pipe
                stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("the prediction log writer (pid %d) did not finish in %.0f s; killing it", self.proc.pid, timeout)
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=timeout)

    def abandon(self) -> None:
        """A writer that died or stopped reading: whatever it had not written is lost."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish(timeout=10.0)

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        for line in stdout:
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if "ready" in report:
                self.ready.set()
                continue
            if "shipped" in report or "ship_failed" in report:
                self.owner._shipping(report)
                continue
            if "unshipped" in report:
                with self.owner._lock:
                    self.owner.unshipped = int(report["unshipped"])
                continue
            rows = int(report.get("rows", 0))
            self.settled += rows
            if "file" in report:
                self.owner._written(Path(report["file"]), rows)
            else:
                self.owner._lost(rows)
        self.proc.wait()
        with self._sending:
            unsettled = self.sent - self.settled  # sent but never reported: the writer died holding them
        if unsettled > 0:
            log.error("the prediction log writer (pid %d) ended without writing %d rows", self.proc.pid, unsettled)
            self.owner._lost(unsettled)
            self.settled = self.sent


class _Sink(Protocol):
    """Where the writer's reports go (its stdout)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def _write_file(folder: Path, table: Any, tag: str, seq: int) -> Path:
    import pyarrow.parquet as pq

    now = datetime.now(UTC)
    day = folder / f"date={now:%Y-%m-%d}"
    day.mkdir(parents=True, exist_ok=True)
    name = f"predictions-{now:%Y%m%dT%H%M%S%f}-{tag}-{seq:06d}.parquet"
    final = day / name
    tmp = day / f".{name}.tmp"
    try:
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _flush(
    folder: Path,
    tables: list[Any],
    roll_rows: int,
    tag: str,
    seq: Iterator[int],
    out: _Sink,
    *,
    whole: bool,
    on_file: Callable[[Path], None] | None = None,
) -> Any:
    """Write the converted tables as files of ``roll_rows`` rows (the last one shorter unless ``whole``:
    then the rest is returned, for the next file); report each file on ``out``, then hand it to ``on_file``."""
    import pyarrow as pa

    if not tables:
        return None
    try:
        groups = [concat_log_tables(tables)]
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a feature changed type between versions: a file each
        groups, whole = tables, False
    rest = None
    for group in groups:
        for offset in range(0, group.num_rows, roll_rows):
            table = group.slice(offset, roll_rows)
            if whole and table.num_rows < roll_rows:
                rest = table
                break
            try:
                path = _write_file(folder, table, tag, next(seq))
                report: dict[str, Any] = {"file": str(path), "rows": table.num_rows}
            except Exception as exc:  # a full disk must not kill the writer; the rows are counted as lost
                log.exception("cannot write %d prediction log rows to %s", table.num_rows, folder)
                report = {"lost": str(exc), "rows": table.num_rows}
            out.write(json.dumps(report) + "\n")
            out.flush()
            if on_file is not None and "file" in report:
                on_file(Path(report["file"]))
    return rest


def _convert(rows: list[Any], out: _Sink, keyer: EventKeyer | None = None) -> Any:
    try:
        return rows_to_table(rows, keyer)
    except Exception as exc:  # a malformed row must not kill the writer; the rows are counted as lost
        log.exception("cannot convert %d prediction log rows", len(rows))
        out.write(json.dumps({"lost": str(exc), "rows": len(rows)}) + "\n")
        out.flush()
        return None


def _read_exact(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd`` (fewer only at the end of the pipe), unbuffered: select() stays truthful."""
    parts: list[bytes] = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _read_frame(fd: int) -> list[Any] | None:
    head = _read_exact(fd, _FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    body = _read_exact(fd, size)
    if len(body) < size:
        return None
    rows: list[Any] = pickle.loads(body)
    return rows


class _Reports:
    """The writer's stdout, shared by its main thread and the shipper: one whole JSON line per write."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            n = self._stream.write(text)
            self._stream.flush()
            return n

    def flush(self) -> None:
        pass

    def send(self, report: Mapping[str, Any]) -> None:
        self.write(json.dumps(report) + "\n")


SHIP_DRAIN_SECONDS = 20.0  # at the end, how long the writer keeps shipping what is left


def writer_main(argv: Sequence[str]) -> int:
    """The writer process: frames of rows from stdin, Parquet files out, one JSON report per file on stdout.

    Arguments: folder, roll_rows, roll_seconds, tag, and optionally the project root, the profile
    (event keys) and the remote (shipping); an empty argument means none.
    """
    folder, roll_rows, roll_seconds, tag = Path(argv[0]), int(argv[1]), float(argv[2]), argv[3]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when the log ends: by closing the pipe
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    keyer = _keyer(argv[4], argv[5] or None) if len(argv) > 5 and argv[4] else None
    remote = argv[6] if len(argv) > 6 and argv[6] else None
    stdin, out = sys.stdin.fileno(), _Reports(sys.stdout)
    shipper = _shipper(remote, folder, out) if remote else None
    out.send({"ready": os.getpid()})
    seq = itertools.count()
    tables: list[Any] = []
    rows = 0
    first_at = 0.0
    while True:
        wait = None if not rows else max(0.0, first_at + roll_seconds - time.monotonic())
        ready, _, _ = select.select([stdin], [], [], wait)
        ended = False
        if ready:
            frame = _read_frame(stdin)
            if frame is None:
                ended = True
            elif frame:
                if not rows:
                    first_at = time.monotonic()
                table = _convert(frame, out, keyer)
                if table is not None:
                    tables.append(table)
                    rows += table.num_rows
        aged = bool(rows) and time.monotonic() - first_at >= roll_seconds
        if rows >= roll_rows or aged or (ended and rows):
            # Full files of roll_rows rows; the rest waits for the next one, unless it has waited long enough.
            rest = _flush(
                folder,
                tables,
                roll_rows,
                tag,
                seq,
                out,
                whole=not (aged or ended),
                on_file=shipper.ship if shipper is not None else None,
            )
            tables, rows = ([rest], rest.num_rows) if rest is not None else ([], 0)
        if ended:
            if shipper is not None:
                left = shipper.drain(SHIP_DRAIN_SECONDS)
                if left:
                    log.warning(
                        "%d prediction log files in %s are not shipped yet: the next start ships them", left, folder
                    )
                out.send({"unshipped": left})
            return 0


def _shipper(remote: str, folder: Path, out: _Reports) -> Any:
    """The shipper thread of this writer; None (files stay local, and say so) if it cannot start."""
    try:
        from noria.remote_log import Shipper

        folder.mkdir(parents=True, exist_ok=True)
        return Shipper(remote, folder, out.send)
    except Exception as exc:
        log.exception("the prediction log cannot ship to %s; files stay in %s", remote, folder)
        out.send({"ship_failed": f"{type(exc).__name__}: {exc}", "path": str(folder), "pending": 0})
        return None


def _keyer(root: str, profile: str | None) -> EventKeyer | None:
    """The project's event keyer; None (rows logged without key) if the project cannot be read."""
    try:
        from noria.config import load_project

        return EventKeyer(load_project(Path(root), profile=profile))
    except Exception:
        log.exception("the prediction log cannot compute event keys for %s; rows are logged without them", root)
        return None


def concat_log_tables(tables: Sequence[Any]) -> Any:
    """Log files as one table: columns unified across files; a feature that is a number in one file
    and text in another (a category that looked numeric) becomes text everywhere."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    kinds: dict[str, set[Any]] = {}
    for table in tables:
        for field in table.schema:
            if not pa.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(field.type)
    mixed = {name for name, found in kinds.items() if len(found) > 1}
    fixed = []
    for table in tables:
        for name in mixed & set(table.column_names):
            i = table.column_names.index(name)
            column = table.column(i)
            text = pa.array([None if v is None else str(v) for v in column.to_pylist()], type=pa.string())
            table = table.set_column(i, pa.field(name, pa.string()), text)
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


def read_prediction_log(folder: Path | str) -> Any:
    """Every finished file of a prediction log folder as one pandas DataFrame (empty if none)."""
    import pandas as pd
    import pyarrow.parquet as pq

    files = sorted(Path(folder).glob("date=*/predictions-*.parquet"))
    if not files:
        return pd.DataFrame(columns=list(_FIXED))
    return concat_log_tables([pq.read_table(f) for f in files]).to_pandas()


__all__ = [
    "EVENT_TIME",
    "FEATURE_PREFIX",
    "KEY_PREFIX",
    "RECORD_FIELDS",
    "EventKeyer",
    "LogRow",
    "PredictionLog",
    "ScoredRow",
    "concat_log_tables",
    "read_prediction_log",
    "record",
    "rows_to_table",
]

if __name__ == "__main__":
    sys.exit(writer_main(sys.argv[1:]))
