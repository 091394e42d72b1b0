"""Snapshot records on the S3 DVC remote: how a pod with an empty project folder finds the data.

DVC keeps the data of every snapshot on the remote, but the lineage records that say which
snapshots exist (``data/snapshots/<id>.json``) live in the project folder, committed with git. A
Kubernetes Job starts from the image, with no record: its first step would fail with "no data
snapshot yet". So with an ``s3://`` remote, every ingest also publishes its record beside the
data, at ``<storage.dvc_remote>/noria-snapshots/<id>.json`` (one PUT: a reader sees the whole
record or none; it is written after ``dvc push`` succeeded, so a published record always names
data that is on the remote), and :func:`pull` brings the records a folder lacks into it and
checks the newest snapshot out into ``data/dataset`` (the files from the remote through DVC's
cache, ``data/dataset.dvc`` naming it), so an ingest of later months builds on it exactly as on
the machine that made it. ``noria data pull`` runs it; the cluster's Jobs run it first.

With the data remote's own read-only identity (``NORIA_DATA_S3_ACCESS_KEY_ID`` /
``NORIA_DATA_S3_SECRET_ACCESS_KEY``: pre-production reading production's data), :func:`pull`
works as anywhere else and a write fails first, with an error saying this environment reads
production's data and does not ingest (:func:`check_writable`, which ``noria data ingest`` runs
before it reads anything).

The key prefix is not one DVC uses (its objects are under ``files/md5/``), so ``dvc gc`` leaves
the records alone.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from noria import atomic, s3
from noria.errors import ConfigError, DataError, ExternalToolError

if TYPE_CHECKING:
    from noria.config import Project
    from noria.data.snapshots import SnapshotRecord
    from noria.data.versioning import Remote

PREFIX = "noria-snapshots"


@dataclass
class PullResult:
    """What :func:`pull` did: records copied, the snapshot checked out (None: none published)."""

    remote: str
    pulled: list[str] = field(default_factory=list)
    known: int = 0
    checked_out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"remote": self.remote, "pulled": self.pulled, "known": self.known, "checked_out": self.checked_out}


def _client(remote: Remote) -> Any:
    return s3.client(remote.endpoint_url, purpose=f"the snapshot records on {remote.url}", identity=remote.identity)


def _where(remote: Remote) -> tuple[str, str]:
    bucket, prefix = s3.parse_url(remote.url, "storage.dvc_remote", "s3://noria-data/dvc")
    return bucket, f"{prefix}/{PREFIX}" if prefix else PREFIX


def _store(remote: Remote, bucket: str, prefix: str) -> s3.Store:
    """The records' place as :mod:`noria.s3` names it in errors (all ExternalToolError, as before: exit 7)."""
    return s3.Store(
        f"s3://{bucket}/{prefix}",
        bucket,
        prefix,
        remote.endpoint_url,
        "the snapshot records",
        "storage.dvc_remote",
        s3.DATA_ENDPOINT_VARIABLE if remote.own_endpoint else "storage.s3_endpoint_url",
        credentials=f"{s3.DATA_KEY_VARIABLE} / {s3.DATA_SECRET_VARIABLE}"
        if remote.access_key_id
        else "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    )


def read_only_error(remote: Remote, action: str, code: str) -> ConfigError:
    """The error for a write the data remote's own (read-only) identity was refused."""
    names = " / ".join(s3.DATA_VARIABLES)
    return ConfigError(
        f"S3 refused to {action} on the data remote {remote.url} ({code}) for the identity in "
        f"{s3.DATA_KEY_VARIABLE}: it is read-only. This environment (pre-production) reads production's "
        "data and does not ingest",
        fix="ingest in production (its ingest CronJob), then run `noria data pull` here; to give this "
        f"environment data of its own instead, unset {names}",
    )


def check_writable(project: Project) -> None:
    """Fail clearly, before anything is written, if the data remote's own identity may not write it.

    Runs only when ``NORIA_DATA_S3_ACCESS_KEY_ID`` is set (with the variables unset nothing is
    probed): it puts and deletes one small object under the records' prefix (no ``.json`` name,
    so :func:`pull` never reads it).
    """
    from noria.data.versioning import project_remote

    remote = project_remote(project)
    if not remote.is_s3 or remote.identity is None:
        return
    bucket, prefix = _where(remote)
    key = f"{prefix}/.write-check-{uuid.uuid4().hex}"
    client = _client(remote)
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    except Exception as exc:
        code = s3.error_code(exc)
        if code in s3.DENIED:
            raise read_only_error(remote, f"write {key}", code) from exc
        raise s3.error(exc, _store(remote, bucket, prefix), f"write {key}", config_errors=False) from exc
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise s3.error(exc, _store(remote, bucket, prefix), f"delete {key}", config_errors=False) from exc


def publish(project: Project, record: SnapshotRecord) -> str | None:
    """Put ``record`` beside the data on an S3 remote; its key (None for a folder remote)."""
    from noria.data.versioning import project_remote

    remote = project_remote(project)
    if not remote.is_s3:
        return None
    bucket, prefix = _where(remote)
    key = f"{prefix}/{record.id}.json"
    body = json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str).encode()
    try:
        _client(remote).put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except Exception as exc:
        if remote.identity is not None and s3.error_code(exc) in s3.DENIED:
            raise read_only_error(remote, f"write {key}", s3.error_code(exc)) from exc
        cause = s3.error(exc, _store(remote, bucket, prefix), f"write {key}", config_errors=False)
        raise ExternalToolError(
            f"snapshot {record.short_id} is on the DVC remote, but its record could not be published: {cause.message}",
            fix=f"{cause.fix}; then run the same ingest again (it publishes the unchanged snapshot's record)",
        ) from exc
    return key


