"""A tracking *server* (``http(s)://``): probed once before use, failing within seconds when absent.

The servers here are tiny real HTTP servers on loopback (the full MLflow server on PostgreSQL
and S3 is tests/integration/test_cluster_stack.py).
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import free_port

from noria.config import load_project
from noria.errors import ExternalToolError
from noria.registry import mlflow_client
from noria.registry.mlflow_client import check_server, get_client, redact


class _Health(http.server.BaseHTTPRequestHandler):
    status = 404  # any HTTP answer means reachable (a 401 on the API: see the credentials tests)
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Health.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _forget_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlflow_client, "_REACHABLE", set())


def test_nothing_listening_fails_at_once_naming_the_uri_where_it_was_set_and_the_fix(small_project: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with (small_project / "noria.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"profiles:\n  remote:\n    tracking:\n      uri: {uri}\n")
    project = load_project(small_project, profile="remote", environ={})
    started = time.monotonic()
    with pytest.raises(ExternalToolError) as caught:
        get_client(project)
    assert time.monotonic() - started < 5  # MLflow's own client would retry for minutes
    message = caught.value.message
    assert uri in message and "connection refused" in message
    assert "tracking.uri from noria.yaml:" in message and "profile 'remote'" in message
    assert "NORIA_TRACKING__URI" in str(caught.value.fix)


def test_an_environment_override_is_named_as_the_source(small_project: Path) -> None:
    env = {"NORIA_TRACKING__URI": "http://noria-test.invalid:5000"}
    with pytest.raises(ExternalToolError, match="does not resolve") as caught:
        get_client(load_project(small_project, environ=env))
    assert "environment variable NORIA_TRACKING__URI" in caught.value.message


def test_any_http_answer_means_reachable_and_each_server_is_probed_once(server: str) -> None:
    check_server(f"{server}/mlflow/")
    check_server(f"{server}/mlflow/")
    assert _Health.seen == [("/mlflow/health", None), ("/mlflow/api/2.0/mlflow/experiments/search?max_results=1", None)]


def test_credentials_in_the_uri_are_neither_sent_to_the_probe_nor_shown(server: str) -> None:
    host = server.removeprefix("http://")
    check_server(f"http://ann:s3cret@{host}")
    assert _Health.seen == [("/health", None), ("/api/2.0/mlflow/experiments/search?max_results=1", None)]
    assert redact(f"http://ann:s3cret@{host}/x") == f"http://ann:***@{host}/x"
    assert redact("http://[::1]:5000") == "http://[::1]:5000"
    assert redact("https://u:p@[::1]:5000") == "https://u:***@[::1]:5000"


def test_a_server_asking_for_credentials_names_the_variables(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server with authentication refusing the call (401): the error says which variables to set.
    The real MLflow basic-auth server: tests/integration/test_mlflow_auth.py."""
    monkeypatch.setattr(_Health, "status", 401)
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ExternalToolError, match="none is set") as caught:
        check_server(server)
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in str(caught.value.fix)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    with pytest.raises(ExternalToolError, match="rejected the user 'ann'") as caught:
        check_server(server)
    assert "s3cret" not in str(caught.value)
    assert _Health.seen[-1][1] == "Basic YW5uOnMzY3JldA=="  # what MLflow's client sends: ann:s3cret
    assert server not in mlflow_client._REACHABLE  # refused: probed again next time


def test_databases_and_folders_are_not_probed() -> None:
    for uri in ("sqlite:////nowhere/mlflow.db", "postgresql://u:p@127.0.0.1:1/db", "/some/folder", "databricks"):
        check_server(uri)  # no network, no error


def test_mlflow_keeps_off_stdout_unless_asked() -> None:
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"  # `--json` output stays JSON
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_a_server_client_does_not_import_feast_for_mlflows_header_plugins() -> None:
    # A fresh interpreter: the header-plugin registry is loaded once per process.
    code = (
        "import sys\n"
        "from noria.registry.mlflow_client import load_request_header_providers\n"
        "load_request_header_providers()\n"
        "from mlflow.tracking.request_header.registry import _request_header_provider_registry as r\n"
        "print(sorted(type(p).__name__ for p in r), 'feast' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "['DatabricksRequestHeaderProvider', 'DefaultRequestHeaderProvider'] False"
