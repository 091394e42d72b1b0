"""``noria ui``: the MLflow UI on the project's tracking store."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from noria.errors import ExternalToolError
from noria.registry.mlflow_client import artifact_location, is_remote, tracking_uri

if TYPE_CHECKING:
    from noria.config import Project


@dataclass(frozen=True)
class UiCommand:
    argv: list[str]
    url: str
    remote: bool  # True: the project already uses an MLflow server; nothing to start


def mlflow_ui_command(project: Project, port: int = 5000, host: str = "127.0.0.1") -> UiCommand:
    """The ``mlflow server`` command serving this project's store (or the server's URL if remote)."""
    uri = tracking_uri(project)
    if is_remote(uri):
        return UiCommand([], uri, remote=True)
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        # One in-process worker: enough for one person, and uvicorn's multi-worker supervisor
        # kills workers that start slowly on a busy laptop.
        "--workers",
        "1",
    ]
    artifacts = artifact_location(project)
    if artifacts:
        argv += ["--default-artifact-root", artifacts]
    return UiCommand(argv, f"http://{host}:{port}", remote=False)


def ui_environment() -> dict[str, str]:
    """The server's environment: no telemetry, and no background job workers (huey consumers)
    that MLflow's GenAI features need but a local browsing UI does not."""
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def run_mlflow_ui(project: Project, port: int = 5000, host: str = "127.0.0.1") -> int:
    """Run the MLflow UI in the foreground until interrupted; returns its exit status."""
    command = mlflow_ui_command(project, port, host)
    if command.remote:
        return 0
    try:
        # Its own process group, so that stopping it stops every process it started.
        server = subprocess.Popen(command.argv, env=ui_environment(), start_new_session=True)
    except OSError as exc:
        raise ExternalToolError(f"cannot start the MLflow UI: {exc}", fix="check MLflow is installed") from exc
    # SIGTERM (a service manager, `kill`) ends this process like Ctrl-C does, so the server's
    # process group (its own session: the terminal's signals do not reach it) is stopped too.
    previous = _on_sigterm_interrupt()
    try:
        return server.wait()
    except KeyboardInterrupt:
        stop_process_group(server)
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _on_sigterm_interrupt() -> Any:
    """Make SIGTERM raise KeyboardInterrupt (main thread only); the handler it replaced, or None."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)
    return signal.SIG_DFL if previous is None else previous


def stop_process_group(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
