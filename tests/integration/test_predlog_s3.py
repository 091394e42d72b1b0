"""The prediction log in object storage, against a real S3 server (SeaweedFS, s3_support.py).

The service's own log writer process ships every rolled file to ``s3://bucket/prefix`` and
deletes the local file only once the upload succeeded; files left behind (a writer killed
between the write and the upload) are shipped by the next writer on the folder; an S3 outage
(a TCP relay in front of SeaweedFS that refuses connections, then relays again) keeps the files,
counts the failures and ships them once S3 answers, without a restart. Monitoring reads the log
(windows, drift against the stored reference profile) from the bucket. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from s3_support import SeaweedS3, seaweed
from tests.unit.monitoring.test_monitoring_window import _register_with_profile, _window_rows
from tests.unit.serving.serving_support import make_migrated_db, make_project

from noria.remote_log import FILE_GLOB, RemoteLog
from noria.serving.predlog import PredictionLog, read_prediction_log

pytestmark = pytest.mark.integration

BUCKET = "noria-data"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed(tmp_path_factory.mktemp("seaweed")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def s3_env(s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables of the server, in this process and so in the writer processes it starts."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3.env()


def _row(i: int) -> dict[str, Any]:
    return {
        "request_id": f"r{i}",
        "row": 0,
        "timestamp": time.time(),
        "endpoint": "/predict",
        "status": 200,
        "model_name": "m",
        "model_version": 1,
        "arm": "champion",
        "served": True,
        "input": b'{"carrier": "UA"}',
        "probability": 0.25,
        "ood_reasons": [],
        "features": (("temp",), [float(i)]),
    }


def _remote_rows(prefix: str, tmp: Path) -> list[str]:
    copy = RemoteLog(f"s3://{BUCKET}/{prefix}").mirror(tmp / "copy")
    return sorted(read_prediction_log(copy)["request_id"])


def test_rolled_files_are_shipped_and_leave_the_disk(s3: SeaweedS3, s3_env: dict[str, str], tmp_path: Path) -> None:
    ships: list[tuple[bool, int]] = []
    log = PredictionLog(
        tmp_path / "log",
        roll_rows=10,
        roll_seconds=3600,
        remote=f"s3://{BUCKET}/shipped/",
        on_ship=lambda ok, pending: ships.append((ok, pending)),
    )
    log.write(_row(i) for i in range(25))
    log.close()
    assert log.rows_written == 25 and log.dropped == 0
    assert len(log.shipped) == 3 and log.ship_failures == 0 and log.unshipped == 0
    assert [ok for ok, _ in ships] == [True] * 3 and ships[-1][1] == 0
    keys = s3.keys(BUCKET, "shipped/")
    assert sorted(keys) == sorted(log.shipped)
    for key, path in zip(sorted(keys), sorted(log.files), strict=True):
        # the local name, with the first 16 hex digits of the file's sha256 before .parquet
        assert key.startswith(f"shipped/{path.parent.name}/{path.stem}-") and len(key.rsplit("-", 1)[1]) == 24
    assert not list((tmp_path / "log").glob(FILE_GLOB))  # deleted once shipped
    assert _remote_rows("shipped", tmp_path) == sorted(f"r{i}" for i in range(25))


def test_files_left_behind_are_shipped_by_the_next_writer_exactly_once(
    s3: SeaweedS3, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """A writer killed after writing (or after uploading but before deleting) leaves files: the next ships them."""
    folder = tmp_path / "log"
    local = PredictionLog(folder, roll_rows=5, roll_seconds=3600)  # no remote: the files stay, as after a kill
    local.write(_row(i) for i in range(10))
    local.close()
    left = sorted(folder.glob(FILE_GLOB))
    assert len(left) == 2
    # one of them was shipped already before the "kill": shipping it again must not add an object
    remote = RemoteLog(f"s3://{BUCKET}/leftovers")
    first_key = remote.upload(folder, left[0])
    assert s3.keys(BUCKET, "leftovers/") == [first_key]
    log = PredictionLog(folder, roll_rows=5, roll_seconds=3600, remote=f"s3://{BUCKET}/leftovers")
    log.write(_row(i) for i in range(10, 15))
    log.close()
    keys = s3.keys(BUCKET, "leftovers/")
    assert len(keys) == 3 and first_key in keys and log.unshipped == 0
    assert not list(folder.glob(FILE_GLOB))
    assert _remote_rows("leftovers", tmp_path) == sorted(f"r{i}" for i in range(15))


class _Relay:
    """A TCP relay to the S3 server that can refuse connections (an outage) and relay again."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.down = threading.Event()
        self._open: list[socket.socket] = []  # relayed connections (a client keeps them alive)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.endpoint = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.down.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()  # a reset: what a client sees from a host whose S3 server is gone
                continue
            upstream = socket.create_connection(self.target)
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def fail(self) -> None:
        """The outage: new connections are reset, and the open ones cut."""
        self.down.set()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._open.clear()

    def close(self) -> None:
        self.fail()
        self.server.close()


