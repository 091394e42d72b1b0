"""The prediction log's writer process, and the service's handle on it.

:class:`WriterProcess` (service side) starts ``python -m noria.serving.predlog_writer`` in its
own session, sends it pickled frames of rows through its stdin (each frame preceded by its
length, ``_FRAME``) and reads the JSON reports it prints (a file written, rows lost, a file
shipped); rows sent but never reported when the writer ends are counted as lost.

:func:`writer_main` (the process) builds the Arrow columns of the frames it received, up to
``CONVERT_ROWS`` rows at a time (:func:`~noria.serving.predlog_rows.rows_to_table`, event keys by
:class:`~noria.serving.predlog_keys.EventKeyer`), writes a Parquet file when ``roll_rows`` rows
are waiting or the oldest has waited ``roll_seconds`` (:func:`noria.atomic.temp_path`: a hidden
temp file, fsync-ed, renamed, the folder fsync-ed), and
with a remote hands each file to :class:`noria.remote_log.Shipper`. It ignores SIGINT and
SIGTERM and stops when its pipe closes.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from noria import atomic
from noria.serving.predlog_keys import EventKeyer
from noria.serving.predlog_ledger import LOST_GLOB, Ledger, settle_dead
from noria.serving.predlog_reader import concat_log_tables
from noria.serving.predlog_rows import rows_to_table

log = logging.getLogger("noria.serving")

_FRAME = struct.Struct("<Q")  # the length of each pickled frame on the pipe


class WriterOwner(Protocol):
    """What a :class:`WriterProcess` needs of the log it writes for (:class:`noria.serving.predlog.PredictionLog`)."""

    folder: Path
    roll_rows: int
    roll_seconds: float
    project_root: Path | None
    profile: str | None
    remote: str | None
    instance: str  # names this log's writers' ledgers (predlog_ledger)

    def _written(self, path: Path, rows: int) -> None: ...

    def _lost(self, n: int) -> None: ...

    def _shipping(self, report: Mapping[str, Any]) -> None: ...

    def _unshipped(self, files: int) -> None: ...


class WriterProcess:
    """One writer process, the pipe to it and a thread reading what it reports (files, lost rows)."""

    def __init__(self, owner: WriterOwner, number: int) -> None:
        self.owner = owner
        self.sent = 0  # rows sent
        self.settled = 0  # rows the writer reported written or lost
        # A write and its count happen together: the reader must not settle a dead writer's account
        # between the two (rows in the pipe but not yet in ``sent`` would be lost uncounted).
        self._sending = threading.Lock()
        argv = [
            sys.executable, "-m", "noria.serving.predlog_writer", str(owner.folder),
            str(owner.roll_rows), str(owner.roll_seconds), f"{os.getpid()}-{number}",
            str(owner.project_root or ""), owner.profile or "", owner.remote or "", owner.instance,
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
                self.owner._unshipped(int(report["unshipped"]))
                continue
            if "earlier_loss" in report:  # a writer killed before (predlog_ledger): not this one's rows
                log.warning(
                    "the prediction log lost %d rows: an earlier writer (%s) was killed holding them; record %s",
                    report["earlier_loss"], report.get("ledger"), report.get("record"),
                )  # fmt: skip
                self.owner._lost(int(report["earlier_loss"]))
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
    with atomic.temp_path(final) as tmp:  # hidden .<name>.<hex>.tmp: readers' glob never sees it
        pq.write_table(table, tmp, compression="zstd")
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


def _convert_frames(frames: list[list[Any]], out: _Sink, keyer: EventKeyer | None = None) -> list[Any]:
    """The Arrow tables of ``frames``: one for all of them; if that fails, one per frame, so a
    malformed row costs only its own frame (reported lost)."""
    if len(frames) > 1:
        try:
            return [rows_to_table([row for frame in frames for row in frame], keyer)]
        except Exception:
            log.warning("cannot convert %d frames of prediction log rows together; one by one now", len(frames))
    tables = [_convert(frame, out, keyer) for frame in frames]
    return [table for table in tables if table is not None]


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
    """The writer's stdout, shared by its main thread and the shipper: one whole JSON line per write.

    With a ledger, every report of settled rows (a file written, rows lost) is entered in it too.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.ledger: Ledger | None = None

    def write(self, text: str) -> int:
        with self._lock:
            n = self._stream.write(text)
            self._stream.flush()
            if self.ledger is not None and '"rows"' in text:
                report = json.loads(text)
                if "file" in report:
                    self.ledger.written(int(report["rows"]))
                elif "lost" in report:
                    self.ledger.counted(int(report["rows"]))
            return n

    def flush(self) -> None:
        pass

    def send(self, report: Mapping[str, Any]) -> None:
        self.write(json.dumps(report) + "\n")


