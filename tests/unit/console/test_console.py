"""The console on a real registry, prediction log and monitoring store (report_support's project).

Access (keys as serving checks them, --insecure-local on loopback only, admin keys for actions),
the JSON twin of each page against the CLI's --json for the same question, the cache (a changed
record rebuilds a page), the loop's stages, and a promotion through the confirmation form.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.monitoring.report_support import MODEL, migrated_db_fixture, registry_project
from typer.testing import CliRunner

from noria.cli import app as cli_app
from noria.config import Project
from noria.console.server import console_app
from noria.errors import ConfigError

READ = "read-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef"
migrated_db = pytest.fixture(scope="module")(migrated_db_fixture)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, migrated_db: Path) -> Project:
    return registry_project(tmp_path_factory.mktemp("console") / "proj", migrated_db)


@pytest.fixture(scope="module")
def client(project: Project) -> TestClient:
    app = console_app(project, environ={"NORIA_API_KEYS": READ, "NORIA_ADMIN_KEYS": ADMIN})
    return TestClient(app, headers={"Authorization": f"Bearer {READ}"})


def _cli(project: Project, *args: str) -> Any:
    done = CliRunner().invoke(cli_app, ["--project", str(project.root), *args], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_without_keys_the_console_refuses_to_start_unless_insecure_local_on_loopback(project: Project) -> None:
    with pytest.raises(ConfigError, match="no API key"):
        console_app(project, environ={})
    with pytest.raises(ConfigError, match="loopback"):
        console_app(project, host="0.0.0.0", insecure_local=True, environ={})
    open_app = TestClient(console_app(project, insecure_local=True, environ={}))
    assert open_app.get("/models?format=json").status_code == 200
    confirm = open_app.get(f"/actions/promote?model={MODEL}&version=2")
    assert confirm.status_code == 403 and "actions are off" in confirm.text


def test_pages_need_a_key_and_a_login_cookie_carries_it(project: Project) -> None:
    app = TestClient(console_app(project, environ={"NORIA_API_KEYS": READ}))
    denied = app.get("/models?format=json")
    assert denied.status_code == 401 and "API key" in denied.json()["error"]
    assert (
        app.get("/models", headers={"Authorization": "Bearer wrong-key-0123456789"}, follow_redirects=False)
        .headers["location"]
        .startswith("/login")
    )
    assert app.post("/login", data={"key": "wrong-key-0123456789", "next": "/"}).status_code == 401
    signed = app.post("/login", data={"key": READ, "next": "/models"}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/models"
    cookie = signed.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert app.get("/models").status_code == 200  # the client kept the cookie
    outside = app.post("/login", data={"key": READ, "next": "//evil.example/x"}, follow_redirects=False)
    assert outside.headers["location"] == "/"


@pytest.mark.parametrize(
    ("path", "cli"),
    [
        ("/models", ["models", "list", "--json"]),
        (f"/models/{MODEL}/2", ["lineage", f"{MODEL}/2", "--json"]),
        ("/monitoring", ["monitor", "show", "--json"]),
        ("/data", ["data", "list", "--json"]),
        ("/", ["status", "--json"]),
    ],
)
def test_each_json_twin_equals_the_cli(client: TestClient, project: Project, path: str, cli: list[str]) -> None:
    for _ in range(3):  # the overview's request rate is as of the current minute: both asked in the same one
        page = client.get(path, params={"format": "json"})
        assert page.status_code == 200, page.text
        expected = _cli(project, *cli)
        if rate_minute(page.json()) == rate_minute(expected):
            break
    assert page.json() == expected
    html = client.get(path)
    assert html.status_code == 200 and "<main" in html.text and 'nav aria-label="Sections"' in html.text


def rate_minute(payload: Any) -> Any:
    """The minute the overview's request rate is counted to (None for other pages)."""
    if not isinstance(payload, dict) or "stages" not in payload:
        return None
    serving = next(s for s in payload["stages"] if s["stage"] == "serving")
    return serving["details"].get("requests", {}).get("as_of")


def test_the_overview_shows_each_stage_with_its_state_and_fix(client: TestClient) -> None:
    status = client.get("/?format=json").json()
    stages = {s["stage"]: s for s in status["stages"]}
    assert list(stages) == [
        "data",
        "features",
        "training",
        "registry",
        "serving",
        "monitoring",
        "retraining",
        "maturity",
    ]
    assert stages["data"]["state"] == "missing" and stages["data"]["fix"] == "noria data ingest"
    assert stages["registry"]["state"] == "ok" and stages["registry"]["details"]["champion"] == 1
    assert stages["serving"]["state"] == "unknown"
    assert stages["monitoring"]["details"]["alerts"], stages["monitoring"]
    assert set(status["red"]) >= {"data", "monitoring"}
    html = client.get("/").text
    assert 'id="stage-monitoring"' in html and "FAILING" in html and "noria data ingest" in html


