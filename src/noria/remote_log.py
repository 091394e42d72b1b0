"""The prediction log in object storage: each rolled file shipped to ``s3://bucket/prefix``, read back by monitoring.

Serving writes the log as Parquet files in a local folder (``noria.serving.predlog``); with
``serving.prediction_log.remote`` set, the log's writer process ships every file it rolls to
that location and deletes the local file once the upload succeeded (:class:`Shipper`). A file
whose upload failed stays and is tried again later; files left behind by a process killed
between the write and the upload are shipped by the next writer started on the same folder.

The object key is the file's date folder and name plus the first 16 hex digits of the sha256 of
its bytes: ``<prefix>/date=2013-07-01/predictions-...-<sha16>.parquet``. An upload is one PUT
(a reader sees the whole object or none), and shipping the same file twice (a writer killed
after the upload but before the delete) writes the same key with the same bytes: at-least-once
shipping leaves exactly one object per file.

Monitoring reads the log through :func:`mirror`: the keys not yet copied are downloaded (to a
hidden temporary name, then renamed) into a local cache folder, which is then read like the
local log. Objects are immutable (their name holds their hash), so a copy never goes stale.

The endpoint and credentials come from the environment, as for every S3 client of Noria
(:mod:`noria.s3`): ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``, ``MLFLOW_S3_ENDPOINT_URL``),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (or a profile, or the pod's role).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noria import atomic, s3

log = logging.getLogger("noria.serving")

REMOTE_KEY = "serving.prediction_log.remote"  # the config key of the log's s3:// URL
FILE_GLOB = "date=*/predictions-*.parquet"  # the finished files of a log folder (temp files are hidden)
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 2  # per upload; the shipper itself retries later
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0


def parse_remote(url: str, key: str = REMOTE_KEY, example: str = "s3://noria-data/predictions") -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix`` (:func:`noria.s3.parse_url`, this log's config key by default)."""
    return s3.parse_url(url, key, example)


def remote_key(prefix: str, folder: Path, path: Path, digest: str) -> str:
    """The object key of a log file: its date folder and name, with the content hash before the suffix."""
    relative = path.relative_to(folder).as_posix()
    stem, dot, suffix = relative.rpartition(".")
    name = f"{stem}-{digest[:16]}{dot}{suffix}" if dot else f"{relative}-{digest[:16]}"
    return f"{prefix}/{name}" if prefix else name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RemoteLog:
    """One ``s3://bucket/prefix`` holding a prediction log: upload a file, list and copy the files back."""

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        self.url = url
        self.bucket, self.prefix = parse_remote(url)
        self.endpoint = s3.endpoint_url(endpoint_url)
        self.store = s3.Store(url, self.bucket, self.prefix, self.endpoint, "the prediction log", REMOTE_KEY)
        self.client: Any = s3.client(
            self.endpoint,
            purpose=f"the prediction log in {url}",
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            max_attempts=MAX_ATTEMPTS,
        )

    def where(self) -> str:
        return self.store.where()

    def upload(self, folder: Path, path: Path) -> str:
        """Ship one finished file; returns its key. Raises the S3 client's error on failure.

        An object already there under the key (same name, same hash: shipped before a kill) is
        not sent again.
        """
        digest = _sha256(path)
        key = remote_key(self.prefix, folder, path, digest)
        size = path.stat().st_size
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
            if int(head.get("ContentLength", -1)) == size:
                return key
        except Exception as exc:
            if not s3.is_missing(exc):
                raise
        self.client.upload_file(str(path), self.bucket, key)
        return key

    def keys(self) -> list[str]:
        """Every log file's key under the prefix, oldest date folder first."""
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start)
            found = [item["Key"] for page in pages for item in page.get("Contents", [])]
        except Exception as exc:
            raise s3.error(exc, self.store, "list the files") from exc
        names = [k[len(start) :] for k in found]
        return sorted(start + n for n in names if n.startswith("date=") and n.endswith(".parquet") and "/" in n)

    def mirror(self, dest: Path) -> Path:
        """Copy the log files not yet in ``dest`` (same relative names as the keys); returns ``dest``."""
        start = f"{self.prefix}/" if self.prefix else ""
        for key in self.keys():
            local = dest / key[len(start) :]
            if local.is_file():
                continue
            try:
                with atomic.temp_path(local) as tmp:
                    self.client.download_file(self.bucket, key, str(tmp))
            except Exception as exc:
                raise s3.error(exc, self.store, f"copy {key}") from exc
        return dest


