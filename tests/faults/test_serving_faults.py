"""The HTTP service under faults: the prediction log on a full disk, and sustained load.

Real: ``noria.serving.serve`` (uvicorn) in a child process on 127.0.0.1, its prediction-log
writer process, a LightGBM model from the real MLflow registry (SQLite), HTTP requests from
threads of this process, a real tmpfs of 1 MiB (``mount -t tmpfs``: needs root or
CAP_SYS_ADMIN; CI fails rather than skips without it), RSS read from ``/proc/<pid>/status``.
Nothing is mocked; the features travel inline with each request (no online store here).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from noria.config import Project
from noria.serving.predlog import read_prediction_log
from tests.conftest import free_port, missing
from tests.faults.conftest import FaultRecord, load_seconds, wait_for
from tests.integration.test_serving_hot_swap import AUTH, BODY, wait_ready
from tests.unit.serving.serving_support import KEY, make_migrated_db, make_project, register, train_booster

pytestmark = pytest.mark.integration
DROPPED = "noria_prediction_log_dropped_rows_total"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    tmp = tmp_path_factory.mktemp("serving-faults")
    project = make_project(tmp / "proj", make_migrated_db(None, tmp))
    register(project, train_booster(seed=0))
    return project


@contextlib.contextmanager
def service(project: Project, settings: dict[str, Any], out: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``serve()`` in a child process; SIGTERM (graceful: flushes the log) on exit, by its PID."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    env |= {"NORIA_API_KEYS": KEY, "MLFLOW_DISABLE_TELEMETRY": "true"}
    code = (
        "from noria.config import load_project; from noria.serving import serve, ServingConfig; "
        f"serve(load_project({str(project.root)!r}), port={port}, log_level='warning', "
        f"config=ServingConfig.model_validate({settings!r}))"
    )
    with out.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc=proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def stop(proc: subprocess.Popen[bytes], out: Path, *, tracebacks: bool = False) -> str:
    """SIGTERM the service and check it ended cleanly (``tracebacks``: logged errors are expected)."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    text = out.read_text(errors="replace")
    assert proc.returncode in (0, -signal.SIGTERM), text[-2000:]
    assert tracebacks or "Traceback" not in text, text[-2000:]
    return text


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", headers=AUTH, timeout=30).text
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not exported on /metrics")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted on ``folder`` by this test, unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        message = f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.decode().strip()}"
        missing(message)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte (until ENOSPC)."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def post_many(base: str, n: int) -> tuple[Counter[int], list[str]]:
    statuses: Counter[int] = Counter()
    ids = []
    with httpx.Client(base_url=base, headers=AUTH, timeout=30) as client:
        for _ in range(n):
            r = client.post("/predict", json=BODY)
            statuses[r.status_code] += 1
            if r.status_code == 200:
                ids.append(r.json()["request_id"])
    return statuses, ids


def test_prediction_log_on_a_full_disk(project: Project, tmp_path: Path, fault_record: FaultRecord) -> None:
    fault_record.fault = "the prediction log's disk is full (a real 1 MiB tmpfs, filled), then freed"
    fault_record.checked = (
        "every request answered 200; rows that could not be written counted in "
        f"{DROPPED}; after freeing space rows are logged again without a restart; logged + dropped == sent"
    )
    fault_record.lost = None
    with tmpfs(tmp_path / "small", "1m") as disk:
        log_dir = disk / "log"
        settings = {"prediction_log": {"dir": str(log_dir), "roll_rows": 10, "roll_seconds": 0.2}, "poll_seconds": 0}
        out = tmp_path / "server.log"
        with service(project, settings, out) as (base, proc):
            before, ids_before = post_many(base, 20)
            wait_for(lambda: len(read_logged(log_dir)) >= 20, 60, "the first rows in the log")
            filler = fill(disk)
            during, ids_during = post_many(base, 50)
            wait_for(lambda: metric(base, DROPPED) >= 1, 60, "dropped rows to be counted")
            time.sleep(1.0)  # the writer's last files of the full period fail too
            dropped = metric(base, DROPPED)
            filler.unlink()
            after, ids_after = post_many(base, 30)
            wait_for(lambda: set(ids_after) <= set(read_logged(log_dir)), 60, "rows logged again after freeing")
            dropped_end = metric(base, DROPPED)
            text = stop(proc, out, tracebacks=True)
        logged = read_logged(log_dir)
    sent = ids_before + ids_during + ids_after
    statuses = before + during + after
    fault_record.figures["answers by status"] = dict(statuses)
    fault_record.figures["rows sent / logged / dropped (metric)"] = f"{len(sent)} / {len(logged)} / {dropped_end:g}"
    assert statuses == Counter({200: 100}), statuses
    assert f"prediction log rows to {log_dir}" in text and "No space left on device" in text
    fault_record.figures["server log says"] = next(
        line.strip() for line in text.splitlines() if "prediction log rows to" in line
    )[:160]
    assert dropped >= 1 and dropped_end == dropped
    assert len(logged) == len(set(logged)), "a row was logged twice"
    missing = set(sent) - set(logged)
    assert len(missing) == dropped_end, f"{len(missing)} rows missing from the log, {dropped_end:g} counted"
    assert set(ids_before) <= set(logged) and set(ids_after) <= set(logged)
    fault_record.lost = len(missing)
    fault_record.counted_loss = int(dropped_end)


