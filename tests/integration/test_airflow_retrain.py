"""``monitoring.policy.retrain_via: airflow`` against a real Airflow 3 API server.

The test starts Airflow itself (the installed ``apache-airflow``): ``airflow db migrate`` on SQLite
in a temporary AIRFLOW_HOME, ``airflow dags reserialize`` of a DAG folder holding the training DAG
``noria airflow render training`` writes for a small multi-class project, and ``airflow
api-server`` with the simple auth manager (user ``noria``, role op; ``watcher``, role viewer).
Then ``noria monitor run`` on a project whose records say retrain triggers a run of that DAG
through the REST API; the test reads the run back through the REST API (its conf is the policy's
periods and trials as ``NORIA_TRAINING__*``) and runs the DAG run's first task with ``airflow
tasks test``: the rendered DAG gives the conf to the task's environment, and the training
pipeline's ``context`` step of that run holds the policy's weeks and trials. The refusals (wrong
password, a viewer, an unknown DAG, a duplicate run) are Airflow's own answers. No scheduler or
worker runs: nothing else is needed to create a DAG run. 35-60 s (Airflow starts in 15-27 s here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import free_port
from tests.unit.monitoring.task_projects import games_project
from tests.unit.monitoring.test_policy import _champion, _performance
from tests.unit.serving.serving_support import make_migrated_db
from typer.testing import CliRunner

from noria.config import Project, load_project
from noria.data.ingest import ingest
from noria.errors import ExternalToolError, NotFoundError
from noria.monitoring.airflow_run import trigger_training_dag
from noria.monitoring.policy import run_policy
from noria.monitoring.store import MonitoringStore
from noria.pipelines.orchestrators import OrchestratorsConfig, render_airflow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venv" / "bin" / "airflow"
USERS = {"noria": "retrain-secret", "watcher": "look-only"}
WEEKS = {
    "NORIA_TRAINING__TRAIN__FROM": "2024-W11",
    "NORIA_TRAINING__TRAIN__TO": "2024-W12",
    "NORIA_TRAINING__TEST__FROM": "2024-W13",
    "NORIA_TRAINING__TEST__TO": "2024-W13",
}


def _airflow_env(home: Path, dags: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NORIA_", "AIRFLOW"))}
    return env | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "noria:op,watcher:viewer",
        "AIRFLOW__API_AUTH__JWT_SECRET": "noria-test-jwt-secret-0123456789abcdef",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
    }


def _airflow(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


class Airflow:
    def __init__(self, url: str, env: dict[str, str], project: Project) -> None:
        self.url, self.env, self.project = url, env, project

    def token(self, user: str = "noria") -> str:
        answer = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": USERS[user]}, timeout=30)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["access_token"])

    def get(self, path: str) -> dict[str, Any]:
        answer = httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.token()}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """A games project whose champion learned week 10, judged on 11, with weeks 10-13 ingested; its
    training DAG rendered into the DAG folder of a real Airflow API server."""
    tmp = tmp_path_factory.mktemp("airflow-retrain")
    started = time.perf_counter()
    registry = make_migrated_db(None, tmp / "mlflow-template")
    project = games_project(tmp / "games", function_target=True, registry=registry, git=True)
    ingest(project, "2024-03", "2024-04")
    weeks = {"train_from": "2024-W10", "train_to": "2024-W10", "test_from": "2024-W11", "test_to": "2024-W11"}
    _champion(project, weeks | {"test_log_loss": 0.9}, objective="multiclass", num_class=3)
    off = {"enabled": False}  # the training DAG only
    config = OrchestratorsConfig.model_validate({"retries": 0, "monitor": off, "ingest": off, "features": off})
    [dag_file] = render_airflow(project, "training", tmp / "dags", config=config)
    assert dag_file.name == "games_training.py"
    project_seconds = time.perf_counter() - started

    home = tmp / "airflow-home"
    home.mkdir()
    # the simple auth manager keeps the users' passwords in this file (it adds only missing users)
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps(USERS) + "\n")
    env = _airflow_env(home, tmp / "dags")
    _airflow(env, "db", "migrate")
    port = free_port()
    log = (tmp / "api-server.log").open("w")
    server = subprocess.Popen(
        [str(AIRFLOW), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--apps", "core"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the uvicorn worker is stopped with it
    )
    try:
        _airflow(env, "dags", "reserialize")  # the DAG processor's work, once: the DAG is in the database
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp / "api-server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/api/v2/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "airflow api-server did not answer in 120 s"
            time.sleep(0.5)
        print(f"project {project_seconds:.1f} s, Airflow up {time.perf_counter() - started - project_seconds:.1f} s")
        yield Airflow(url, env, project)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_monitor_run_triggers_the_training_dag_whose_tasks_get_the_policys_weeks(airflow: Airflow) -> None:
    from noria.cli import app

    project = airflow.project
    store = MonitoringStore.of(project)
    version = _champion_version(project)
    _performance(project, "2024-W13", version, "log_loss", 1.0)  # 0.1 worse than the holdout 0.9: retrain
    env = {
        "NORIA_MONITORING__POLICY__RETRAIN_VIA": "airflow",
        "NORIA_MONITORING__POLICY__AIRFLOW_URL": airflow.url,
        "NORIA_MONITORING__POLICY__TRIALS": "3",
        "NORIA_AIRFLOW_USERNAME": "noria",
        "NORIA_AIRFLOW_PASSWORD": USERS["noria"],
    }
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["--project", str(project.root), "monitor", "run"], env=env)
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output + repr(result.exception)
    decision = store.decisions()[-1]
    run = decision["started"]
    conf = WEEKS | {"NORIA_TRAINING__TRIALS": "3"}
    assert decision["action"] == "retrain" and decision["retrain_via"] == "airflow" and decision["acted"] is True
    assert decision["candidate_version"] is None and decision["error"] is None  # nothing trained here
    assert run["kind"] == "airflow" and run["dag_id"] == "games_training" and run["conf"] == conf
    assert run["dag_run_id"].startswith("noria-retrain-") and run["state"] == "queued"
    assert run["url"] == f"{airflow.url}/dags/games_training/runs/{run['dag_run_id']}"
    assert (
        f"triggered Airflow DAG run {run['dag_run_id']} of games_training (logical date {run['logical_date']}): "
        f"retrains on 2024-W11..2024-W12, judged on 2024-W13..2024-W13 ({run['url']})"
    ) in result.output
    assert seconds < 30, seconds

    # Airflow holds the run, with the conf, as triggered through its REST API by user noria
    held = airflow.get(f"/api/v2/dags/games_training/dagRuns/{run['dag_run_id']}")
    assert held["conf"] == conf and held["run_type"] == "manual" and held["state"] == "queued"
    assert (held["triggered_by"], held["triggering_user_name"]) == ("rest_api", "noria")
    assert held["logical_date"] == run["logical_date"] and "noria monitor run" in held["note"]
    assert httpx.get(run["url"], timeout=30).status_code == 200  # the UI's page of the run

    # the rendered DAG's first task, run for that DAG run, gets the conf as NORIA_TRAINING__*
    # variables: the training pipeline's context step of the run learns on the policy's weeks
    # (the project's noria.yaml sets no training periods: without the conf the step would fail)
    _airflow(airflow.env, "tasks", "test", "games_training", "context", run["dag_run_id"], timeout=300)
    from noria.pipelines import store_for_project
    from noria.pipelines._serializers import load_artifact

    pipelines = store_for_project(load_project(project.root, environ={}))
    record = pipelines.read_record(f"runs/training/{run['dag_run_id']}/steps/context.json")
    assert record is not None, "the context task left no step record for the DAG run"
    training = load_artifact(pipelines.get(record["outputs"]["context"]))["training"]
    assert training["train"] == {"from": "2024-W11", "to": "2024-W12"}
    assert training["test"] == {"from": "2024-W13", "to": "2024-W13"}
    assert training["trials"] == 3


def _champion_version(project: Project) -> int:
    from noria.registry import get_version

    return int(get_version(project, f"{project.config.model.name}@champion").version)


def test_airflows_refusals_are_clear_and_recorded(airflow: Airflow, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = {"NORIA_AIRFLOW_USERNAME": "noria", "NORIA_AIRFLOW_PASSWORD": "wrong"}
    with pytest.raises(ExternalToolError) as caught:
        trigger_training_dag(airflow.url, "games_training", WEEKS, environ=creds)
    assert caught.value.message.startswith(
        f"Airflow at {airflow.url} rejected the credentials of user 'noria' (from NORIA_AIRFLOW_USERNAME and "
        "NORIA_AIRFLOW_PASSWORD): Invalid credentials"
    )
    assert caught.value.fix is not None and "simple_auth_manager_users" in caught.value.fix

    viewer = {"NORIA_AIRFLOW_USERNAME": "watcher", "NORIA_AIRFLOW_PASSWORD": USERS["watcher"]}
    with pytest.raises(ExternalToolError) as caught:
        trigger_training_dag(airflow.url, "games_training", WEEKS, environ=viewer)
    assert caught.value.message == (
        f"Airflow at {airflow.url} does not let user 'watcher' (from NORIA_AIRFLOW_USERNAME) trigger DAG "
        "games_training (HTTP 403): Forbidden"
    )
    assert caught.value.fix is not None and "role op or admin" in caught.value.fix

    creds["NORIA_AIRFLOW_PASSWORD"] = USERS["noria"]
    with pytest.raises(NotFoundError) as missing:
        trigger_training_dag(airflow.url, "games_nightly", WEEKS, environ=creds)
    assert missing.value.message.startswith(
        f"DAG games_nightly not found at Airflow {airflow.url} (monitoring.policy.airflow_dag_id): "
    )
    assert missing.value.fix is not None and "noria --profile cluster airflow render training" in missing.value.fix

    now = datetime(2026, 12, 7, 4, 30, 5, 123456, tzinfo=UTC)
    first = trigger_training_dag(airflow.url, "games_training", WEEKS, environ=creds, now=now)
    assert first.logical_date == "2026-12-07T04:30:05.123456Z"
    with pytest.raises(ExternalToolError) as twice:  # a new run id, but the same logical date
        trigger_training_dag(airflow.url, "games_training", WEEKS, environ=creds, now=now)
    assert "(HTTP 409): Unique constraint violation" in twice.value.message
    assert "logical date 2026-12-07T04:30:05.123456Z" in twice.value.message

    # through the policy: the refusal is recorded with the decision before the command fails
    project = airflow.project
    policy = project.config.monitoring.policy
    before = policy.model_dump()
    monkeypatch.setenv("NORIA_AIRFLOW_USERNAME", "watcher")
    monkeypatch.setenv("NORIA_AIRFLOW_PASSWORD", USERS["watcher"])
    _performance(project, "2024-W13", _champion_version(project), "log_loss", 1.0)
    try:
        policy.airflow_url = airflow.url
        policy.retrain_via = "airflow"
        with pytest.raises(ExternalToolError, match="does not let user 'watcher'"):
            run_policy(project)
    finally:
        for key, value in before.items():  # retrain_via first: pipeline needs no airflow_url
            setattr(policy, key, value)
    refused = MonitoringStore.of(project).decisions()[-1]
    assert (refused["acted"], refused["started"], refused["action"]) == (False, None, "retrain")
    assert "does not let user 'watcher'" in refused["error"] and "role op or admin" in refused["error"]
