"""The prediction log: every request and response, as Parquet files, written by a child process.

The request path turns each scored row into a tuple of plain values (:func:`record`: strings,
numbers, the body bytes; about a microsecond) and puts it on a queue. A sender thread looks at
the queue every ``TICK`` seconds and hands everything waiting to a writer process in one
pickled frame through a pipe: pickling plain values is C code, and the pipe write releases the
interpreter. The writer process (``python -m noria.serving.predlog_writer``) builds the Arrow
columns and writes a Parquet file when ``roll_rows`` rows are waiting or the oldest has waited
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

This module is the log's API: :class:`PredictionLog` (the queue and the sender thread) and the
names callers use, re-exported from where they live: the rows and their Arrow table
(:mod:`noria.serving.predlog_rows`), the event keys (:mod:`noria.serving.predlog_keys`), the
writer process and the service's handle on it (:mod:`noria.serving.predlog_writer`) and the
reader (:mod:`noria.serving.predlog_reader`). Import from here.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from noria.serving.predlog_keys import EventKeyer
from noria.serving.predlog_reader import concat_log_tables, read_prediction_log
from noria.serving.predlog_rows import (
    EVENT_TIME,
    FEATURE_PREFIX,
    KEY_PREFIX,
    RECORD_FIELDS,
    LogRow,
    ScoredRow,
    record,
    rows_to_table,
)
from noria.serving.predlog_writer import WriterProcess

log = logging.getLogger("noria.serving")

TICK = 0.05  # seconds between the sender's looks at the queue


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
        # This log's writers name their ledgers with it: a dead one of ours is already counted here.
        self.instance = secrets.token_hex(4)
        self._writer: WriterProcess | None = self._start_writer()  # fails here, loudly, if no writer process can run
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

    def _start_writer(self) -> WriterProcess:
        return WriterProcess(self, next(self._writers))

    def _restart_writer(self, old: WriterProcess | None) -> WriterProcess | None:
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

    def _unshipped(self, files: int) -> None:
        with self._lock:
            self.unshipped = files

    def _lost(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self.dropped += n
        if self._on_drop:
            self._on_drop(n)


def _check_remote(remote: str) -> None:
    """A remote the writer can ship to, or a clear error now (not a writer that fails later)."""
    from noria import s3
    from noria.remote_log import parse_remote

    parse_remote(remote)
    s3.require_boto3(f"shipping the prediction log to {remote}")


def _picklable(row: Any) -> bool:
    try:
        pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return False
    return True


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