def test_a_changed_record_rebuilds_the_page(client: TestClient, project: Project) -> None:
    from noria.monitoring.store import MonitoringStore

    before = client.get("/monitoring?format=json").json()
    MonitoringStore.of(project).append_decision({"window": "2099-01", "action": "none", "reasons": ["a test"]})
    after = client.get("/monitoring?format=json").json()
    assert len(after["decisions"]) == len(before["decisions"]) + 1


def test_a_promotion_through_the_console_is_what_the_cli_records(client: TestClient, project: Project) -> None:
    reader = client.get(f"/actions/promote?model={MODEL}&version=2")
    assert reader.status_code == 403 and "admin key" in reader.text
    admin = {"Authorization": f"Bearer {ADMIN}"}
    confirm = client.get(f"/actions/promote?model={MODEL}&version=2", headers=admin)
    assert confirm.status_code == 200 and "becomes @champion" in confirm.text and 'method="post"' in confirm.text
    foreign = client.post(
        "/actions/promote",
        data={"model": MODEL, "version": "2", "force": "1", "reason": "x"},
        headers=admin | {"Origin": "http://evil.example"},
    )
    assert foreign.status_code == 403
    done = client.post(
        "/actions/promote", data={"model": MODEL, "version": "2", "force": "1", "reason": "console test"}, headers=admin
    )
    assert done.status_code == 200 and "is now @champion" in done.text, done.text
    models = _cli(project, "models", "list", "--json")
    assert models[0]["aliases"]["champion"] == 2
    notes = next(v for v in models[0]["versions"] if v["version"] == 2)["description"]  # registry.notes
    assert f"Promoted {MODEL} version 2 to @champion, forced" in notes and "- Reason: console test" in notes
    page = client.get(f"/models/{MODEL}/2").text
    assert 'id="notes-h"' in page and "- Reason: console test" in page
    history = client.get("/models").text
    assert "console test" in history


def test_review_marks_are_recorded_like_the_cli_and_the_newest_wins(client: TestClient, project: Project) -> None:
    import pandas as pd

    from noria.errors import NotFoundError, ValidationError
    from noria.monitoring.review import latest_marks, mark_review
    from noria.monitoring.store import MonitoringStore

    frame = pd.DataFrame(
        {
            "request_id": ["a1", "a2", "a3"],
            "score": [0.49, 0.51, 0.93],
            "reason": ["low certainty: p=0.49", "low certainty: p=0.51", "out of distribution: temp"],
        }
    )
    MonitoringStore.of(project).save_review("2013-11", frame)
    page = client.get("/monitoring/review", params={"window": "2013-11", "reason": "low", "format": "json"}).json()
    assert page == _cli(project, "monitor", "review", "--window", "2013-11", "--reason", "low", "--json")
    assert [r["request_id"] for r in page["rows"]] == ["a1", "a2"] and page["total"] == 3
    with pytest.raises(ValidationError, match="verdict"):
        mark_review(project, "2013-11", "a1", "maybe")
    with pytest.raises(NotFoundError, match="not in the review queue"):
        mark_review(project, "2013-11", "zz", "wrong")
    _cli(project, "monitor", "review", "--window", "2013-11", "--mark", "a1", "--verdict", "wrong", "--json")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    confirm = client.get("/actions/review", params={"window": "2013-11", "request_id": "a1"}, headers=admin)
    assert confirm.status_code == 200 and "noria monitor review --window 2013-11 --mark a1" in confirm.text
    done = client.post(
        "/actions/review",
        data={"window": "2013-11", "request_id": "a1", "verdict": "right", "note": "checked"},
        headers=admin,
    )
    assert done.status_code == 200 and "marked right" in done.text
    marks = latest_marks(project, "2013-11")
    assert marks["a1"]["verdict"] == "right" and marks["a1"]["note"] == "checked"
    lines = (MonitoringStore.of(project).root / "review" / "marks.jsonl").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in lines] == ["wrong", "right"]
    shown = client.get("/monitoring/review?window=2013-11&format=json").json()
    assert shown["rows"][0]["mark"]["verdict"] == "right"


def test_the_demo_ends_with_the_console_address(project: Project) -> None:
    import time

    from rich.console import Console

    from noria import demo

    out = Console(record=True, width=200)
    demo._done(out, time.perf_counter(), project)
    text = out.export_text()
    assert f"noria --project {project.root} ui --insecure-local" in text and "http://127.0.0.1:5000/" in text


def test_the_demo_ends_with_the_projects_maturity_and_its_page(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    from noria import demo
    from noria.maturity import assess

    out = Console(record=True, width=240)
    demo._maturity(out, project)
    text = capsys.readouterr().out + out.export_text()  # the tables go to stdout, as all of the demo's
    result = assess(project)
    assert f"MLOps maturity of {project.config.project}: {result.score:g} of 60" in text
    assert "1. Documentation" in text and "to complete" in text
    assert "NEEDS A PERSON" in text and "docs/goals.md" in text  # a fixture project has no signed-off goals
    page = project.root / ".noria" / "maturity.html"
    assert page.is_file() and f"maturity page: {page}" in text.replace("\n", "")
    assert "MLOps maturity" in page.read_text(encoding="utf-8")
