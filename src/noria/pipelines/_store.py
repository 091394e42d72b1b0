"""Artifact stores: content-addressed folders plus small JSON records.

An artifact is a folder (written by a serializer, see ``_serializers``) whose id is the
sha256 of its files. A store keeps artifacts under ``objects/<id[:2]>/<id>/`` and JSON
records (cache entries, run records) under plain keys. Both kinds of write are atomic: a
reader sees a whole artifact or record, or nothing. An artifact is hashed again before a process
first uses it: one whose files were damaged on disk (corrupted, truncated) counts as missing, is
moved to ``damaged/`` and recomputed, never loaded. ``open_store`` picks the backend from
the URL: a folder path (default) or ``s3://bucket/prefix``.

An S3 store goes through :mod:`noria.s3`: it finds its endpoint as :func:`noria.s3.endpoint_url`
says (config, then the standard variables, then ``MLFLOW_S3_ENDPOINT_URL``), gives up on a silent
endpoint within seconds, and turns S3 failures into Noria errors naming the store, the endpoint
and the fix.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from noria import atomic, s3
from noria.errors import ConfigError, DataError, ExternalToolError
from noria.pipelines._errors import ArtifactNotFoundError
from noria.pipelines._serializers import META

log = logging.getLogger("noria.pipelines")

_STALE_SECONDS = 24 * 3600
DAMAGED = "damaged"  # where an artifact whose files no longer match its id is moved (kept for a look)
ENDPOINT_KEY = "pipelines.s3_endpoint_url"  # named in the fix when the endpoint cannot be reached
S3_MAX_ATTEMPTS = s3.MAX_ATTEMPTS  # per request (a test lowers it to fail fast)
# The endpoint rule and the error codes live in noria.s3; the old names stay for importers.
s3_endpoint_url = s3.endpoint_url
_error_code = s3.error_code


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk or an exhausted quota: the errno where
    Python has one, the message where a library (pyarrow) reports it only in words."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def store_full_error(url: str, exc: BaseException) -> ExternalToolError:
    """The error a run reports when its store (or the disk under its staging folder) is full."""
    return ExternalToolError(
        f"the pipeline store {url} is full: {type(exc).__name__}: {exc}",
        fix="free space there (or point pipelines.store at a larger disk), then re-run with the same "
        "--run-id: finished steps are reused, nothing half-written is",
    )


class ArtifactStore(Protocol):
    """Where artifacts and run records live. ``staging`` is a local folder for temporary files."""

    url: str
    staging: Path

    def put(self, folder: Path) -> str:
        """Take ownership of a finished artifact folder; returns its content id."""
        ...

    def get(self, artifact_id: str) -> Path:
        """A local folder holding the artifact's files (read it, do not modify it)."""
        ...

    def exists(self, artifact_id: str) -> bool: ...

    def read_record(self, key: str) -> dict[str, Any] | None:
        """The JSON record stored under ``key``, or None."""
        ...

    def write_record(self, key: str, record: dict[str, Any]) -> None:
        """Store ``record`` under ``key``, replacing any previous one atomically."""
        ...