def test_an_s3_outage_keeps_the_files_counts_failures_and_ships_them_when_s3_is_back(
    s3: SeaweedS3, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = _Relay(s3.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", relay.endpoint)
    folder = tmp_path / "log"
    try:
        relay.fail()
        log = PredictionLog(folder, roll_rows=5, roll_seconds=3600, remote=f"s3://{BUCKET}/outage")
        log.write(_row(i) for i in range(10))
        deadline = time.monotonic() + 60
        while log.ship_failures < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.ship_failures >= 2 and not log.shipped  # both files failed: kept, counted
        assert len(list(folder.glob(FILE_GLOB))) == 2
        relay.down.clear()  # S3 is back: the same writer ships them on its next retry
        while len(log.shipped) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(log.shipped) == 2 and log.unshipped == 0
        assert not list(folder.glob(FILE_GLOB))
        relay.fail()  # down again at the end: the last file stays on disk, and the count says so
        log.write(_row(i) for i in range(10, 12))
        log.close()
        assert log.unshipped == 1 and len(list(folder.glob(FILE_GLOB))) == 1
    finally:
        relay.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    after = PredictionLog(folder, remote=f"s3://{BUCKET}/outage")  # the next start ships what was left
    after.close()
    assert len(after.shipped) == 1 and not list(folder.glob(FILE_GLOB))
    assert _remote_rows("outage", tmp_path) == sorted(f"r{i}" for i in range(12))


def test_a_bad_remote_is_refused_when_the_log_starts(tmp_path: Path) -> None:
    from noria.errors import ConfigError

    with pytest.raises(ConfigError, match="not an s3:// URL") as info:
        PredictionLog(tmp_path, remote="/srv/predictions")
    assert info.value.fix and "s3://BUCKET/PREFIX" in info.value.fix


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_migrated_db(None, tmp_path_factory.mktemp("mlflow-template"))


def test_monitoring_reads_windows_and_drift_from_the_bucket(
    s3: SeaweedS3, s3_env: dict[str, str], tmp_path: Path, migrated: Path
) -> None:
    from noria.monitoring.window import drift_window, prediction_log_dir, read_window, windows_in_log

    remote = f"s3://{BUCKET}/monitored"
    project = make_project(tmp_path / "p", migrated, extra=f"serving: {{prediction_log: {{remote: '{remote}'}}}}")
    assert project.config.serving.prediction_log.remote == remote
    version = _register_with_profile(project, tmp_path)
    log = PredictionLog(prediction_log_dir(project), roll_rows=1000, roll_seconds=3600, remote=remote)
    log.write(_window_rows(version, "2013-07", 1500, shift=6.0, seed=1))
    log.close()
    assert log.unshipped == 0 and len(log.shipped) >= 2
    assert not list(prediction_log_dir(project).glob(FILE_GLOB))  # nothing local: monitoring must read S3
    assert windows_in_log(project) == {"2013-07": 1501}
    assert len(read_window(project, "2013-07")) == 1500
    [july] = drift_window(project, "2013-07")
    assert july.model_version == version and "visib" in july.report.alerts
    cache = project.path(project.config.serving.prediction_log.remote_cache)
    copied = sorted(cache.glob(FILE_GLOB))
    assert len(copied) == len(log.shipped)
    assert sum(pq.read_metadata(f).num_rows for f in copied) == log.rows_written
    # the copy is brought up to date, not re-downloaded: a new file is added, the others kept
    before = {f: f.stat().st_mtime_ns for f in copied}
    more = PredictionLog(prediction_log_dir(project), remote=remote)
    more.write(_window_rows(version, "2013-08", 50, shift=0.0, seed=2))
    more.close()
    assert windows_in_log(project) == {"2013-07": 1501, "2013-08": 51}
    assert all(f.stat().st_mtime_ns == mtime for f, mtime in before.items())


def test_the_service_counts_uploads_and_unshipped_files_in_its_metrics(
    s3: SeaweedS3, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """What the app wires (on_ship=metrics.observe_shipping), with the real writer and S3."""
    from noria.serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    log = PredictionLog(
        tmp_path / "log",
        roll_rows=5,
        roll_seconds=3600,
        remote=f"s3://{BUCKET}/metered",
        on_ship=metrics.observe_shipping,
    )
    log.write(_row(i) for i in range(10))
    log.close()
    text = metrics.expose()[0].decode()
    assert 'noria_prediction_log_uploads_total{result="ok"} 2.0' in text
    assert "noria_prediction_log_unshipped_files 0.0" in text
