"""Rendered pages kept until a record they read changes.

A page is built from records (the monitoring store, the prediction log, the registry database,
snapshot records, the feature store's files, usage records, the project's config and git head).
Reading some of them takes seconds (the prediction log, matplotlib's plots), so a built page is
kept with the *fingerprint* of those records: the size and modification time of every file under
the watched paths. The next request computes the fingerprint again (a ``stat`` per file) and
rebuilds the page only when it differs, so a page never shows an older state than the files hold.
A remote registry (an MLflow server) cannot be fingerprinted: its pages are kept at most
``REMOTE_TTL_S`` seconds.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from noria.config import Project

REMOTE_TTL_S = 30.0
MAX_PAGES = 128


def watched_paths(project: Project) -> list[Path]:
    """The files and folders whose content every page is computed from."""
    from noria.registry.mlflow_client import is_remote, tracking_uri

    cfg = project.config
    log = cfg.serving.prediction_log
    paths = [
        project.root / "noria.yaml",
        project.root / "features.yaml",
        project.root / "features",
        project.path(cfg.monitoring.dir),
        project.path(log.dir),
        project.data_dir / "snapshots",
        project.root / ".noria" / "feast",
        project.root / ".noria" / "features",
        project.root / ".git" / "HEAD",
        project.root / ".git" / "refs" / "heads",
    ]
    remote_cache = getattr(log, "remote_cache", None)
    if getattr(log, "remote", None) and remote_cache:
        paths.append(project.path(remote_cache))
    uri = tracking_uri(project)
    if uri.startswith("sqlite:///"):
        db = uri[len("sqlite:///") :]
        paths += [Path(db), Path(db + "-wal"), Path(db + "-journal")]  # a write may touch only the log
    elif not is_remote(uri) and "://" not in uri:
        paths.append(Path(uri))
    return paths


def fingerprint(paths: Iterable[Path]) -> str:
    """A digest of (path, size, mtime) of every file under ``paths`` (missing paths count too)."""
    digest = hashlib.blake2b(digest_size=16)
    for root in paths:
        digest.update(str(root).encode())
        for path in _files(root):
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _files(root: Path) -> Iterable[Path]:
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".staging")]
        for name in files:
            yield Path(folder) / name


class PageCache:
    """Built pages by (page key, fingerprint); thread-safe; the least recently used go first."""

    def __init__(self, project: Project, *, remote: bool = False) -> None:
        self._paths = watched_paths(project)
        self._remote = remote
        self._pages: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._keys: dict[str, threading.Lock] = {}

    def current(self) -> str:
        stamp = fingerprint(self._paths)
        if self._remote:  # the registry's state is not in a file here
            stamp += f"-{int(time.time() // REMOTE_TTL_S)}"
        return stamp

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """The page ``key`` as of the records now on disk, built by ``build`` when they changed."""
        with self._lock:
            guard = self._keys.setdefault(key, threading.Lock())
        with guard:  # two requests for one page build it once
            stamp = self.current()
            with self._lock:
                if (key, stamp) in self._pages:
                    self._pages.move_to_end((key, stamp))
                    return self._pages[(key, stamp)]
            value = build()
            with self._lock:
                for old in [k for k in self._pages if k[0] == key]:
                    del self._pages[old]
                self._pages[(key, stamp)] = value
                while len(self._pages) > MAX_PAGES:
                    self._pages.popitem(last=False)
            return value


__all__ = ["MAX_PAGES", "REMOTE_TTL_S", "PageCache", "fingerprint", "watched_paths"]