SHIP_DRAIN_SECONDS = 20.0  # at the end, how long the writer keeps shipping what is left
# Rows received before they are converted to Arrow together: a conversion has a fixed cost (the
# project's request mapping and timestamp function in pandas, an Arrow array per column) of about
# 2.5 ms, which frames of ~100 rows (the service sends every 50 ms) paid each time. Measured on the
# flights project: 45 us per row in frames of 85 rows, 18 us in batches of 1,000 (54 us per row
# in frames of 85 before the event keys were converted column by column).
CONVERT_ROWS = 2_000
GC_THRESHOLD = 10_000  # allocations between young-generation collections in the writer (Python's default: 700)


def writer_main(argv: Sequence[str]) -> int:
    """The writer process: frames of rows from stdin, Parquet files out, one JSON report per file on stdout.

    Arguments: folder, roll_rows, roll_seconds, tag, and optionally the project root, the profile
    (event keys), the remote (shipping) and the log's instance (ledgers); an empty argument means none.
    """
    folder, roll_rows, roll_seconds, tag = Path(argv[0]), int(argv[1]), float(argv[2]), argv[3]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when the log ends: by closing the pipe
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    keyer = _keyer(argv[4], argv[5] or None) if len(argv) > 5 and argv[4] else None
    remote = argv[6] if len(argv) > 6 and argv[6] else None
    instance = argv[7] if len(argv) > 7 and argv[7] else "-"
    stdin, out = sys.stdin.fileno(), _Reports(sys.stdout)
    shipper = _shipper(remote, folder, out) if remote else None
    out.ledger = Ledger(folder, f"{instance}-{tag}")
    _settle_earlier(folder, instance, out, shipper)
    # What the writer loaded (pandas, pyarrow, the project's code) lives as long as it does: out of
    # the collector's sight. A conversion makes a few hundred thousand short-lived objects; with
    # the default threshold (700) the collector ran every few rows. Together 24 -> 20 us a row.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)
    out.send({"ready": os.getpid()})
    seq = itertools.count()
    tables: list[Any] = []
    pending: list[list[Any]] = []  # frames received, converted together (CONVERT_ROWS) to share the fixed cost
    pending_rows = 0
    rows = 0  # rows held: converted and pending
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
                out.ledger.received(len(frame))
                if not rows:
                    first_at = time.monotonic()
                pending.append(frame)
                pending_rows += len(frame)
                rows += len(frame)
        aged = bool(rows) and time.monotonic() - first_at >= roll_seconds
        writing = rows >= roll_rows or aged or (ended and rows)
        if pending and (writing or pending_rows >= CONVERT_ROWS):
            tables.extend(_convert_frames(pending, out, keyer))
            pending, pending_rows = [], 0
            rows = sum(table.num_rows for table in tables)  # rows that could not be converted are reported lost
        if writing and rows:
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
            out.ledger.close()  # every row received is in a file or reported lost
            return 0


def _settle_earlier(folder: Path, instance: str, out: _Reports, shipper: Any) -> None:
    """Report (and ship) what writers killed earlier on this folder lost; ship records left unshipped.

    A dead writer of this same log (``instance``) was counted by the service when it died: its
    ledger is only removed."""
    try:
        settled = settle_dead(folder, counted_by=instance)
    except OSError:
        log.exception("cannot read the ledgers of earlier writers in %s", folder)
        return
    for loss, record in settled:
        out.send({"earlier_loss": loss.rows, "ledger": loss.ledger, "record": str(record)})
    if shipper is not None:
        for record in sorted(folder.glob(LOST_GLOB)):  # new ones, and any an earlier writer did not ship
            shipper.ship(record)


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


__all__ = ["SHIP_DRAIN_SECONDS", "WriterOwner", "WriterProcess", "writer_main"]

if __name__ == "__main__":
    sys.exit(writer_main(sys.argv[1:]))