def pull(project: Project, *, checkout: bool = True) -> PullResult:
    """Copy the published snapshot records this project lacks; check the newest out into data/dataset."""
    from noria.data.snapshots import SnapshotRecord, list_snapshots, records_dir, write_json_atomic
    from noria.data.versioning import project_remote

    remote = project_remote(project)
    if not remote.is_s3:
        raise DataError(
            f"storage.dvc_remote is {remote.url}: snapshot records are published only to an s3:// remote",
            fix="run this with the profile whose storage.dvc_remote is s3://... (e.g. --profile cluster)",
        )
    bucket, prefix = _where(remote)
    client = _client(remote)
    result = PullResult(remote=f"s3://{bucket}/{prefix}")
    folder = records_dir(project)
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        keys = [item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].endswith(".json")]
        for key in sorted(keys):
            local = folder / key.rsplit("/", 1)[1]
            if local.is_file():
                continue
            data = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            SnapshotRecord.from_dict(data)  # a damaged record is refused, not written
            write_json_atomic(local, data)
            result.pulled.append(local.stem)
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(
            f"a snapshot record in s3://{bucket}/{prefix} is damaged: {exc}",
            fix="delete it from the bucket (the data stays on the DVC remote) and re-run the ingest that made it",
        ) from None
    except Exception as exc:
        raise s3.error(exc, _store(remote, bucket, prefix), "read the records", config_errors=False) from exc
    records = list_snapshots(project)
    result.known = len(records)
    if checkout and records:
        result.checked_out = _checkout(project, records[-1], remote)
    return result


def _checkout(project: Project, record: SnapshotRecord, remote: Remote) -> str | None:
    """Make ``data/dataset`` (and ``data/dataset.dvc``) the newest snapshot, unless it already is."""
    from noria.data.snapshots import dataset_dir, dataset_dvc_file, tracked_version
    from noria.data.versioning import TrackedVersion, ensure_repo, version_files

    tracked = tracked_version(project)
    current = dataset_dir(project)
    if tracked is not None and tracked.md5 == record.id and current.is_dir():
        return None
    version = TrackedVersion(**{k: record.dvc[k] for k in ("md5", "size", "nfiles", "path")})
    ensure_repo(project.root, remote)
    files = version_files(project.root, dataset_dvc_file(project), version, remote)
    with atomic.publish_dir(current) as staged:  # built beside it, then renamed in (the old one aside)
        for rel, cached in files.items():
            dest = staged / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, dest)
    atomic.write_text(dataset_dvc_file(project), yaml.safe_dump({"outs": [version.dvc_out()]}, sort_keys=False))
    return record.id


__all__ = ["PREFIX", "PullResult", "check_writable", "publish", "pull", "read_only_error"]
