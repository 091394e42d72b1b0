"""``monitoring.policy.retrain_via: airflow``: the request, the settings and the errors raised before
Airflow answers. Airflow's own answers (401, 403, 404, 409, a created run) are checked against a real
Airflow API server in tests/integration/test_airflow_retrain.py.

The body is validated by Airflow's own request model (``TriggerDAGRunPostBody``, strict: an unknown
field fails) and run id pattern, in a fresh process with AIRFLOW_HOME in the test's folder.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from noria.config import load_project
from noria.errors import ConfigError, ExternalToolError
from noria.monitoring.airflow_run import (
    StartedDagRun,
    dag_run_body,
    dag_run_url,
    training_dag_id,
    trigger_training_dag,
)
from noria.monitoring.config import RetrainPolicy

ROOT = Path(__file__).resolve().parents[3]
CONF = {"NORIA_TRAINING__TRAIN__FROM": "2013-09", "NORIA_TRAINING__TRAIN__TO": "2013-11"}
CREDS = {"NORIA_AIRFLOW_USERNAME": "noria", "NORIA_AIRFLOW_PASSWORD": "secret"}
CHECK_BODY = """
import json, re, sys
from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
from airflow.configuration import conf
body = json.loads(sys.argv[1])
parsed = TriggerDAGRunPostBody.model_validate(body)
pattern = conf.get("scheduler", "allowed_run_id_pattern")
print(json.dumps({"logical_date": parsed.logical_date.isoformat(), "conf": parsed.conf,
                  "run_id_ok": re.match(pattern, parsed.dag_run_id) is not None, "note": parsed.note}))
"""


def test_the_body_is_airflows_trigger_body(tmp_path: Path) -> None:
    now = datetime(2026, 12, 7, 5, 30, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
    body = dag_run_body(CONF, now)
    assert set(body) == {"dag_run_id", "logical_date", "conf", "note"}
    assert re.fullmatch(r"noria-retrain-20261207T043005Z-[0-9a-f]{4}", body["dag_run_id"])
    assert body["logical_date"] == "2026-12-07T04:30:05.123456Z"  # UTC, to the microsecond
    assert body["conf"] == CONF and body["conf"] is not CONF
    assert dag_run_body(CONF, now)["dag_run_id"] != body["dag_run_id"]
    assert dag_run_body({}, now, "given")["dag_run_id"] == "given"
    env = {"AIRFLOW_HOME": str(tmp_path / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK_BODY, json.dumps(body)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed == {
        "logical_date": "2026-12-07T04:30:05.123456+00:00",
        "conf": CONF,
        "run_id_ok": True,
        "note": "started by `noria monitor run`: the retraining policy decided to retrain",
    }


def test_what_the_decision_records_and_the_dag_id() -> None:
    run = StartedDagRun("flights_training", "r-1", "2026-12-07T04:30:05Z", "http://a/dags/x", "queued", "t", CONF)
    assert run.to_dict() == {
        "kind": "airflow",
        "dag_id": "flights_training",
        "dag_run_id": "r-1",
        "logical_date": "2026-12-07T04:30:05Z",
        "url": "http://a/dags/x",
        "state": "queued",
        "conf": CONF,
        "at": "t",
    }
    assert dag_run_url("http://airflow:8080/", "d", "r") == "http://airflow:8080/dags/d/runs/r"
    assert dag_run_url("https://ops.example/airflow", "d", "r") == "https://ops.example/airflow/dags/d/runs/r"
    # the default DAG id is the one `noria airflow render training` writes
    from noria.pipelines.orchestrators._plan import build_plan

    project = load_project(ROOT / "examples" / "flights", environ={})
    assert training_dag_id(project) == build_plan(project, "training").dag_id == "flights_training"


def test_the_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="retrain_via: airflow needs airflow_url"):
        RetrainPolicy.model_validate({"retrain_via": "airflow"})
    with pytest.raises(ValidationError, match="'airflow:8080' is not an http:// or https:// URL"):
        RetrainPolicy.model_validate({"retrain_via": "airflow", "airflow_url": "airflow:8080"})
    with pytest.raises(ValidationError, match="'MY-PASSWORD' is not an environment variable name"):
        RetrainPolicy.model_validate({"airflow_password_env": "MY-PASSWORD"})
    with pytest.raises(ValidationError, match="'NORIA_AF_PASSWORD' starts with NORIA_, so it would be read as"):
        RetrainPolicy.model_validate({"airflow_password_env": "NORIA_AF_PASSWORD"})
    with pytest.raises(ValidationError, match="airflow_dag_id"):
        RetrainPolicy.model_validate({"airflow_dag_id": "flights training"})
    policy = RetrainPolicy.model_validate(
        {"retrain_via": "airflow", "airflow_url": "http://airflow:8080", "airflow_password_env": "AF_PASSWORD"}
    )
    assert (policy.airflow_dag_id, policy.airflow_username_env, policy.airflow_timeout) == (
        None,
        "NORIA_AIRFLOW_USERNAME",
        30.0,
    )
    # the default credential variables are not read as noria.yaml overrides; the settings are
    environ = CREDS | {
        "NORIA_MONITORING__POLICY__RETRAIN_VIA": "airflow",
        "NORIA_MONITORING__POLICY__AIRFLOW_URL": "http://airflow-api-server:8080",
    }
    loaded = load_project(ROOT / "examples" / "flights", environ=environ).config.monitoring.policy
    assert (loaded.retrain_via, loaded.airflow_url) == ("airflow", "http://airflow-api-server:8080")


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        trigger_training_dag("http://127.0.0.1:9", "d", CONF, environ={"NORIA_AIRFLOW_USERNAME": "noria"})
    assert caught.value.message.endswith("in the environment: NORIA_AIRFLOW_PASSWORD is not set")
    assert caught.value.fix is not None and "monitoring.policy.airflow_username_env" in caught.value.fix
    with pytest.raises(ConfigError, match="AF_USER and AF_PASS are not set"):
        trigger_training_dag(
            "http://127.0.0.1:9", "d", CONF, username_env="AF_USER", password_env="AF_PASS", environ={}
        )


def test_an_unreachable_server_names_the_url_and_the_setting() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    url = f"http://127.0.0.1:{closed}"
    started = datetime.now(UTC)
    with pytest.raises(ExternalToolError) as caught:
        trigger_training_dag(url, "d", CONF, environ=CREDS, timeout=5)
    assert (datetime.now(UTC) - started).total_seconds() < 5
    assert caught.value.message.startswith(f"the Airflow API server at {url} cannot be reached (POST /auth/token): ")
    assert caught.value.fix is not None and "monitoring.policy.airflow_url" in caught.value.fix
