"""Monitoring records in object storage, for processes that start with an empty project folder.

A Kubernetes CronJob runs ``noria monitor drift``, ``feedback`` and ``run`` in a pod whose
project folder is an ``emptyDir``: the drift and performance records, review queues and the
retraining decisions it writes would die with the pod, and the next run would judge the policy
(cool-downs, how many windows in a row drifted) on no history. With ``monitoring.remote``
(``s3://bucket/prefix``) the monitoring folder is mirrored there:

- **pull**, once per process, the first time the project's :class:`MonitoringStore` is opened:
  every object under the prefix whose local copy is missing or differs (size, then MD5 against
  the object's ETag) is downloaded to a hidden temporary name and renamed into place;
- **push**, write-through: every record the store writes (a drift or performance record, a
  review queue, a decision line, a reviewer's mark) is uploaded as soon as it is on disk, in one
  PUT (a reader sees the whole object or the previous one). A failed upload fails the command
  with the bucket and the fix, so a CronJob's retry recomputes it; nothing is silently local.

The records are small (kB per window) and plain (JSON, JSONL, Parquet), so they are mirrored
whole rather than merged. Writers are the monitoring Job (``concurrencyPolicy: Forbid``) and a
person acting through the CLI or the console; two writers of the same ``decisions.jsonl`` at the
same moment would keep the last upload (the CronJob's policy forbids that in the cluster).

The endpoint and credentials come from the environment as for every S3 client of Noria
(:mod:`noria.s3`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from noria import atomic, s3
from noria.errors import ExternalToolError, NoriaError

log = logging.getLogger("noria.monitoring")

_OPENED: dict[tuple[str, str], RemoteRecords] = {}  # (local root, remote) -> pulled in this process
_LOCK = threading.Lock()
KEY = "monitoring.remote"  # the config key of the records' s3:// URL
REFRESH_S = 60.0  # a long-lived reader (the service's exporter) pulls at most this often


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RemoteRecords:
    """One ``s3://bucket/prefix`` holding a project's monitoring folder."""

    def __init__(self, url: str, root: Path) -> None:
        self.url = url
        self.root = Path(root)
        self.bucket, self.prefix = s3.parse_url(url, KEY, "s3://noria-data/monitoring")
        self.endpoint = s3.endpoint_url(None)
        self.store = s3.Store(url, self.bucket, self.prefix, self.endpoint, "the monitoring records", KEY)
        self.client: Any = s3.client(self.endpoint, purpose=f"the monitoring records in {url}", connect_timeout=5)
        self._last_try: float | None = None

    def where(self) -> str:
        return self.store.where()

    def key(self, path: Path) -> str:
        relative = Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _fail(self, action: str, exc: BaseException) -> NoriaError:
        """Every S3 failure as an :class:`ExternalToolError` (exit 7: the CronJob's retry recomputes the records)."""
        return s3.error(exc, self.store, action, config_errors=False)

    def pull(self) -> list[str]:
        """Copy every object whose local file is missing or differs; returns the relative paths copied."""
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start)
            objects = [item for page in pages for item in page.get("Contents", [])]
        except Exception as exc:
            raise self._fail("list", exc) from exc
        copied = []
        for item in objects:
            relative = item["Key"][len(start) :]
            if not relative or relative.endswith("/") or any(p.startswith(".") for p in relative.split("/")):
                continue
            local = self.root / relative
            etag = str(item.get("ETag", "")).strip('"')
            same_size = local.is_file() and local.stat().st_size == int(item.get("Size", -1))
            if same_size and ("-" in etag or _md5(local) == etag):  # a multipart ETag is no MD5: size it is
                continue
            try:
                with atomic.temp_path(local) as tmp:
                    self.client.download_file(self.bucket, item["Key"], str(tmp))
            except Exception as exc:
                raise self._fail(f"copy {item['Key']}", exc) from exc
            copied.append(relative)
        return copied

    def refresh(self, every_s: float = REFRESH_S) -> None:
        """Pull again if the last pull is older than ``every_s``; a failure is logged, not raised
        (a long-lived reader goes on with the records it has and tries again later)."""
        now = time.monotonic()
        if self._last_try is not None and now - self._last_try < every_s:
            return
        self._last_try = now
        try:
            copied = self.pull()
        except ExternalToolError as exc:
            log.warning("monitoring records not refreshed from %s: %s", self.where(), exc.message)
            return
        if copied:
            log.info("pulled %d monitoring records from %s", len(copied), self.where())

    def push(self, path: Path) -> str:
        """Upload one file (one PUT); returns its key."""
        key = self.key(path)
        try:
            self.client.upload_file(str(path), self.bucket, key)
        except Exception as exc:
            raise self._fail(f"upload {key}", exc) from exc
        return key


def remote_of(root: Path, url: str | None, *, pull: bool = True) -> RemoteRecords | None:
    """The remote of a monitoring folder (None without ``monitoring.remote``), pulled once per process.

    ``pull=False`` (a reader that must not depend on the bucket, such as the service's exporter,
    which refreshes itself with :meth:`RemoteRecords.refresh`): the remote is returned unpulled.
    """
    if not url:
        return None
    marker = (str(Path(root).resolve()), url)
    with _LOCK:
        remote = _OPENED.get(marker)
        if remote is None:
            remote = RemoteRecords(url, root)
            if not pull:
                return remote
            copied = remote.pull()
            _OPENED[marker] = remote
            if copied:
                log.info("pulled %d monitoring records from %s", len(copied), remote.where())
    return remote


def forget_pulls() -> None:
    """Pull again on the next open (tests; a long-lived process that wants fresh records)."""
    with _LOCK:
        _OPENED.clear()


__all__ = ["RemoteRecords", "forget_pulls", "remote_of"]