def read_logged(log_dir: Path) -> list[str]:
    if not any(log_dir.rglob("*.parquet")):
        return []
    frame = read_prediction_log(log_dir)
    return [str(x) for x in frame["request_id"]]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.timeout(int(load_seconds()) + 600)
def test_sustained_load_memory_is_flat_and_every_request_is_logged_once(
    project: Project, tmp_path: Path, fault_record: FaultRecord
) -> None:
    seconds = load_seconds()
    fault_record.fault = f"sustained load: 4 clients for {seconds:g} s"
    fault_record.checked = "every request answered; server RSS slope after warm-up; every request id in the log once"
    fault_record.lost = None
    log_dir = tmp_path / "log"
    settings = {"prediction_log": {"dir": str(log_dir)}, "poll_seconds": 0}
    out = tmp_path / "server.log"
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    halt = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=base, headers=AUTH, timeout=30) as c:
            while not halt.is_set():
                try:
                    r = c.post("/predict", json=BODY)
                    item = (r.status_code, r.json().get("request_id") if r.status_code == 200 else None)
                except httpx.HTTPError:
                    item = (-1, None)
                with lock:
                    results.append(item)

    samples: list[tuple[float, float]] = []
    with service(project, settings, out) as (base, proc):
        workers = [threading.Thread(target=client) for _ in range(4)]
        start = time.monotonic()
        for w in workers:
            w.start()
        try:
            while time.monotonic() - start < seconds:
                samples.append((time.monotonic() - start, rss_mb(proc.pid)))
                time.sleep(1.0)
        finally:
            halt.set()
            for w in workers:
                w.join(timeout=60)
        dropped = metric(base, DROPPED)
        stop(proc, out)
    statuses = Counter(s for s, _ in results)
    ids = [i for _, i in results if i]
    logged = read_logged(log_dir)
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    steady = t >= t.max() * 0.25  # after a warm-up quarter
    slope = float(np.polyfit(t[steady] / 60, rss[steady], 1)[0]) if steady.sum() >= 3 else float("nan")
    fault_record.figures["requests"] = len(results)
    fault_record.figures["answers by status"] = dict(statuses)
    fault_record.figures["rps"] = round(len(results) / seconds, 1)
    fault_record.figures["rss MB start/end"] = f"{rss[0]:.0f}/{rss[-1]:.0f}"
    fault_record.figures["rss slope after warm-up (MB/min)"] = round(slope, 2)
    fault_record.figures["logged / dropped"] = f"{len(logged)} / {dropped:g}"
    assert statuses == Counter({200: len(results)}), statuses
    counts = Counter(logged)
    assert not [k for k, v in counts.items() if v > 1], "request ids logged more than once"
    assert set(ids) == set(logged), f"{len(set(ids) - set(logged))} requests missing from the log"
    assert dropped == 0
    assert slope < 30.0, f"resident memory grows {slope:.1f} MB/min under steady load"
    fault_record.lost = 0
