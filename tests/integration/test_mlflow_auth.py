"""Noria against a real MLflow server with authentication (issue 14).

deploy/terraform and deploy/compose run ``mlflow server --app-name basic-auth``: every API call
needs a user, and Noria's pods log in through MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
(read by MLflow's client). This module starts that server here, configured as they configure it
(an auth config file naming the auth store, the admin password from MLFLOW_AUTH_ADMIN_PASSWORD,
the Flask secret key, the users' tables in the same PostgreSQL database ``mlflow`` as the runs),
with a local artifact folder instead of S3 (tests/integration/test_cluster_stack.py covers S3),
and stops it and PostgreSQL by PID.

Without credentials, or with a wrong password, Noria's tracking calls fail at once with an
error naming the variables to set; with them, a run is logged and a model version registered
through Noria's registry functions, and the server holds both.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_support import clean_env, gone, stop_group
from s3_support import Postgres, temporary_postgres
from tests.conftest import free_port

from noria.config import Project, load_project
from noria.errors import ExternalToolError

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR is not set"),  # pgserver's runtime folder, as root
]

ADMIN = "admin"
PASSWORD = "a-long-enough-admin-password"  # MLflow refuses an admin password under 12 characters
MODEL = "auth-model"
CONFIG = """\
project: authtest
data:
  source: {{kind: directory, path: raw}}
  tables:
    flights:
      file: flights.csv
      primary_key: [id]
      columns:
        id: {{type: int}}
model:
  name: {model}
tracking:
  uri: {uri}
"""


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    pg: Postgres


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("mlflow-auth")
    with temporary_postgres() as pg:
        database = pg.database_url("mlflow")
        # The file deploy/terraform keeps in the mlflow-auth Secret (compose writes it at start):
        # the auth store is the tracking store's own database.
        config = tmp / "basic_auth.ini"
        config.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = {database}\n"
            f"admin_username = {ADMIN}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
            encoding="utf-8",
        )
        port = free_port()
        env = clean_env(tmp / "pycache") | {
            "MLFLOW_BACKEND_STORE_URI": database,
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        argv = [
            sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--workers", "1",
            "--host", "127.0.0.1", "--port", str(port),
            "--artifacts-destination", str(tmp / "artifacts"), "--serve-artifacts",
        ]  # fmt: skip
        log = tmp / "mlflow.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 240
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server --app-name basic-auth did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield Server(url, proc, log, pg)
        finally:
            stop_group(proc)
    assert gone(proc.pid), f"mlflow server (pid {proc.pid}) outlived the test"
    assert gone(pg.pid), f"PostgreSQL (pid {pg.pid}) outlived the test"


@pytest.fixture
def project(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    from noria.registry import mlflow_client

    monkeypatch.setattr(mlflow_client, "_REACHABLE", set())  # probe the server again in each test
    for var in list(os.environ):
        if var.startswith(("NORIA_", "MLFLOW_TRACKING_")):
            monkeypatch.delenv(var)
    (tmp_path / "noria.yaml").write_text(CONFIG.format(model=MODEL, uri=server.url), encoding="utf-8")
    return load_project(tmp_path, environ={})


def _lineage(project: Project) -> Any:
    from noria.registry import collect_lineage

    return collect_lineage(project, data_snapshot="snap1", feature_service="fs", feature_definition_hash="abc")


def test_the_server_refuses_anonymous_calls(server: Server) -> None:
    search = f"{server.url}/api/2.0/mlflow/experiments/search"
    assert httpx.get(search, params={"max_results": 1}).status_code == 401
    assert httpx.get(search, params={"max_results": 1}, auth=(ADMIN, PASSWORD)).status_code == 200
    assert httpx.get(f"{server.url}/health").status_code == 200  # the probes need no credentials


def test_users_live_beside_the_runs_in_one_postgresql_database(server: Server) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(server.pg.database_url("mlflow"))
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            users = [row[0] for row in conn.execute(sa.text("SELECT username FROM users"))]
    finally:
        engine.dispose()
    # MLflow's tracking tables and the auth app's, each with its own migration table.
    assert {"experiments", "runs", "registered_models", "alembic_version"} <= tables
    assert {"users", "roles", "alembic_version_auth"} <= tables
    assert users == [ADMIN]


def test_without_credentials_noria_names_the_variables_to_set(project: Project) -> None:
    from noria.registry import start_run

    with pytest.raises(ExternalToolError) as caught:
        start_run(project, "train", _lineage(project))
    text = str(caught.value)
    assert "asks for a user name and password, and none is set (HTTP 401)" in text
    assert "MLFLOW_TRACKING_USERNAME" in text and "MLFLOW_TRACKING_PASSWORD" in text
    assert "tracking.uri" in text  # where the server's address came from


def test_a_wrong_password_is_named_with_its_user(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from noria.registry import start_run

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(ExternalToolError) as caught:
        start_run(project, "train", _lineage(project))
    assert "rejected the user 'admin' (MLFLOW_TRACKING_USERNAME) with MLFLOW_TRACKING_PASSWORD" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_credentials_lost_after_the_probe_are_named_too(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client made while the credentials were right, then used without them: MLflow's own 401
    error (UNAUTHENTICATED) becomes the same Noria error."""
    from noria.registry.mlflow_client import ensure_experiment, get_client

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    client = get_client(project)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(ExternalToolError) as caught:
        ensure_experiment(client, project)
    assert "MLflow refused to open experiment 'authtest'" in str(caught.value)
    assert "MLFLOW_TRACKING_USERNAME" in str(caught.value)


def test_with_credentials_a_run_is_logged_and_a_version_registered(
    server: Server, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightgbm as lgb
    import numpy as np

    from noria.registry import get_version, start_run

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, y), 4)
    with start_run(project, "train", _lineage(project)) as run:
        run.log_metrics({"roc_auc": 0.7})
        version = run.log_model(booster, MODEL)
    assert get_version(project, f"{MODEL}/{version.version}").run_id == run.run_id

    api = f"{server.url}/api/2.0/mlflow"
    auth = (ADMIN, PASSWORD)
    got = httpx.get(f"{api}/runs/get", params={"run_id": run.run_id}, auth=auth).raise_for_status().json()
    assert got["run"]["data"]["metrics"][0]["value"] == pytest.approx(0.7)
    params = {"name": MODEL, "version": version.version}
    mv = httpx.get(f"{api}/model-versions/get", params=params, auth=auth).raise_for_status().json()
    assert mv["model_version"]["run_id"] == run.run_id and mv["model_version"]["status"] == "READY"
    assert httpx.get(f"{api}/model-versions/get", params=params).status_code == 401
