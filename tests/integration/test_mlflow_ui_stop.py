"""`noria ui --mlflow` stops the MLflow server it started when it is itself stopped with SIGTERM.

The server runs in its own session (so a terminal's Ctrl-C is handled by noria, which stops the
server's whole process group). A service manager or `kill` sends SIGTERM instead: before, noria
died at once and left the MLflow server running. Real processes; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

CONFIG = """\
project: ui-stop
data:
  tables:
    t:
      file: t.csv
      primary_key: [k]
      columns:
        k: {type: int}
  source: {kind: directory, path: raw}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Every process whose session is the one ``pid``'s child started (the MLflow server's group)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid:  # ppid
            found.append(int(entry.name))
    return found


def test_sigterm_stops_the_mlflow_server_too(tmp_path: Path) -> None:
    (tmp_path / "noria.yaml").write_text(CONFIG, encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    noria = subprocess.Popen(
        [sys.executable, "-m", "noria", "--project", str(tmp_path), "ui", "--mlflow", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert noria.poll() is None, "noria ui --mlflow exited before the UI answered"
            assert time.monotonic() < deadline, "the MLflow UI did not answer in 180 s"
            time.sleep(0.5)
        server = _children(noria.pid)
        assert server, "no MLflow server process under noria"
        noria.send_signal(signal.SIGTERM)
        assert noria.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{p}").exists() for p in server) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in server if Path(f"/proc/{p}").exists()]
        assert not left, f"the MLflow server outlived noria ui: {left}"
    finally:
        for pid in [noria.pid, *server]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        noria.wait(timeout=10)