def hash_folder(folder: Path) -> str:
    """sha256 over every file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def _object_key(artifact_id: str) -> str:
    if len(artifact_id) != 64 or any(c not in "0123456789abcdef" for c in artifact_id):
        raise ArtifactNotFoundError(
            f"{artifact_id!r} is not an artifact id", fix="artifact ids are 64 hex digits (sha256)"
        )
    return f"objects/{artifact_id[:2]}/{artifact_id}"


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid record key {key!r}")
    return key


def _decode(raw: bytes, where: str) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise DataError(f"the record {where} is not a JSON object", fix="delete it; the next run rewrites it")
    return record


class LocalArtifactStore:
    """A folder: ``objects/`` for artifacts, records as JSON files, ``tmp/`` for staging."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        self.staging = self.root / "tmp"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._verified: set[str] = set()  # ids whose files this process has hashed and found intact
        self._sweep_stale()

    def _sweep_stale(self) -> None:
        # Leftovers of killed runs: never read (only renamed-in objects are), just space.
        cutoff = time.time() - _STALE_SECONDS
        for entry in self.staging.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            except OSError:
                pass

    def put(self, folder: Path) -> str:
        artifact_id = hash_folder(folder)
        target = self.root / _object_key(artifact_id)
        if target.is_dir() and self._intact(artifact_id, target):
            shutil.rmtree(folder)
            return artifact_id
        atomic.fsync_tree(folder)  # the module's rule: content on disk before the rename publishes it
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.rename(target)
        except OSError as exc:
            if target.is_dir():  # another process stored the same content first
                shutil.rmtree(folder)
            elif exc.errno == errno.EXDEV:  # another filesystem: copy into staging, then rename
                staged = self.staging / f"{artifact_id}.{uuid.uuid4().hex}"
                shutil.copytree(folder, staged)
                return self.put(staged)
            else:
                raise
        atomic.fsync_dir(target.parent)
        return artifact_id

    def get(self, artifact_id: str) -> Path:
        folder = self.root / _object_key(artifact_id)
        if not folder.is_dir():
            raise ArtifactNotFoundError(
                f"artifact {artifact_id[:12]} is not in the store {self.url}",
                fix="re-run the pipeline without --step to produce it (or check the store URL)",
            )
        if not self._intact(artifact_id, folder):
            raise ArtifactNotFoundError(
                f"artifact {artifact_id[:12]} in the store {self.url} was damaged (its files no longer match "
                f"its content hash); it was moved to {self.root / DAMAGED} and is not used",
                fix="re-run the pipeline: the step that produced it runs again",
            )
        return folder

    def exists(self, artifact_id: str) -> bool:
        """Whether the artifact is there *and intact* (a damaged one is moved aside: the step reruns)."""
        folder = self.root / _object_key(artifact_id)
        return folder.is_dir() and self._intact(artifact_id, folder)

    def _intact(self, artifact_id: str, folder: Path) -> bool:
        """Hash the artifact's files (once per store object); move it to ``damaged/`` if they differ.

        A corrupted or truncated file (a bad disk, a copy cut short, a hand edit) is then never
        loaded: the runner sees the artifact as missing and recomputes it.
        """
        if artifact_id in self._verified:
            return True
        if hash_folder(folder) == artifact_id:
            self._verified.add(artifact_id)
            return True
        aside = self.root / DAMAGED / f"{artifact_id}.{uuid.uuid4().hex[:8]}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.rename(aside)
        except OSError:
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
        log.warning("artifact %s in %s does not match its content hash: moved to %s", artifact_id[:12], self.url, aside)
        return False

    def read_record(self, key: str) -> dict[str, Any] | None:
        path = self.root / _check_key(key)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        return _decode(raw, str(path))

    def write_record(self, key: str, record: dict[str, Any]) -> None:
        atomic.write_bytes(self.root / _check_key(key), json.dumps(record, indent=1, sort_keys=True).encode())


