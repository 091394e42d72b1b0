"""The service a replay talks to: ``noria serve --insecure-local`` started on a free port (the demo
uses it too), waited for until ready and stopped by its PID; or a running service named by URL.
And the wait for the service to hot-swap to a newly promoted version.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import ExternalToolError

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

    from noria.config import Project

SERVER_ENV = {
    # files every second, so a window's predictions are on disk moments after its last request
    "NORIA_SERVING__PREDICTION_LOG__ROLL_SECONDS": "1",
    # look for a new @champion every 2 s (10 s by default)
    "NORIA_SERVING__POLL_SECONDS": "2",
}


def wait_for_version(console: Console, client: httpx.Client, version: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    served: dict[str, Any] = {}
    while time.monotonic() < deadline:
        served = client.get("/version").json()
        if int(served.get("version", -1)) == version:
            console.print(f"the service hot-swapped to version {version} (no restart, no failed request)")
            return
        time.sleep(0.5)
    console.print(f"[yellow]the service still serves {served.get('version')} after {timeout:.0f} s[/]")


@contextmanager
def replay_service(project: Project, url: str | None, api_key: str | None) -> Iterator[tuple[str, dict[str, str], int]]:
    """(base URL, headers, pid): a service to talk to, started here for the replay unless ``url`` is given."""
    if url is not None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        yield url.rstrip("/"), headers, 0
        return
    with served(project, SERVER_ENV) as (base, pid, _log):
        yield base, {}, pid


@contextmanager
def served(project: Project, env: dict[str, str] | None = None) -> Iterator[tuple[str, int, Path]]:
    """Run `noria serve --insecure-local` on a free port until the block ends (then SIGTERM, by PID)."""
    import os
    import signal
    import subprocess
    import sys

    port = _free_port()
    log = project.root / ".noria" / "serve.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "noria", "--project", str(project.root), "serve", "--insecure-local"]
    if project.profile != "local":
        command[3:3] = ["--profile", project.profile]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true"} | (env or {}),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server, log)
        yield base, server.pid, log
    finally:
        server.send_signal(signal.SIGTERM)  # flushes the prediction log, then exits
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(base: str, server: object, log: Path, timeout: float = 180.0) -> None:
    import subprocess

    import httpx

    assert isinstance(server, subprocess.Popen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ExternalToolError(f"noria serve exited with {server.returncode}", fix=f"see {log}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ExternalToolError(f"noria serve was not ready after {timeout:.0f} s", fix=f"see {log}")


__all__ = ["SERVER_ENV", "replay_service", "served", "wait_for_version"]