def mirror(url: str, dest: Path) -> Path:
    """The prediction log of ``url`` as a local folder (``dest``), new files copied first."""
    return RemoteLog(url).mirror(dest)


class Shipper:
    """A thread of the log's writer process: ships each rolled file, deletes it once shipped.

    Files given to :meth:`ship` and the finished files already in the folder when it starts
    (left by a process killed before it shipped them) are uploaded in order. A failed upload is
    reported and tried again later (after 1 s, doubling up to a minute while S3 keeps failing);
    the file stays on disk meanwhile. :meth:`drain` (the writer's end) tries what is left once
    more, within a deadline: what still fails stays for the next writer on this folder.
    ``report`` receives one dict per attempt: ``{"shipped": key, "path": ..., "pending": n}``
    or ``{"ship_failed": reason, "path": ..., "pending": n}``.
    """

    def __init__(self, remote: str, folder: Path, report: Callable[[dict[str, Any]], None]) -> None:
        self.folder = Path(folder)
        self.remote = RemoteLog(remote)
        self.report = report
        self._queue: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._failed: list[Path] = []  # waiting for the next retry, oldest first
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._delay = RETRY_FIRST_S
        self._queued = 0  # files in the queue (one being shipped is in neither count)
        for path in sorted(self.folder.glob(FILE_GLOB)):  # left behind by an earlier writer
            self.ship(path)
        self._thread = threading.Thread(target=self._run, name="noria-prediction-log-shipper", daemon=True)
        self._thread.start()

    def ship(self, path: Path) -> None:
        with self._lock:
            self._queued += 1
        self._queue.put(path)

    def pending(self) -> int:
        """Files not shipped yet: queued, being shipped, or waiting for a retry."""
        with self._lock:
            return self._queued + len(self._failed)

    def drain(self, timeout: float) -> int:
        """Ship what is queued, try every failed file once more, stop; within ``timeout`` s.

        Returns how many files are left on disk unshipped (the next writer on this folder ships them).
        """
        deadline = time.monotonic() + timeout
        self._queue.put(None)
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():  # still uploading: it is a daemon thread, the process may end under it
            return self.pending()
        self._retry(until=deadline, final=True)
        return self.pending()

    def _run(self) -> None:
        while True:
            with self._lock:
                due = bool(self._failed) and time.monotonic() >= self._retry_at
                wait = max(0.0, self._retry_at - time.monotonic()) if self._failed else None
            if due:
                self._retry()
                continue
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if item is None:
                return
            with self._lock:
                self._queued -= 1
            self._attempt(item)

    def _retry(self, until: float | None = None, *, final: bool = False) -> None:
        """Try the failed files again, oldest first. A round ends at the first that fails again,
        unless ``final`` (the end: each is tried once, until the ``until`` deadline)."""
        with self._lock:
            rounds = len(self._failed)
        for _ in range(rounds):
            if until is not None and time.monotonic() >= until:
                return
            with self._lock:
                if not self._failed:
                    return
                path = self._failed.pop(0)
            if not self._attempt(path, final=final) and not final:
                return

    def _attempt(self, path: Path, *, final: bool = False) -> bool:
        """Upload one file and delete it; on failure keep it, for a retry (scheduled unless ``final``)."""
        if not path.is_file():  # shipped and deleted meanwhile by another writer on the same folder
            return True
        try:
            key = self.remote.upload(self.folder, path)
        except FileNotFoundError:
            return True
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("cannot ship %s to %s: %s (kept; tried again later)", path.name, self.remote.where(), reason)
            with self._lock:
                self._failed.append(path)
                if not final:
                    self._retry_at = time.monotonic() + self._delay
                    self._delay = min(self._delay * 2, RETRY_MAX_S)
            self.report({"ship_failed": reason, "path": str(path), "pending": self.pending()})
            return False
        path.unlink(missing_ok=True)  # only now: the object is in S3
        with self._lock:
            self._delay = RETRY_FIRST_S
        self.report({"shipped": key, "path": str(path), "pending": self.pending()})
        return True


__all__ = ["FILE_GLOB", "RemoteLog", "Shipper", "mirror", "parse_remote", "remote_key"]
