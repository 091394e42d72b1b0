"""The monitoring report in a real browser: headless Chromium draws every plot, offline.

Chromium is Debian's (apt-get install chromium, done by scripts/system_deps.sh in CI). The
report's inline script writes how many plots have a non-empty bounding box into
``data-plots-drawn`` on ``<body>``; the dumped DOM must show it equal to ``data-plots``. The
screenshot must show the plots: not blank, and with the heatmap's and lines' colours in it. Two
reports: a binary model's on a real registry and prediction log (six plots), and a regression
model's from its monitoring store alone (four plots: heatmap, performance, residuals, timeline).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import require_binary
from tests.unit.monitoring.report_support import REGRESSION, fill_task_store, migrated_db_fixture, registry_project

pytestmark = pytest.mark.integration

TIMEOUT_S = 120
migrated_db = pytest.fixture(scope="module")(migrated_db_fixture)


def _chromium(binary: str, profile: Path, *args: str) -> str:
    """Run headless Chromium; on timeout kill its process group (it was started in a new session)."""
    command = [
        binary,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group Chromium leads: its renderer and GPU helpers
        proc.communicate()
        pytest.fail(f"chromium did not finish within {TIMEOUT_S} s: {' '.join(command)}")
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module", params=["binary", "regression"])
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, migrated_db: Path
) -> tuple[str, Path]:
    from noria.config import load_project
    from noria.monitoring.report import write_report
    from noria.monitoring.store import MonitoringStore

    folder = tmp_path_factory.mktemp(f"report-{request.param}")
    if request.param == "binary":
        return request.param, write_report(registry_project(folder / "proj", migrated_db))
    root = folder / "proj"
    root.mkdir()
    (root / "noria.yaml").write_text(REGRESSION_CONFIG, encoding="utf-8")
    project = load_project(root, environ={})
    fill_task_store(MonitoringStore.of(project), REGRESSION, project.config.model.name)
    return request.param, write_report(project)


REGRESSION_CONFIG = """\
project: glucosetest
data:
  source: {kind: directory, path: raw}
  tables:
    readings: {file: readings.csv, primary_key: [id], columns: {id: {type: int}, level: {type: float}}}
model:
  name: glucose-30
  task: regression
  target: {column: level, name: glucose in 30 min, unit: mg/dL}
windows: {unit: week}
"""
PLOTS = {"binary": 6, "regression": 4}  # binary: drift, score, performance, calibration, timeline, champion


def test_chromium_draws_every_plot(report: tuple[str, Path], tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    kind, path = report
    dom = _chromium(chromium, tmp_path / "profile", "--dump-dom", path.as_uri())
    body = re.search(r"<body\b[^>]*>", dom)
    assert body, dom[:2000]
    expected = re.search(r'data-plots="(\d+)"', body.group(0))
    drawn = re.search(r'data-plots-drawn="(\d+)"', body.group(0))
    assert expected and drawn, body.group(0)
    assert int(expected.group(1)) == PLOTS[kind]
    assert drawn.group(1) == expected.group(1)


def test_the_screenshot_shows_the_plots(report: tuple[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    chromium = require_binary("chromium")
    shot = tmp_path / "report.png"
    _chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,4000", report[1].as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape == (4000, 1280, 3)
    assert pixels.std() > 20  # not a blank page
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    heat = (red > 150) & (red - blue > 100) & (green < 120)  # the heatmap's dark red cells (the drifted feature)
    lines = (blue > 150) & (blue - red > 60)  # the blue lines of version 1
    assert heat.sum() > 500, heat.sum()
    assert lines.sum() > 200, lines.sum()
    assert (pixels.sum(axis=2) < 600).mean() > 0.02  # a fair share of the page is drawn, not white