class S3ArtifactStore:
    """``s3://bucket/prefix`` via boto3; downloads are kept in a local cache folder.

    An artifact counts as present once its ``meta.json`` exists, and that file is uploaded
    last, so a half-uploaded artifact is never seen. S3 PUTs of records are atomic.
    Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``, a profile, a role);
    the endpoint from ``endpoint_url`` or the environment (:func:`noria.s3.endpoint_url`).
    """

    def __init__(self, url: str, cache_dir: Path | str, endpoint_url: str | None = None) -> None:
        self.url = url
        self.bucket, self.prefix = s3.parse_url(url, "pipelines.store", "s3://noria-artifacts/PROJECT")
        self.endpoint = s3.endpoint_url(endpoint_url)
        self.store = s3.Store(
            url, self.bucket, self.prefix, self.endpoint, "the artifact store", "pipelines.store", ENDPOINT_KEY
        )
        self.cache = Path(cache_dir).expanduser().resolve()
        self.staging = self.cache / "tmp"
        self.staging.mkdir(parents=True, exist_ok=True)
        self._verified: set[str] = set()  # downloaded ids hashed and found intact by this process
        self.client: Any = s3.client(self.endpoint, purpose=f"the artifact store {url}", max_attempts=S3_MAX_ATTEMPTS)

    def _errors(self, action: str) -> AbstractContextManager[None]:
        """S3 and network failures as Noria errors: what failed, on which store and endpoint, the fix."""
        return s3.errors(self.store, action)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _missing(self, exc: Exception) -> bool:
        return s3.is_missing(exc)

    def put(self, folder: Path) -> str:
        artifact_id = hash_folder(folder)
        if not self.exists(artifact_id):
            base = _object_key(artifact_id)
            files = sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / META)
            with self._errors(f"upload artifact {artifact_id[:12]}"):
                for path in [*files, folder / META]:
                    self.client.upload_file(
                        str(path), self.bucket, self._key(f"{base}/{path.relative_to(folder).as_posix()}")
                    )
        shutil.rmtree(folder)
        return artifact_id

    def get(self, artifact_id: str) -> Path:
        local = self.cache / _object_key(artifact_id)
        if local.is_dir():
            if artifact_id in self._verified or hash_folder(local) == artifact_id:
                self._verified.add(artifact_id)
                return local
            log.warning("the cached download of artifact %s is damaged: downloading it again", artifact_id[:12])
            shutil.rmtree(local, ignore_errors=True)
        if not self.exists(artifact_id):
            raise ArtifactNotFoundError(
                f"artifact {artifact_id[:12]} is not in the store {self.url}",
                fix="re-run the pipeline without --step to produce it (or check the store URL)",
            )
        base = self._key(_object_key(artifact_id)) + "/"
        staged = Path(tempfile.mkdtemp(dir=self.staging))
        with self._errors(f"download artifact {artifact_id[:12]}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)
            for page in pages:
                for item in page.get("Contents", []):
                    dest = staged / item["Key"][len(base) :]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self.client.download_file(self.bucket, item["Key"], str(dest))
        if hash_folder(staged) != artifact_id:
            shutil.rmtree(staged)
            raise DataError(
                f"artifact {artifact_id[:12]} in {self.url} does not match its content hash",
                fix="delete the object folder from the bucket and re-run the pipeline",
            )
        self._verified.add(artifact_id)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            staged.rename(local)
        except OSError:
            if not local.is_dir():
                raise
            shutil.rmtree(staged)
        return local

    def exists(self, artifact_id: str) -> bool:
        key = self._key(f"{_object_key(artifact_id)}/{META}")
        with self._errors(f"look up artifact {artifact_id[:12]}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                if self._missing(exc):
                    return False
                raise
        return True

    def read_record(self, key: str) -> dict[str, Any] | None:
        with self._errors(f"read the record {key}"):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self._key(_check_key(key)))["Body"].read()
            except Exception as exc:
                if self._missing(exc):
                    return None
                raise
        return _decode(body, f"{self.url}/{key}")

    def write_record(self, key: str, record: dict[str, Any]) -> None:
        body = json.dumps(record, indent=1, sort_keys=True).encode()
        with self._errors(f"write the record {key}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(_check_key(key)), Body=body)


def open_store(
    url: str | Path, *, cache_dir: Path | str | None = None, endpoint_url: str | None = None
) -> ArtifactStore:
    """A store for a folder path or an ``s3://`` URL (``cache_dir`` holds S3 downloads)."""
    text = str(url)
    if text.startswith("s3://"):
        cache = cache_dir or Path(tempfile.gettempdir()) / "noria-artifact-cache"
        return S3ArtifactStore(text, cache, endpoint_url=endpoint_url)
    if "://" in text and not text.startswith("file://"):
        raise ConfigError(
            f"artifact store URL {text!r} has an unsupported scheme",
            fix="use a folder path or an s3://bucket/prefix URL",
        )
    return LocalArtifactStore(text.removeprefix("file://"))
