"""The overview's serving stage (health and request rate) and the monitoring page's plots at their
own addresses.

The request rate is read from prediction logs written by the real writer process
(:class:`~noria.serving.predlog.PredictionLog`); the stage's health is asked of a real ``noria
serve`` app (uvicorn in a thread of this process, on 127.0.0.1) whose requests are logged to the
project's log folder. The console runs on report_support's project (a real registry, prediction
log and monitoring store) through FastAPI's test client.
"""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.unit.monitoring.report_support import migrated_db_fixture, registry_project
from tests.unit.serving.serving_support import FLIGHT, INLINE, KEY, make_project, register, train_booster
from typer.testing import CliRunner

from noria.cli import app as cli_app
from noria.config import Project
from noria.console.server import console_app
from noria.monitoring.traffic import request_rate
from noria.serving.predlog import PredictionLog

READ = "read-key-0123456789abcdef"
migrated_db = pytest.fixture(scope="module")(migrated_db_fixture)


def _log(folder: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` written to ``folder`` by the real writer process (one file each call)."""
    log = PredictionLog(folder, roll_seconds=0.05)
    log.write(rows)
    log.close()


def _row(request: str, row: int, at: float, served: bool = True) -> dict[str, Any]:
    return {"request_id": request, "row": row, "timestamp": at, "status": 200, "served": served, "score": 0.5}


def _project(tmp_path: Path, migrated_db: Path) -> Project:
    return make_project(tmp_path / "proj", migrated_db)


def test_the_rate_counts_requests_and_served_rows_of_the_recent_windows(tmp_path: Path, migrated_db: Path) -> None:
    project = _project(tmp_path, migrated_db)
    folder = project.path(project.config.serving.prediction_log.dir)
    now = datetime.now(UTC)
    as_of = now.replace(second=0, microsecond=0)
    t = as_of.timestamp()
    _log(
        folder,
        [
            # a batch request of 3 rows 2 min ago, with a shadow row (not an answer)
            *[_row("b", i, t - 120) for i in range(3)],
            _row("b", 0, t - 120, served=False),
            _row("c", 0, t - 30),  # 30 s ago
            _row("d", 0, t - 600),  # 10 min ago: only in the hour
            _row("e", 0, t - 7200),  # 2 h ago: in no window
        ],
    )
    rate = request_rate(project, now)
    five, sixty = rate["windows"]
    assert (five["minutes"], five["requests"], five["predictions"]) == (5, 2, 4)
    assert (sixty["minutes"], sixty["requests"], sixty["predictions"]) == (60, 3, 5)
    assert five["per_minute"] == pytest.approx(0.4) and sixty["per_second"] == pytest.approx(3 / 3600, abs=1e-4)
    assert rate["as_of"] == as_of.isoformat(timespec="seconds")
    assert rate["last_request_at"] == datetime.fromtimestamp(t - 30, UTC).isoformat(timespec="seconds")
    # the same log and minute: the same numbers (kept per file, read again only when a file changes)
    assert request_rate(project, now) == rate


def test_only_the_files_written_in_the_window_are_read(tmp_path: Path, migrated_db: Path) -> None:
    """A file's name says when it was written; an older file cannot hold a recent row, so it is not opened."""
    import shutil

    project = _project(tmp_path, migrated_db)
    folder = project.path(project.config.serving.prediction_log.dir)
    now = datetime.now(UTC)
    _log(folder, [_row("x", 0, now.timestamp() - 90)])
    (written,) = folder.glob("date=*/predictions-*.parquet")
    old = now - timedelta(hours=3)
    day = folder / f"date={old:%Y-%m-%d}"
    day.mkdir(exist_ok=True)
    renamed = day / re.sub(r"predictions-\d{8}T\d{12}-", f"predictions-{old:%Y%m%dT%H%M%S%f}-", written.name)
    shutil.move(written, renamed)  # the same rows, in a file named 3 hours ago
    rate = request_rate(project, now)
    assert [w["requests"] for w in rate["windows"]] == [0, 0]
    # nothing in the hour: the newest request is read from the newest older file
    assert rate["last_request_at"] == datetime.fromtimestamp(now.timestamp() - 90, UTC).isoformat(timespec="seconds")


def test_an_empty_or_switched_off_log(tmp_path: Path, migrated_db: Path) -> None:
    project = _project(tmp_path, migrated_db)
    rate = request_rate(project)
    assert [w["requests"] for w in rate["windows"]] == [0, 0] and rate["last_request_at"] is None
    off = make_project(tmp_path / "off", migrated_db, extra="serving:\n  prediction_log:\n    enabled: false\n")
    assert request_rate(off) == {"log": "off"}


@pytest.fixture
def service(tmp_path: Path, migrated_db: Path) -> Iterator[tuple[Project, str]]:
    """A real ``noria serve`` app for a project, logging to the project's log folder."""
    import socket

    import uvicorn

    from noria.serving.app import create_app
    from noria.serving.config import ServingConfig

    project = _project(tmp_path, migrated_db)
    register(project, train_booster(seed=0, rounds=5))
    folder = str(project.path(project.config.serving.prediction_log.dir))
    config = ServingConfig.model_validate({"prediction_log": {"dir": folder, "roll_seconds": 0.1}})
    app = create_app(project, config=config, environ={"NORIA_API_KEYS": KEY})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.2)
    try:
        yield project, base
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def test_a_ready_service_without_requests_is_stale_then_ok_once_it_answers(
    service: tuple[Project, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import noria.monitoring.traffic as traffic
    from noria.console.status import loop_status

    project, base = service
    stage = _stage(loop_status(project, base), "serving")
    assert stage["state"] == "stale" and "no request logged in the last 60 min (none ever)" in stage["summary"]
    assert stage["details"]["ready"] is True and stage["fix"].startswith(f"check that clients reach {base}")
    assert "serving" in loop_status(project, base)["red"]

    auth = {"Authorization": f"Bearer {KEY}"}
    for _ in range(3):
        assert httpx.post(f"{base}/predict", json={**FLIGHT, "features": INLINE}, headers=auth).status_code == 200
    folder = project.path(project.config.serving.prediction_log.dir)
    deadline = time.monotonic() + 30
    while not list(folder.glob("date=*/predictions-*.parquet")):  # the log rolls its file
        assert time.monotonic() < deadline, "the service wrote no log file"
        time.sleep(0.1)
    time.sleep(0.5)
    # the windows end at the start of this minute: ask as of the next one
    real, later = traffic.request_rate, datetime.now(UTC) + timedelta(minutes=1)
    monkeypatch.setattr(traffic, "request_rate", lambda p, now=None: real(p, later))
    status = loop_status(project, base)
    stage = _stage(status, "serving")
    assert stage["state"] == "ok", stage
    assert stage["details"]["requests"]["windows"][0]["requests"] == 3
    assert "requests/min over 5 min (3)" in stage["summary"] and stage["at"] is not None
    assert "serving" not in status["red"]


def _stage(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in status["stages"] if s["stage"] == name)


# --- the console ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def console_project(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Project:
    return registry_project(tmp_path_factory.mktemp("console-serving") / "proj", migrated_db)


@pytest.fixture(scope="module")
def client(console_project: Project) -> TestClient:
    return TestClient(console_app(console_project, environ={"NORIA_API_KEYS": READ}), headers=_auth())


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {READ}"}


def test_the_overview_shows_the_request_rate_as_noria_status_does(client: TestClient, console_project: Project) -> None:
    import json

    from tests.unit.console.test_console import rate_minute

    for _ in range(3):  # both in the same minute (the windows end at its start)
        page = client.get("/?format=json").json()
        done = CliRunner().invoke(cli_app, ["--project", str(console_project.root), "status", "--json"])
        assert done.exit_code == 0, done.output
        if rate_minute(page) == rate_minute(json.loads(done.stdout)):
            break
    assert page == json.loads(done.stdout)
    serving = _stage(page, "serving")
    rate = serving["details"]["requests"]
    # the project's log holds requests answered (by their timestamps) in 2013: none recently
    assert [w["requests"] for w in rate["windows"]] == [0, 0]
    assert rate["last_request_at"] == "2013-10-01T04:00:00+00:00" and serving["at"] == rate["last_request_at"]
    html = client.get("/").text
    section = html[html.index('id="requests-h"') :]
    assert "last 5 min" in section and "last 60 min" in section and "0 (no request)" in section
    assert "newest request" in section and "2013-10-01T04:00:00+00:00" in section
    assert "UNKNOWN" in section  # the stage's state in words: no URL to ask the service


def test_the_monitoring_page_links_its_plots_which_are_kept_by_the_browser(
    client: TestClient, console_project: Project
) -> None:
    html = client.get("/monitoring").text
    assert "<svg" not in html
    images = re.findall(r'<img src="(/monitoring/plots/[0-9a-f]+\.svg)" alt="([^"]+)"[^>]*>', html)
    assert len(images) >= 3, html[:2000]
    assert all(alt.strip() for _, alt in images)  # each plot says what it shows
    assert len(html) < 150_000
    for src, _ in images:
        answer = client.get(src)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/svg+xml")
        assert "immutable" in answer.headers["cache-control"]
        root = ET.fromstring(answer.content)  # a well-formed SVG document of its own
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        again = client.get(src, headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304 and not again.content
    # a console that never built the page (restarted) draws it when a plot is asked for
    fresh = TestClient(console_app(console_project, environ={"NORIA_API_KEYS": READ}), headers=_auth())
    assert fresh.get(images[0][0]).content == client.get(images[0][0]).content
    assert fresh.get("/monitoring/plots/0123456789abcdef01234567.svg").status_code == 404
    assert fresh.get("/monitoring/plots/..%2F..%2Fnoria.yaml").status_code == 404
    assert TestClient(console_app(console_project, environ={"NORIA_API_KEYS": READ})).get(
        images[0][0], follow_redirects=False
    ).status_code in (303, 401)  # plots need a key like pages
