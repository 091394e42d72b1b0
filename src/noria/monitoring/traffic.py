"""The service's recent request rate, read from the prediction log: what ``noria status`` and the
console's overview show beside the service's health.

The prediction log is the record of every answered request (:mod:`noria.serving.predlog`). Its
files are named by the time they were written (``date=YYYY-MM-DD/predictions-YYYYMMDDTHHMMSSffffff-...``,
UTC), and a file holds only rows answered before it was written, so the rows of the last hour
are all in the files written in the last hour: only those are opened, and of each only the
``timestamp``, ``row`` and ``served`` columns are read (Parquet column projection). What a file
holds is kept per (path, size, modification time) as counts per second, so a second look reads
only the files written since.

Counted are served rows (shadow rows scored by a challenger are not answers); a request is its
row 0 (a batch request logs one row per input). The windows end at ``as_of``, the start of the
current minute, so the same log gives the same numbers all minute long (the console's JSON and
``noria status --json`` agree). Rows reach the log when the service rolls a file
(``serving.prediction_log.roll_seconds``), so the newest minute or so is not counted yet.

With ``serving.prediction_log.remote`` the files leave the local folder once shipped: the local
folder and the copy monitoring keeps (``remote_cache``, as of its last refresh) are read; nothing
is fetched from object storage here.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from noria.config import Project

WINDOWS_MIN = (5, 60)  # the windows the rate is given for, in minutes; the last one judges staleness
_NAME = re.compile(r"^predictions-(\d{8}T\d{12})-")


@dataclass(frozen=True)
class _FileCounts:
    """One log file's served rows and requests, counted per second (Unix seconds, ascending)."""

    seconds: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    requests: npt.NDArray[np.int64]
    newest: float | None  # the newest served row's time, Unix seconds


_CACHE: dict[tuple[str, int, int], _FileCounts] = {}
_LOCK = threading.Lock()


def request_rate(project: Project, now: datetime | None = None) -> dict[str, Any]:
    """Requests and served rows in the last 5 and 60 whole minutes, and the newest request's time.

    ``{"log": "off"}`` when the project does not log predictions.
    """
    cfg = project.config.serving.prediction_log
    if not cfg.enabled:
        return {"log": "off"}
    as_of = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    start = as_of - timedelta(minutes=max(WINDOWS_MIN))
    folders = [project.path(cfg.dir)]
    if getattr(cfg, "remote", None) and getattr(cfg, "remote_cache", None):
        folders.append(project.path(cfg.remote_cache))
    files = _files_since(folders, start, max(as_of, datetime.now(UTC)))
    counts = [_counts(path) for path in files.values()]
    end_s = int(as_of.timestamp())
    windows = []
    for minutes in WINDOWS_MIN:
        begin_s = end_s - minutes * 60
        requests = rows = 0
        for c in counts:
            lo, hi = c.seconds.searchsorted(begin_s), c.seconds.searchsorted(end_s)
            requests += int(c.requests[lo:hi].sum())
            rows += int(c.rows[lo:hi].sum())
        windows.append(
            {
                "minutes": minutes,
                "requests": requests,
                "predictions": rows,
                "per_minute": round(requests / minutes, 3),
                "per_second": round(requests / (minutes * 60), 4),
            }
        )
    newest = max((c.newest for c in counts if c.newest is not None), default=None)
    kept = set(files.values())
    if newest is None:  # nothing in the window: when was the last request?
        before = _newest_file_before(folders, start)
        if before is not None:
            newest = _counts(before).newest
            kept.add(before)
    last = None if newest is None else datetime.fromtimestamp(newest, UTC).isoformat(timespec="seconds")
    _forget(kept)
    return {"as_of": as_of.isoformat(timespec="seconds"), "windows": windows, "last_request_at": last}


def rate_text(rate: dict[str, Any]) -> str:
    """The rate in words: "12.4 requests/min over 5 min, 10.1/min over 60 min" (or why there is none)."""
    if rate.get("log") == "off":
        return "the prediction log is off (serving.prediction_log.enabled): no request rate"
    parts = [f"{w['per_minute']:.3g} requests/min over {w['minutes']} min ({w['requests']:,})" for w in rate["windows"]]
    return "; ".join(parts)


