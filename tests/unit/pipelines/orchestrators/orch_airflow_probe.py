"""Run by the Airflow tests in a fresh process (AIRFLOW_HOME set by the test): report on a DAG folder.

    python orch_airflow_probe.py parse OUT.json DAG_FOLDER...      # DagBag: import errors, tasks, edges, pods
    python orch_airflow_probe.py test OUT.json DAG_FOLDER DAG_ID CONF  # a fresh SQLite DB, then dag.test(run_conf=CONF)
    python orch_airflow_probe.py tests OUT.json DAG_FOLDER DAG_ID CONF [DAG_ID CONF ...]  # several, in order
    python orch_airflow_probe.py hook OUT.json DAG_FOLDER CONF...  # each task's pre_execute hook, per run conf

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


def run_test(folder: str, dag_id: str, conf: dict[str, Any], *, init_db: bool = True) -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    started = time.perf_counter()
    if init_db:
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


def hook(folder: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Each task's environment after its ``pre_execute`` hook ran for a DAG run with ``conf`` (the
    hook runs after the templates are rendered and before ``execute``, as Airflow's task runner does)."""
    from types import SimpleNamespace

    from airflow.dag_processing.dagbag import DagBag
    from kubernetes.client import ApiClient

    bag = DagBag(dag_folder=folder)
    report: dict[str, Any] = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        tasks: dict[str, Any] = {}
        for task in dag.tasks:
            context = {
                "run_id": SAMPLE_RUN_ID,
                "params": {k: dag.params[k] for k in dag.params},
                "dag_run": SimpleNamespace(conf=conf),
                "task": task,
            }
            task.render_template_fields(context)
            entry: dict[str, Any] = {"hook": task._pre_execute_hook is not None}
            try:
                if task._pre_execute_hook is not None:
                    task._pre_execute_hook(context)
            except ValueError as err:
                entry["error"] = str(err)
            if type(task).__name__ == "BashOperator":
                entry |= {"env": task.env, "append_env": task.append_env}
            else:
                (container,) = ApiClient().sanitize_for_serialization(task.build_pod_request_obj())["spec"][
                    "containers"
                ]
                entry["env"] = container.get("env") or []
            tasks[task.task_id] = entry
        report["dags"][dag_id] = tasks
    return report


if __name__ == "__main__":
    command, out, *rest = sys.argv[1:]
    if command == "parse":
        result: dict[str, Any] = {folder: parse(folder) for folder in rest}
    elif command == "hook":  # a fresh DagBag per conf: a hook changes its task
        result = {"runs": [hook(rest[0], json.loads(conf)) for conf in rest[1:]]}
    elif command == "tests":  # one metadata DB, the DAGs run one after another
        pairs = list(zip(rest[1::2], rest[2::2], strict=True))
        result = {"runs": [run_test(rest[0], d, json.loads(c), init_db=i == 0) for i, (d, c) in enumerate(pairs)]}
    else:
        result = run_test(rest[0], rest[1], json.loads(rest[2]))
    Path(out).write_text(json.dumps(result, default=str), encoding="utf-8")
