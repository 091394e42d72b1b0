"""`noria serve --workers N`: requests per second of two server processes against one, and
whether the prediction log holds every answered request across workers.

The same project, models and bodies as the serving benchmark (``bench_serving.build``). For
each path a user runs (inline features with the prediction log; online lookup + log + path
explanations) Noria's ``serve()`` starts with ``workers=1`` and ``workers=2`` (uvicorn's worker
processes sharing one socket, each with its own prediction-log writer) and wrk loads it with
16 connections. The two settings take turns for a few rounds, best run kept: the machine is
shared and noisy. After each server stops (SIGTERM: each worker flushes its log) the log's
rows with status 200 are counted against the 200 answers wrk and the readiness probe got.

Target (scale issue): two workers on two cores at 1.7x one worker or more, log complete.
wrk itself runs on the same two cores (one thread), so two workers never get two whole cores.
The ceiling of that on this machine is measured in the same run: the bare FastAPI app holding
the Booster (``serving_reference_app.py``, no log) with one and two uvicorn workers, under the
same wrk load. Noria's ratio is reported against it too, and Noria inline with the prediction
log off shows what the log writers (one process per worker) cost the scaling.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Result, Target

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_serving as serving  # noqa: E402

TITLE = "Serving: `noria serve --workers 2` vs one worker, prediction log complete across workers (wrk, 16 conn)"
CONNECTIONS = 16
BARE = "bare FastAPI + Booster (ceiling, no log)"
NO_LOG = "inline features, prediction log off"


def _wrk(url: str, body: bytes | list[bytes], seconds: int, tmp: Path) -> dict[str, float]:
    """A wrk run (after a 2 s warm-up): req/s, p50/p99 ms, and the 2xx answers of both runs."""
    if isinstance(body, list):
        payload = tmp / "wrk-bodies.jsonl"
        payload.write_bytes(b"\n".join(body) + b"\n")
        env = {**os.environ, "WRK_BODIES": str(payload), "WRK_KEY": serving.KEY}
    else:
        payload = tmp / "wrk-body.json"
        payload.write_bytes(body)
        env = {**os.environ, "WRK_BODY": str(payload), "WRK_KEY": serving.KEY}
    script = str(HERE / "wrk" / "post.lua")
    answered = 0.0
    out = ""
    for duration, latency in (("2s", []), (f"{seconds}s", ["--latency"])):
        argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}", *latency, "-s", script, url]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
        total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        answered += total - (float(bad.group(1)) if bad else 0.0)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * serving._UNIT[unit]

    return {"req_s": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "answered": answered}


def _logged(folder: Path) -> int:
    """Rows with status 200 in a prediction-log folder (every worker's files)."""
    import pyarrow.dataset as ds

    files = [str(p) for p in folder.rglob("*.parquet") if not p.name.startswith(".")]
    if not files:
        return 0
    table = ds.dataset(files, format="parquet").to_table(columns=["status"])
    return int((table.column("status").to_numpy() == 200).sum())


def run(quick: bool = False) -> Result:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    seconds, rounds = (4, 1) if quick else (10, 3)
    tmp = Path(tempfile.mkdtemp(prefix="noria-bench-workers-"))
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{serving.BIN}:{os.environ.get('PATH', '')}",
        "NORIA_API_KEYS": serving.KEY,
        "OMP_NUM_THREADS": "1",
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {serving.KEY}"}
    paths: list[tuple[str, str, Any, dict[str, Any]]] = []
    best: dict[tuple[str, int], dict[str, float]] = {}
    completeness: list[tuple[str, int, int, int]] = []  # path, workers, answered, logged
    try:
        setup = serving.build(tmp)
        inline = {"model": "flight-delay-numeric", "online_features": "off", "poll_seconds": 0}
        online = {"online_features": "on", "poll_seconds": 0, "explanations": {"method": "path"}}
        paths = [
            (BARE, "/predict", setup["inline_body"], None),
            (NO_LOG, "/predict?explain=false", setup["inline_body"], {**inline, "prediction_log": {"enabled": False}}),
            ("inline features + log", "/predict?explain=false", setup["inline_body"], inline),
            ("online lookup + log + path explanations", "/predict", setup["online_bodies"], online),
        ]
        load_before = os.getloadavg()[0]
        for attempt in range(rounds):
            for label, path, body, settings in paths:
                for workers in (1, 2):
                    name = f"{re.sub(r'[^a-z]+', '-', label)}{workers}w-{attempt}"
                    log_dir = tmp / name
                    if settings is None:  # the bare app: the machine's ceiling, no log to count
                        port = serving._free_port()
                        argv = [sys.executable, str(HERE / "serving_reference_app.py"), "--model"]
                        argv += [str(setup["model_file"]), "--port", str(port), "--workers", str(workers)]
                        server = serving.Server(name, argv, port, env, tmp / f"{name}.log")
                    else:
                        config = {**settings, "workers": workers}
                        config["prediction_log"] = {"dir": str(log_dir), **settings.get("prediction_log", {})}
                        server = serving.noria_server(setup, tmp, name, config, env)
                    try:
                        server.wait(path, body, headers)
                        result = _wrk(f"http://127.0.0.1:{server.port}{path}", body, seconds, tmp)
                    finally:
                        server.stop()
                    time.sleep(0.5)
                    if settings is not None and label != NO_LOG:
                        completeness.append((label, workers, int(result["answered"]) + 1, _logged(log_dir)))  # + probe
                    key = (label, workers)
                    if key not in best or result["req_s"] > best[key]["req_s"]:
                        best[key] = result
        load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    targets = []
    for label, *_ in paths:
        one, two = best[(label, 1)], best[(label, 2)]
        for workers, r in ((1, one), (2, two)):
            rows.append(
                {
                    "path": label,
                    "workers": workers,
                    "req/s": round(r["req_s"], 1),
                    "p50 ms": r["p50_ms"],
                    "p99 ms": r["p99_ms"],
                    "x one worker": round(r["req_s"] / one["req_s"], 2),
                }
            )
        ratio = two["req_s"] / one["req_s"]
        if label == BARE:
            ceiling = ratio
            continue
        if label == NO_LOG:  # context, in the table: what the log writers cost the scaling (no goal of its own)
            continue
        targets.append(Target(f"2 workers / 1 worker, {label}", round(ratio, 2), ">= 1.7", ratio >= 1.7))
        share = ratio / ceiling
        targets.append(
            Target(f"{label}: its ratio / the bare app's ({ceiling:.2f})", round(share, 2), ">= 0.9", share >= 0.9)
        )
    # wrk stops counting at its deadline while up to one request per connection is in flight: the
    # server answers and logs those too, so the log may hold a few more rows than wrk counted.
    lost = sum(max(0, answered - logged) for *_, answered, logged in completeness)
    answered_total = sum(answered for *_, answered, _ in completeness)
    logged_total = sum(logged for *_, logged in completeness)
    targets.append(
        Target("answered requests missing from the prediction log (all runs)", lost, "0", lost == 0),
    )
    notes = (
        f"wrk -t1 -c{CONNECTIONS} -d{seconds}s --latency after a 2 s warm-up; {rounds} round(s), the settings taking "
        f"turns, best run kept. Noria's serve() with uvicorn (uvloop, httptools); the bare app is the serving "
        f"benchmark's ceiling (serving_reference_app.py --workers N, the same uvicorn settings, no log): how far two "
        f"processes scale here at all. {os.cpu_count()} cores shared by "
        f"wrk, the server processes and other work (load average {load_before:.1f} before, {load_after:.1f} after). "
        f"Prediction log: {answered_total:,} answered requests counted by wrk (and the readiness probe) over all "
        f"runs, {logged_total:,} rows with status 200 in the logs after each server's SIGTERM (each worker has its "
        f"own writer process and files; the log also holds the requests in flight when wrk stopped counting, at "
        f"most {CONNECTIONS} per wrk run)."
    )
    return Result(
        name="serving_workers",
        title=TITLE,
        columns=["path", "workers", "req/s", "p50 ms", "p99 ms", "x one worker"],
        rows=rows,
        targets=targets,
        notes=notes,
    )