def _files_since(folders: list[Path], start: datetime, until: datetime) -> dict[str, Path]:
    """The log files written at or after ``start`` (by their names; the day folders up to ``until``),
    by name relative to the folder: a file in the local folder and in the remote copy counts once."""
    days = {f"date={(start + timedelta(days=d)):%Y-%m-%d}" for d in range((until.date() - start.date()).days + 1)}
    stamp = f"{start:%Y%m%dT%H%M%S%f}"
    found: dict[str, Path] = {}
    for folder in folders:
        for day in sorted(days):
            directory = folder / day
            if not directory.is_dir():
                continue
            for path in directory.glob("predictions-*.parquet"):
                m = _NAME.match(path.name)
                if m and m[1] >= stamp:
                    found.setdefault(f"{day}/{path.name}", path)
    return found


def _newest_file_before(folders: list[Path], start: datetime) -> Path | None:
    """The newest log file written before ``start`` (by its name)."""
    stamp = f"{start:%Y%m%dT%H%M%S%f}"
    newest: tuple[str, Path] | None = None
    for folder in folders:
        days = sorted((d for d in folder.glob("date=*") if d.is_dir()), reverse=True) if folder.is_dir() else []
        for day in days:
            names = [(m[1], p) for p in day.glob("predictions-*.parquet") if (m := _NAME.match(p.name))]
            names = [n for n in names if n[0] < stamp]
            if names:
                best = max(names)
                newest = best if newest is None or best[0] > newest[0] else newest
                break
    return None if newest is None else newest[1]


def _counts(path: Path) -> _FileCounts:
    try:
        st = path.stat()
    except OSError:
        return _empty()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    found = _read(path)
    with _LOCK:
        for old in [k for k in _CACHE if k[0] == key[0]]:  # the file changed: its old counts go
            del _CACHE[old]
        _CACHE[key] = found
    return found


def _read(path: Path) -> _FileCounts:
    """One file's ``timestamp``, ``row`` and ``served`` columns, counted per second."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:  # ParquetFile, not read_table: no dataset machinery (whose import pulls in pandas, ~1 s)
        with pq.ParquetFile(path) as file:
            names = set(file.schema_arrow.names)
            if "timestamp" not in names:
                return _empty()
            table = file.read(columns=[c for c in ("timestamp", "row", "served") if c in names])
    except (OSError, pa.ArrowException):  # a file removed (shipped) or unreadable: nothing to count
        return _empty()
    keep = pc.is_valid(table["timestamp"])
    if "served" in names:
        keep = pc.and_(keep, pc.fill_null(table["served"], True))
    table = table.filter(keep)
    if table.num_rows == 0:
        return _empty()
    micros = table["timestamp"].cast(pa.timestamp("us")).cast(pa.int64()).to_numpy()
    seconds = micros // 1_000_000
    first = (
        np.asarray(pc.fill_null(pc.equal(table["row"], 0), True).to_numpy(zero_copy_only=False), dtype=bool)
        if "row" in names
        else np.ones(len(seconds), dtype=bool)
    )
    order = np.argsort(seconds, kind="stable")
    seconds, first = seconds[order], first[order]
    unique, index, rows = np.unique(seconds, return_index=True, return_counts=True)
    requests = np.add.reduceat(first.astype(np.int64), index)
    return _FileCounts(unique.astype(np.int64), rows.astype(np.int64), requests, float(micros.max()) / 1e6)


def _empty() -> _FileCounts:
    import numpy as np

    none = np.zeros(0, dtype=np.int64)
    return _FileCounts(none, none, none, None)


def _forget(current: set[Path]) -> None:
    """Drop the counts of files no longer in the window, so the cache stays small."""
    keep = {str(p) for p in current}
    with _LOCK:
        for key in [k for k in _CACHE if k[0] not in keep]:
            del _CACHE[key]


__all__ = ["WINDOWS_MIN", "rate_text", "request_rate"]
