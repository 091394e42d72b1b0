"""The loop's Airflow DAGs do the work of deploy/k8s's CronJobs, end to end under ``dag.test()``.

A flights project made by ``noria init`` (its directory source: the first week of January and
of February 2013) is rendered with ``noria airflow render training`` in local mode: BashOperators
running this venv's ``noria``, with the project's settings for a small run in
``orchestrators.env``. Each DAG runs under Airflow's own ``dag.test()`` (a fresh SQLite metadata
DB in a separate process, tests/unit/pipelines/orchestrators/orch_airflow_probe.py), in the order
a deployment runs them:

    ingest (triggered with the months as conf) -> features (apply, materialize --until now)
    -> training (the pipeline's DAG) -> the service answers February's flights and its
    prediction log rolls -> monitor (drift of the newest window, feedback, the policy)

Each stage is checked through Noria's own records: the snapshot holds the months the run's conf
named, the online store's materialize record names that snapshot, the training run promoted a
champion, and the monitoring records (drift, performance, the policy's decision) exist for
February. No scheduler, worker or cluster is involved, and nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster_support import SMALL_TRAINING, small_flights_sources
from tests.faults.test_serving_faults import service
from tests.integration.test_serving_hot_swap import AUTH
from tests.integration.test_serving_online import _api_flight
from tests.unit.pipelines.orchestrators.orch_testproject import clean_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "unit" / "pipelines" / "orchestrators" / "orch_airflow_probe.py"
MONTHS = {"NORIA_DATA__DEFAULT_RANGE__FROM": "2013-01", "NORIA_DATA__DEFAULT_RANGE__TO": "2013-02"}


def run_dags(tmp: Path, dags: Path, *runs: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``dag.test()`` of each (dag_id, conf), in order, in one fresh Airflow process (its own AIRFLOW_HOME)."""
    out = tmp / "probe.json"
    env = clean_env(
        AIRFLOW_HOME=str(tmp / "airflow-home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
    )
    args = [a for dag_id, conf in runs for a in (dag_id, json.dumps(conf))]
    done = subprocess.run(
        [sys.executable, str(PROBE), "tests", str(out), str(dags), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result: list[dict[str, Any]] = json.loads(out.read_text())["runs"]
    for (dag_id, _), run in zip(runs, result, strict=True):
        assert run["state"] == "success", (dag_id, run, done.stdout[-4000:], done.stderr[-4000:])
    return result


def test_the_loop_dags_ingest_load_features_train_and_monitor(tmp_path: Path) -> None:
    from noria.config import load_project
    from noria.data.snapshots import list_snapshots
    from noria.features.materialized import STATE_FILE_SUFFIX
    from noria.features.training_set import build_training_set
    from noria.monitoring.store import MonitoringStore
    from noria.pipelines.orchestrators import OrchestratorsConfig, render_airflow
    from noria.registry import champion_state
    from noria.scaffold import init_project

    root = init_project(tmp_path / "flights")
    raw = small_flights_sources(tmp_path / "raw", 7)
    env = SMALL_TRAINING | {"NORIA_DATA__SOURCE__KIND": "directory", "NORIA_DATA__SOURCE__PATH": str(raw)}
    project = load_project(root, environ={})
    files = render_airflow(project, "training", tmp_path / "dags", config=OrchestratorsConfig(retries=0, env=env))
    assert [f.name for f in files] == [f"flights_{n}.py" for n in ("training", "ingest", "features", "monitor")]

    ingest, features, training = run_dags(
        tmp_path / "first", tmp_path / "dags", ("flights_ingest", MONTHS), ("flights_features", {}),
        ("flights_training", {}),
    )  # fmt: skip
    assert ingest["tasks"] == {"ingest": "success"}
    assert features["tasks"] == {"apply": "success", "materialize": "success"}
    assert set(training["tasks"].values()) == {"success"}

    project = load_project(root, environ={})
    [snapshot] = list_snapshots(project)
    assert snapshot.months == ["2013-01", "2013-02"]  # the months the ingest run's conf named
    [state_file] = root.rglob(f"*{STATE_FILE_SUFFIX}")
    assert json.loads(state_file.read_text())["snapshot_id"] == snapshot.id  # materialized from it
    model = project.config.model.name
    assert champion_state(project, model)["champion"] == 1  # the training DAG's run promoted the first version

    # The service answers a few hundred of February's flights; SIGTERM flushes its prediction log.
    frame = build_training_set(project, "2013-02", "2013-02").frame.head(300)
    settings = {"poll_seconds": 0, "prediction_log": {"roll_seconds": 3600}}
    with (
        service(project, settings, tmp_path / "server.log") as (base, _),
        httpx.Client(base_url=base, headers=AUTH, timeout=60) as client,
    ):
        for start in range(0, len(frame), 50):
            batch = [_api_flight(row) for _, row in frame.iloc[start : start + 50].iterrows()]
            assert client.post("/predict", json={"flights": batch}).status_code == 200

    [monitor] = run_dags(tmp_path / "second", tmp_path / "dags", ("flights_monitor", {}))
    assert monitor["tasks"] == {"drift": "success", "feedback": "success", "run": "success"}
    store = MonitoringStore.of(load_project(root, environ={}))
    drift = store.latest("drift")
    assert drift is not None and drift["window"] == "2013-02" and drift["model_version"] == 1
    performance = store.latest("performance")
    assert performance is not None and performance["window"] == "2013-02"
    assert store.decisions(), "monitor run recorded no decision"
