"""The prediction log's ledger: what each writer received and settled, so a kill's loss is counted.

A writer process (:mod:`noria.serving.predlog_writer`) holds rows in memory until a file rolls
(``roll_rows`` rows or ``roll_seconds``). Killed with SIGKILL (an OOM kill, a liveness probe,
``kubectl delete --grace-period=0``) it loses them, and nothing it wrote says how many. So each
writer keeps a ledger in the log folder, ``.ledger-<instance>-<tag>-<token>``, open under an exclusive
``flock`` for its whole life, and appends one line per frame it receives (``r N``) and per batch it
settles (``w N`` written to a file, ``x N`` counted as lost already). Appends go straight to the
kernel (``os.write``, no buffering): a killed process's lines are kept (a machine crash may lose
the last ones; then the count is a lower bound). A clean end deletes the ledger.

A writer starting on the folder (a restarted container keeps its ``emptyDir``) settles the others:
a ledger whose lock it can take belongs to a dead writer, and ``received - written - lost`` of its
rows were lost. Each such loss becomes a record, ``lost/lost-<ledger>.json`` (rows, first and
last activity, host), which the writer reports to the service (a warning, counted in
``noria_prediction_log_dropped_rows_total``) and ships with the log when it has a remote, so
``noria monitor windows`` can say what the bucket is missing. Rows the service had not yet handed to
its writer (at most one ``TICK``) are not in any ledger.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from noria import atomic

LEDGER_GLOB = ".ledger-*"
LOST_DIR = "lost"
LOST_GLOB = f"{LOST_DIR}/lost-*.json"


@dataclass(frozen=True)
class Loss:
    """Rows a dead writer received and never wrote."""

    ledger: str
    rows: int
    received: int
    written: int
    counted: int  # rows the writer had counted as lost itself (a failed write, a bad row)
    first_at: str  # the ledger's creation (the writer's start), UTC
    last_at: str  # its last line (the writer's last frame or file), UTC
    host: str  # the pod (host name) that settled it: the same pod's restarted container


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Ledger:
    """This writer's ledger: created locked; ``received`` / ``written`` / ``counted`` append a line."""

    def __init__(self, folder: Path, tag: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f".ledger-{tag}-{secrets.token_hex(4)}"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new name: nobody else holds it

    def _line(self, kind: str, n: int) -> None:
        if n and self._fd >= 0:
            os.write(self._fd, f"{kind} {n}\n".encode())

    def received(self, n: int) -> None:
        self._line("r", n)

    def written(self, n: int) -> None:
        self._line("w", n)

    def counted(self, n: int) -> None:
        self._line("x", n)

    def close(self) -> None:
        """A clean end: every row is settled, the ledger goes (deleted while still locked)."""
        if self._fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = -1


def _read(path: Path) -> tuple[int, int, int]:
    received = written = counted = 0
    # only whole lines: the last one, without its newline, was cut by a crash
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]:
        kind, _, number = line.partition(" ")
        if not number.isdigit():
            continue
        if kind == "r":
            received += int(number)
        elif kind == "w":
            written += int(number)
        elif kind == "x":
            counted += int(number)
    return received, written, counted


def settle_dead(folder: Path, counted_by: str | None = None) -> list[tuple[Loss, Path]]:
    """Settle the ledgers of dead writers in ``folder``: a loss record for each that lost rows.

    Returns the new records and their files (``lost/lost-<ledger>.json``); ledgers of live writers
    (locked) are left alone; a dead writer that lost nothing leaves no record, nor does one of the
    log ``counted_by`` (``.ledger-<instance>-...``: the service that started it counted its loss).
    """
    found: list[tuple[Loss, Path]] = []
    for path in sorted(folder.glob(LEDGER_GLOB)) if folder.is_dir() else []:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # settled meanwhile by another worker, or closed
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer's
            received, written, counted = _read(path)
            stat = os.fstat(fd)
            lost = received - written - counted
            ours = counted_by is not None and path.name.startswith(f".ledger-{counted_by}-")
            if lost > 0 and not ours:
                loss = Loss(
                    ledger=path.name.lstrip("."),
                    rows=lost,
                    received=received,
                    written=written,
                    counted=counted,
                    first_at=_utc(getattr(stat, "st_birthtime", stat.st_ctime)),
                    last_at=_utc(stat.st_mtime),
                    host=socket.gethostname(),
                )
                record = folder / LOST_DIR / f"lost-{loss.ledger.removeprefix('ledger-')}.json"
                record.parent.mkdir(parents=True, exist_ok=True)
                atomic.write_json(record, asdict(loss), indent=2)
                found.append((loss, record))
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return found


def loss_records(folder: Path) -> list[Loss]:
    """The loss records in a log folder (a local log, or a monitoring copy of the bucket)."""
    out = []
    for path in sorted(folder.glob(LOST_GLOB)) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, TypeError):
            out.append(Loss(**json.loads(path.read_text(encoding="utf-8"))))
    return out


__all__ = ["LEDGER_GLOB", "LOST_GLOB", "Ledger", "Loss", "loss_records", "settle_dead"]
