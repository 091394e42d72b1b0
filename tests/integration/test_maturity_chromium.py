"""The maturity page in a real browser: headless Chromium lays out every statement and section bar.

Chromium is Debian's (apt-get install chromium, done by scripts/system_deps.sh in CI). The page's
inline script writes how many statements have a height and how many bar segments a width into
``data-drawn`` on ``<body>``: both must be 60 (``data-statements``). The screenshot must show the
bars in the statuses' colours. The page is the assessment of the reference project, examples/flights.
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

from noria.config import load_project
from noria.maturity import assess, write_html

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120


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


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = assess(load_project(ROOT / "examples" / "flights", environ={}))
    return write_html(result, tmp_path_factory.mktemp("maturity") / "maturity.html")


def test_chromium_lays_out_every_statement_and_bar(page: Path, tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    dom = _chromium(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    body = re.search(r"<body\b[^>]*>", dom)
    assert body, dom[:2000]
    assert 'data-statements="60"' in body.group(0)
    drawn = re.search(r'data-drawn="(\d+) (\d+)"', body.group(0))
    assert drawn and drawn.groups() == ("60", "60"), body.group(0)


def test_the_screenshot_shows_the_bars(page: Path, tmp_path: Path) -> None:
    from PIL import Image

    chromium = require_binary("chromium")
    shot = tmp_path / "maturity.png"
    _chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int64)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    met = (green > 100) & (green - red > 40) & (green - blue > 40)  # #2e7d32
    partial = (red > 200) & (green > 130) & (green < 190) & (blue < 60)  # #f0a500
    assert met.sum() > 300, met.sum()
    assert partial.sum() > 300, partial.sum()
