"""Model swaps under concurrent load on a real uvicorn server (127.0.0.1): no request fails, the
new version takes over; and SIGTERM flushes the prediction log (every request logged once).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port
from tests.unit.serving.serving_support import (
    FLIGHT,
    INLINE,
    KEY,
    make_migrated_db,
    make_project,
    register,
    train_booster,
)

from noria.config import Project
from noria.serving.predlog import read_prediction_log

AUTH = {"Authorization": f"Bearer {KEY}"}
BODY = {**FLIGHT, "features": INLINE}


def wait_ready(base: str, timeout: float = 240.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"the server exited with {proc.returncode}: {out[-3000:]}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} did not become ready in {timeout} s")


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Project:
    import mlflow

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_project(tmp_path / "proj", make_migrated_db(folder, tmp_path))


@pytest.fixture
def server(project: Project, tmp_path: Path) -> Iterator[str]:
    """The service for ``project`` under uvicorn in a thread of this process."""
    import uvicorn

    from noria.serving.app import create_app
    from noria.serving.config import ServingConfig

    register(project, train_booster(seed=0))
    config = ServingConfig.model_validate({"prediction_log": {"dir": str(tmp_path / "log")}, "poll_seconds": 0.5})
    app = create_app(project, config=config, environ={"NORIA_API_KEYS": KEY})
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    yield base
    uv.should_exit = True
    thread.join(timeout=60)


@pytest.mark.integration
def test_no_request_fails_while_the_model_is_swapped_under_load(server: str, project: Project) -> None:
    stop = threading.Event()
    results: list[tuple[float, int, int | None]] = []  # (start time, status, model version)
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(base_url=server, headers=AUTH, timeout=30) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    r = client.post("/predict", json=BODY)
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    item = (started, r.status_code, version)
                except httpx.HTTPError:
                    item = (started, -1, None)
                with lock:
                    results.append(item)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(1.0)
        register(project, train_booster(seed=1, rounds=25))  # version 2 -> @champion
        reload = httpx.post(f"{server}/reload", headers=AUTH, timeout=60)
        assert reload.status_code == 200 and reload.json()["version"] == 2
        swapped_at = time.monotonic()
        time.sleep(1.0)
        register(project, train_booster(seed=2, rounds=20))  # version 3: the poller must find it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if any(v == 3 for _, _, v in results[-50:]):
                    break
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    statuses = {s for _, s, _ in results}
    assert statuses == {200}, f"failed requests during the swap: {[r for r in results if r[1] != 200][:5]}"
    versions = [v for _, _, v in results]
    assert {1, 2, 3} <= set(versions) and len(results) > 50
    late = [v for started, _, v in results if started > swapped_at + 0.05]
    assert 1 not in late  # once /reload answered, new requests never see the old version


@pytest.mark.integration
def test_sigterm_flushes_every_logged_request_exactly_once(project: Project, tmp_path: Path) -> None:
    register(project, train_booster(seed=0))
    port = free_port()
    log_dir = tmp_path / "log"
    env = {**os.environ, "NORIA_API_KEYS": KEY, "MLFLOW_DISABLE_TELEMETRY": "true"}
    settings = {"prediction_log": {"dir": str(log_dir), "roll_seconds": 3600}, "poll_seconds": 0}
    code = (
        "from noria.config import load_project; from noria.serving import serve, ServingConfig; "
        f"serve(load_project({str(project.root)!r}), port={port}, log_level='warning', "
        f"config=ServingConfig.model_validate({settings!r}))"
    )  # roll_seconds: nothing is written before shutdown
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc=proc)
        ids: list[str] = []
        with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
            for i in range(40):
                body: Any = {"flights": [BODY, BODY]} if i % 10 == 0 else BODY
                r = client.post("/predict", json=body)
                assert r.status_code == 200
                ids += [r.json()["request_id"]] * (2 if i % 10 == 0 else 1)
            bad = client.post("/predict", json={**FLIGHT, "flight": -1})
            ids.append(bad.headers["x-request-id"])
        assert not list(log_dir.rglob("*.parquet"))  # still buffered in memory
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM is a clean exit.
        text = out.decode(errors="replace")
        assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in text, text[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    log = read_prediction_log(log_dir)
    assert sorted(log["request_id"]) == sorted(ids)
    assert not log.duplicated(["request_id", "row"]).any()


@pytest.mark.integration
def test_two_workers_serve_with_the_given_config_and_log_every_request(project: Project, tmp_path: Path) -> None:
    """`serve(workers=2)`: both worker processes answer, each with the serving config the
    caller gave (its prediction-log folder, not the project's), /metrics counts both workers'
    requests whichever answers, and after SIGTERM the log holds every request exactly once
    across the workers' files."""
    register(project, train_booster(seed=0))
    port = free_port()
    log_dir = tmp_path / "log"
    env = {**os.environ, "NORIA_API_KEYS": KEY, "MLFLOW_DISABLE_TELEMETRY": "true"}
    settings = {"prediction_log": {"dir": str(log_dir), "roll_seconds": 3600}, "poll_seconds": 0, "workers": 2}
    code = (
        "from noria.config import load_project; from noria.serving import serve, ServingConfig; "
        f"serve(load_project({str(project.root)!r}), port={port}, log_level='info', "
        f"config=ServingConfig.model_validate({settings!r}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.decode(errors="replace") for line in proc.stdout or []))
    reader.start()
    ids: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc=proc)
        # /ready answers as soon as one worker is up; a worker still loading the model accepts
        # nothing, so the other would answer everything. Wait until both say they have started.
        deadline = time.monotonic() + 240
        while sum("Application startup complete" in line for line in list(lines)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)[-3000:]
            time.sleep(0.2)
        lock = threading.Lock()

        def load() -> None:
            for _ in range(60):  # a connection per request: the workers share the accepts
                r = httpx.post(f"{base}/predict", json=BODY, headers=AUTH, timeout=30)
                assert r.status_code == 200
                with lock:
                    ids.append(r.json()["request_id"])

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        # One /metrics for the service: whichever worker answers a scrape counts both workers'
        # requests (prometheus_client's multi-process mode), never only its own share.
        for _ in range(8):  # a connection per scrape: the workers share the accepts
            scrape = httpx.get(f"{base}/metrics", timeout=30).text
            counted = re.search(r'^noria_http_requests_total\{endpoint="/predict",status="200"\} (\S+)$', scrape, re.M)
            assert counted is not None and float(counted.group(1)) == 240, scrape[-3000:]
        os.killpg(proc.pid, signal.SIGTERM)  # the group: uvicorn's supervisor and its workers
        proc.wait(timeout=120)
        reader.join(timeout=30)
        text = "".join(lines)
        assert "Traceback" not in text, text[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=30)
    assert len(ids) == 240
    assert not (project.root / ".noria" / "predictions").exists() or not list(
        (project.root / ".noria" / "predictions").rglob("*.parquet")
    )  # the caller's folder, not the project's default
    files = list(log_dir.rglob("*.parquet"))
    log = read_prediction_log(log_dir)
    assert sorted(log["request_id"]) == sorted(ids) and not log.duplicated(["request_id", "row"]).any()
    writers = {p.name.split("-")[2] for p in files}  # predictions-<time>-<pid>-<n>-<seq>.parquet
    assert len(writers) == 2, f"one worker answered everything? files: {[p.name for p in files]}"
