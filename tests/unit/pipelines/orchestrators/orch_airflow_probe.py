"""Run by the Airflow tests in a fresh process (AIRFLOW_HOME set by the test): report on a DAG folder.

    python orch_airflow_probe.py parse OUT.json DAG_FOLDER...      # DagBag: import errors, tasks, edges, pods
    python orch_airflow_probe.py test OUT.json DAG_FOLDER DAG_ID CONF  # a fresh SQLite DB, then dag.test(run_conf=CONF)

``parse`` builds, for every KubernetesPodOperator, the pod it would create
(``build_pod_request_obj()``) after rendering its templates for a sample run: nothing is sent
to a cluster (the kubeconfig it names is a dummy; no cluster runs here).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

SAMPLE_RUN_ID = "scheduled__2024-07-01T03:00:00+00:00"


def parse(folder: str) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import ApiClient

    started = time.perf_counter()
    bag = DagBag(dag_folder=folder)
    report: dict[str, Any] = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        info: dict[str, Any] = {
            "schedule": str(dag.schedule) if dag.schedule is not None else None,
            "params": {k: dag.params[k] for k in dag.params},
            "tags": sorted(dag.tags),
            "max_active_runs": dag.max_active_runs,
            "tasks": {},
        }
        for task in dag.tasks:
            entry: dict[str, Any] = {
                "operator": type(task).__name__,
                "upstream": sorted(task.upstream_task_ids),
                "retries": task.retries,
            }
            if type(task).__name__ == "BashOperator":
                entry["bash_command"] = task.bash_command
                entry["env"] = task.env
            else:
                context = {"run_id": SAMPLE_RUN_ID, "params": {k: dag.params[k] for k in dag.params}}
                task.render_template_fields(context)
                pod = task.build_pod_request_obj()
                entry["pod"] = ApiClient().sanitize_for_serialization(pod)
                entry["in_cluster"] = task.in_cluster
                entry["config_file"] = task.config_file
            info["tasks"][task.task_id] = entry
        report["dags"][dag_id] = info
    report["seconds"] = time.perf_counter() - started
    return report


def run_test(folder: str, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    started = time.perf_counter()
    db.initdb()  # a fresh SQLite metadata DB in $AIRFLOW_HOME (what `airflow db migrate` does first)
    db_seconds = time.perf_counter() - started
    dag = DagBag(dag_folder=folder).dags[dag_id]
    run = dag.test(run_conf=conf)
    return {
        "state": str(run.state),
        "run_id": run.run_id,
        "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()},
        "db_seconds": db_seconds,
        "seconds": time.perf_counter() - started,
    }


if __name__ == "__main__":
    command, out, *rest = sys.argv[1:]
    if command == "parse":
        result: dict[str, Any] = {folder: parse(folder) for folder in rest}
    else:
        result = run_test(rest[0], rest[1], json.loads(rest[2]))
    Path(out).write_text(json.dumps(result, default=str), encoding="utf-8")
