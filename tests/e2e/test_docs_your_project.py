"""docs/your-project.md is run exactly as written: its files are written, its commands run.

Blocks fenced as ```python file=NAME / ```yaml file=NAME are files written into the project;
```bash run blocks are commands run one line at a time in a shell (``cd`` moves the folder
the next lines run in); ```bash run background starts a server that the next block talks to,
stopped (by PID) at the end. A command that fails fails the test with its output.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "your-project.md"
BLOCK = re.compile(r"```(?P<info>[^\n]*)\n(?P<body>.*?)```", re.S)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def blocks() -> list[tuple[str, str]]:
    return [(m["info"].strip(), m["body"]) for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]


def test_the_guide_names_every_step() -> None:
    kinds = [info for info, _ in blocks()]
    assert "bash run" in kinds and "bash run background" in kinds
    assert {"yaml file=noria.yaml", "yaml file=features.yaml", "python file=project_features.py"} <= set(kinds)


def test_every_command_of_the_guide_runs(tmp_path: Path) -> None:
    env = os.environ | {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env = {k: v for k, v in env.items() if not k.startswith("NORIA_")}
    env.setdefault("GIT_AUTHOR_NAME", "Noria test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@localhost")
    env.setdefault("GIT_COMMITTER_NAME", "Noria test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@localhost")
    cwd = tmp_path
    servers: list[subprocess.Popen[bytes]] = []
    outputs: list[str] = []
    try:
        for info, body in blocks():
            if info.startswith(("python file=", "yaml file=")):
                (cwd / info.split("file=", 1)[1]).write_text(body, encoding="utf-8")
                continue
            if info == "bash run background":
                log = (cwd / "server.log").open("wb")
                # its own process group: the shell may stay as the parent of `noria serve` (and that
                # of its log writer), and stopping only the shell leaked them
                server = subprocess.Popen(
                    body.strip(),
                    shell=True,
                    cwd=cwd,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                servers.append(server)
                port = re.search(r"--port (\d+)", body)
                assert port, "a background server in the guide names its --port"
                _wait_ready(f"http://127.0.0.1:{port[1]}", server, cwd / "server.log")
                continue
            if info != "bash run":
                continue
            for line in body.strip().splitlines():
                if line.startswith("cd "):
                    cwd = cwd / line[3:].strip()
                    continue
                done = subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
                outputs.append(f"$ {line}\n{done.stdout}{done.stderr}")
                assert done.returncode == 0, f"`{line}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    finally:
        for server in servers:  # the whole group this test started, by its PID
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
                _wait_group_gone(server.pid, 30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
    text = "\n".join(outputs)
    # what the guide promises the reader sees
    assert "6000 orders" in text
    assert '"returned":' in text and '"probability":' in text  # the service's answer in the project's terms
    assert "the loop, window by window" in text and "2024-10" in text
    assert (cwd / ".noria" / "monitoring" / "report.html").is_file()
    assert len(list((cwd / ".noria" / "monitoring" / "performance").glob("2024-10--v*.json"))) >= 1


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait until no process of group ``pgid`` is left (the service's log writer drains first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise subprocess.TimeoutExpired(f"process group {pgid}", timeout)


def _wait_ready(base: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
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
