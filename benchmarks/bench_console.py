"""The console's pages after the demo vs MLflow's UI page of the same model, in the same browser.

Needs the demo project (``make demo`` leaves it in ./demo; another folder with
BENCH_CONSOLE_PROJECT). Both UIs run as their commands run them: ``noria ui`` (a read key) and
the ``mlflow server`` command ``noria ui --mlflow`` runs on the project's tracking store, each in its own process.
Playwright drives the system Chromium (headless) and times a page from navigation until it shows
its content:

- Noria: each page (overview, data, features, models, a version, monitoring, maturity) until the
  ``load`` event: the HTML is complete when it arrives (no script). The first visit builds the
  page from the records (*cold*); later visits are served from the page cache until a record
  changes (*warm*, the median of ``repeat``). The server-side render time is also read as the
  time to the response's first byte.
- MLflow: the registered model's page (``/#/models/NAME``) until its versions table shows the
  champion's version number: the single-page app loads its JavaScript bundle and asks the REST API.

The issue's goal: every console page renders in under 200 ms after the demo.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from _harness import Result, Target, median

TITLE = "Console pages after the demo vs MLflow UI's model page (browser page load)"
ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-console-key-0123456789"
GOAL_MS = 200.0
PAGES = ["/", "/data", "/features", "/models", "/models/{model}/{champion}", "/monitoring", "/maturity"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(argv: list[str], cwd: Path, env: dict[str, str], ready: str) -> Iterator[None]:
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}")
            try:
                if httpx.get(ready, timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready} did not answer within 180 s")
            time.sleep(0.3)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _timed_goto(page: Any, url: str) -> tuple[float, float]:
    """(ms to the load event, ms to the response's first byte) of one navigation."""
    start = time.perf_counter()
    page.goto(url, wait_until="load")
    total = (time.perf_counter() - start) * 1000
    ttfb = page.evaluate("performance.getEntriesByType('navigation')[0].responseStart")
    return total, float(ttfb)


def run(quick: bool) -> Result:
    from playwright.sync_api import sync_playwright

    project = Path(os.environ.get("BENCH_CONSOLE_PROJECT", ROOT / "demo")).resolve()
    if not (project / "noria.yaml").is_file():
        raise SystemExit(f"no demo project in {project}: run `make demo` first (or set BENCH_CONSOLE_PROJECT)")
    sys.path.insert(0, str(ROOT / "src"))
    from noria.config import load_project
    from noria.registry import list_models, mlflow_ui_command
    from noria.registry.ui import ui_environment

    loaded = load_project(project)
    model = loaded.config.model.name
    champion = list_models(loaded, model)[0].aliases["champion"]
    repeat = 3 if quick else 10
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")} | {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "NORIA_API_KEYS": KEY,
    }
    noria = [sys.executable, "-m", "noria", "--project", str(project)]
    console_port, mlflow_port = _port(), _port()
    # `noria ui --mlflow`'s own server, started here directly: stopping its process group stops it
    mlflow_argv = mlflow_ui_command(loaded, mlflow_port).argv
    console = f"http://127.0.0.1:{console_port}"
    mlflow = f"http://127.0.0.1:{mlflow_port}"
    rows: list[dict[str, Any]] = []
    with (
        _server([*noria, "ui", "--port", str(console_port)], project, env, f"{console}/health"),
        _server(mlflow_argv, project, ui_environment(), f"{mlflow}/health"),
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {KEY}"})
        page = context.new_page()
        for template in PAGES:
            path = template.format(model=model, champion=champion)
            cold, cold_server = _timed_goto(page, console + path)
            warm = [_timed_goto(page, console + path) for _ in range(repeat)]
            rows.append(
                {
                    "ui": "Noria console",
                    "page": path,
                    "cold ms": cold,
                    "cold server ms": cold_server,
                    "warm ms": median([w[0] for w in warm]),
                    "warm server ms": median([w[1] for w in warm]),
                }
            )
        plain = browser.new_context().new_page()
        url = f"{mlflow}/#/models/{model}"
        times = []
        for _ in range(1 + repeat):
            start = time.perf_counter()
            plain.goto(url, wait_until="load")
            plain.get_by_text(f"Version {champion}", exact=True).first.wait_for(timeout=60_000)
            times.append((time.perf_counter() - start) * 1000)
        rows.append({"ui": "MLflow UI", "page": f"/#/models/{model}", "cold ms": times[0], "cold server ms": "",
                     "warm ms": median(times[1:]), "warm server ms": ""})  # fmt: skip
        browser.close()
    worst = max(r["warm ms"] for r in rows if r["ui"] == "Noria console")
    mlflow_warm = rows[-1]["warm ms"]
    return Result(
        name="console",
        title=TITLE,
        columns=["ui", "page", "cold ms", "cold server ms", "warm ms", "warm server ms"],
        rows=rows,
        targets=[
            Target("slowest console page, warm", worst, f"< {GOAL_MS:g} ms", worst < GOAL_MS),
            Target(
                "MLflow model page / slowest console page (warm)", mlflow_warm / worst, ">= 1x", mlflow_warm >= worst
            ),
        ],
        notes=(
            f"Project {project.name} after the demo; model {model}, champion version {champion}. Warm: median of "
            f"{repeat} visits. Cold: the first visit after `noria ui` started (the page is built from the records; "
            "later visits reuse it until a record changes). Server ms: time to the response's first byte."
        ),
    )
