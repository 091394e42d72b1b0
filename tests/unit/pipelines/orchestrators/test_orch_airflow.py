"""Airflow DAGs rendered from the step graph: parsed by Airflow's DagBag, pods built, the local DAG run.

Airflow runs in fresh processes (orch_airflow_probe.py) with AIRFLOW_HOME in the test's tmp
folder, so its configuration never leaks into this process. No Kubernetes cluster runs here:
the KubernetesPodOperator tasks are checked by building each pod request with
``build_pod_request_obj()`` against a dummy kubeconfig (a server nobody listens on); no pod
is ever started.
"""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import orch_testproject as tp
import pytest

from noria.config import load_project
from noria.errors import ConfigError
from noria.pipelines.orchestrators import (
    MonitorSchedule,
    OrchestratorsConfig,
    SecretEnv,
    StepResources,
    render_airflow,
)

PROBE = Path(__file__).with_name("orch_airflow_probe.py")
PYTHON = tp.REPO / ".venv" / "bin" / "python"
IMAGE = "registry.example/acme/noria-pipeline:1f2e3d4"
DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: not-a-token}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def probe(tmp: Path, *args: str) -> dict[str, Any]:
    out = tmp / "probe.json"
    env = tp.clean_env(AIRFLOW_HOME=str(tmp / "airflow-home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    if args[0] == "test":
        env["AIRFLOW__CORE__DAGS_FOLDER"] = args[1]  # dag.test() syncs the DAG from the dags folder
    python = str(PYTHON) if PYTHON.exists() else sys.executable
    done = subprocess.run(
        [python, str(PROBE), args[0], str(out), *args[1:]], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def bash_commands(source: str) -> dict[str, list[str]]:
    """task_id -> argv of each BashOperator in a rendered DAG file, read without importing Airflow."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "BashOperator":
            kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg in ("task_id", "bash_command")}
            found[kw["task_id"]] = shlex.split(kw["bash_command"])
    return found


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return tp.make_project(tmp_path / "proj")


def kube_config(tmp_path: Path) -> OrchestratorsConfig:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(DUMMY_KUBECONFIG)
    return OrchestratorsConfig(
        mode="kubernetes",
        image=IMAGE,
        image_pull_policy="Always",
        namespace="ml-prod",
        service_account="noria-runner",
        kubeconfig=str(kubeconfig),
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        step_resources={"report": StepResources(limits={"memory": "6Gi", "ephemeral-storage": "5Gi"})},
        env={"MLFLOW_TRACKING_URI": "http://mlflow:5000", "NORIA_PIPELINES__STORE": "s3://noria/artifacts"},
        secrets=[
            SecretEnv(env="AWS_ACCESS_KEY_ID", secret="noria-secrets", key="s3-access-key-id"),
            SecretEnv(env="AWS_SECRET_ACCESS_KEY", secret="noria-secrets", key="s3-secret-access-key"),
        ],
        schedule="0 3 * * 1",
        retries=3,
        monitor=MonitorSchedule(schedule="@hourly", tasks={"run": ["monitor", "run", "--json"]}),
    )


def test_local_dag_runs_the_single_step_contract(project_dir: Path, tmp_path: Path) -> None:
    project = load_project(project_dir, environ={})
    files = render_airflow(project, tp.REF, tmp_path / "dags", config=OrchestratorsConfig(executable="/opt/bin/noria"))
    assert [f.name for f in files] == [f"orchtest_{n}.py" for n in ("diamond", "ingest", "features", "monitor")]
    commands = bash_commands(files[0].read_text())
    assert list(commands) == tp.STEPS
    for step, argv in commands.items():
        assert argv == [
            "/opt/bin/noria", "--project", str(project_dir), "--profile", "local",
            "pipeline", "run", tp.REF, "--step", step, "--run-id", "{{ run_id }}",
            "--param", 'count={{ params["count"] | tojson }}', "--param", 'title={{ params["title"] | tojson }}',
        ]  # fmt: skip
    source = files[0].read_text()
    for up, down in tp.EDGES:
        assert f"tasks[{up!r}] >> tasks[{down!r}]" in source
    assert source.count(" >> ") == len(tp.EDGES)
    # The loop's DAGs: the commands of deploy/k8s's CronJobs, one task each, in a chain.
    head = ["/opt/bin/noria", "--project", str(project_dir), "--profile", "local"]
    loops = {f.stem.removeprefix("orchtest_"): f.read_text() for f in files[1:]}
    assert {name: bash_commands(text) for name, text in loops.items()} == {
        "ingest": {"ingest": [*head, "data", "ingest"]},
        "features": {
            "apply": [*head, "features", "apply"],
            "materialize": [*head, "features", "materialize", "--until", "now"],
        },
        "monitor": {
            "drift": [*head, "monitor", "drift", "--window", "latest"],
            "feedback": [*head, "monitor", "feedback"],
            "run": [*head, "monitor", "run"],
        },
    }
    assert "    tasks['apply'] >> tasks['materialize']\n" in loops["features"]
    assert "    tasks['drift'] >> tasks['feedback'] >> tasks['run']\n" in loops["monitor"]
    assert "schedule=None," in loops["ingest"] and "schedule='17 * * * *'," in loops["features"]


def test_render_refuses_unknown_parameters_and_skips_disabled_loop_dags(project_dir: Path, tmp_path: Path) -> None:
    project = load_project(project_dir, environ={})
    with pytest.raises(ConfigError, match="no parameter 'rounds'"):
        render_airflow(project, tp.REF, tmp_path / "dags", params={"rounds": 3})
    off = {"enabled": False}
    config = OrchestratorsConfig.model_validate({"monitor": off, "ingest": off, "features": off})
    files = render_airflow(project, tp.REF, tmp_path / "dags", params={"count": 7}, config=config)
    assert [f.name for f in files] == ["orchtest_diamond.py"]
    assert "params={'count': 7," in files[0].read_text()


def test_dagbag_parses_both_modes_and_pods_carry_the_config(project_dir: Path, tmp_path: Path) -> None:
    """DagBag imports every rendered file; each pod is built (build_pod_request_obj), never started.

    No cluster runs here: the kubeconfig points at a port nobody listens on, and building a
    pod request does not contact the API server.
    """
    local_dir, kube_dir = tmp_path / "dags-local", tmp_path / "dags-kube"
    render_airflow(load_project(project_dir, environ={}), tp.REF, local_dir, config=OrchestratorsConfig(retries=1))
    cluster = load_project(project_dir, profile="cluster", environ={})
    render_airflow(cluster, tp.REF, kube_dir, params={"count": 6}, config=kube_config(tmp_path))

    report = probe(tmp_path, "parse", str(local_dir), str(kube_dir))
    local, kube = report[str(local_dir)], report[str(kube_dir)]
    assert local["import_errors"] == {} and kube["import_errors"] == {}
    names = ["orchtest_diamond", "orchtest_features", "orchtest_ingest", "orchtest_monitor"]
    assert sorted(local["dags"]) == sorted(kube["dags"]) == names
    assert [local["dags"][f"orchtest_{n}"]["schedule"] for n in ("ingest", "features", "monitor")] == [
        None,
        "17 * * * *",
        "@daily",
    ]
    assert local["dags"]["orchtest_monitor"]["tasks"]["run"]["upstream"] == ["feedback"]

    dag = local["dags"]["orchtest_diamond"]
    assert dag["schedule"] is None and dag["max_active_runs"] == 1
    assert dag["params"] == {"count": 4, "title": 'it\'s a "report" & more'}
    assert {t["operator"] for t in dag["tasks"].values()} == {"BashOperator"}
    assert {(up, down) for down, t in dag["tasks"].items() for up in t["upstream"]} == tp.EDGES
    assert {t["retries"] for t in dag["tasks"].values()} == {1}

    dag = kube["dags"]["orchtest_diamond"]
    assert dag["schedule"] == "0 3 * * 1" and dag["params"]["count"] == 6
    assert {(up, down) for down, t in dag["tasks"].items() for up in t["upstream"]} == tp.EDGES
    for step, task in dag["tasks"].items():
        assert task["operator"] == "KubernetesPodOperator" and task["retries"] == 3
        assert task["in_cluster"] is False and task["config_file"] == str(tmp_path / "kubeconfig")
        pod = task["pod"]
        assert pod["metadata"]["namespace"] == "ml-prod"
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "noria-pipeline"
        spec = pod["spec"]
        assert spec["serviceAccountName"] == "noria-runner" and spec["restartPolicy"] == "Never"
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["image"] == IMAGE and container["imagePullPolicy"] == "Always"
        assert container["command"] == ["noria"]
        # The templates rendered for a sample run: the run id and every parameter as JSON, on the
        # pod's writable copy of the project, which its init container filled with the newest snapshot.
        assert container["args"] == [
            "--project", "/work/project", "--profile", "cluster", "pipeline", "run", tp.REF, "--step", step,
            "--run-id", "scheduled__2024-07-01T03:00:00+00:00",
            "--param", "count=6", "--param", 'title="it\\u0027s a \\"report\\" \\u0026 more"',
        ]  # fmt: skip
        env = {e["name"]: e for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
        assert env["NORIA_PIPELINES__STORE"]["value"] == "s3://noria/artifacts"
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "noria-secrets",
            "key": "s3-secret-access-key",
        }
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/work", "/tmp"}
        expected_limits = {"cpu": "1", "memory": "2Gi"}
        if step == "report":
            expected_limits = {"cpu": "1", "memory": "6Gi", "ephemeral-storage": "5Gi"}
        assert container["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": expected_limits}
        (init,) = spec["initContainers"]
        assert init["command"] == ["/bin/sh", "-c"] and init["image"] == IMAGE
        assert init["args"] == [
            "cp -R /app/project/. /work/project && cd /work/project && "
            "noria --project /work/project --profile cluster data pull"
        ]
        assert init["resources"] == container["resources"]
        assert init["securityContext"]["readOnlyRootFilesystem"] is True
        assert {m["mountPath"] for m in init["volumeMounts"]} == {"/work", "/tmp"}
        init_env = {e["name"]: e for e in init["env"]}
        assert init_env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
        assert init_env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
            "name": "noria-secrets",
            "key": "s3-secret-access-key",
        }

    monitor = kube["dags"]["orchtest_monitor"]
    assert monitor["schedule"] == "@hourly" and list(monitor["tasks"]) == ["run"]
    (container,) = monitor["tasks"]["run"]["pod"]["spec"]["containers"]
    assert container["args"] == ["--project", "/work/project", "--profile", "cluster", "monitor", "run", "--json"]
    for name, dag in kube["dags"].items():
        for task_id, task in dag["tasks"].items():
            assert len(task["pod"]["spec"]["initContainers"]) == 1, (name, task_id)  # every pod pulls the data


def test_pods_without_pull_data_run_in_the_images_project(project_dir: Path, tmp_path: Path) -> None:
    """orchestrators.pull_data: false renders the pods as before the loop DAGs: no init container,
    the image's project with emptyDirs on .noria and data (a project whose image holds its data)."""
    cluster = load_project(project_dir, profile="cluster", environ={})
    config = kube_config(tmp_path).model_copy(update={"pull_data": False})
    files = render_airflow(cluster, tp.REF, tmp_path / "dags", config=config)
    report = probe(tmp_path, "parse", str(tmp_path / "dags"))[str(tmp_path / "dags")]
    assert report["import_errors"] == {} and len(files) == 4
    spec = report["dags"]["orchtest_ingest"]["tasks"]["ingest"]["pod"]["spec"]
    assert "initContainers" not in spec or not spec["initContainers"]
    (container,) = spec["containers"]
    assert container["args"] == ["--profile", "cluster", "data", "ingest"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/app/project/.noria", "/app/project/data", "/tmp"}


def test_loop_dag_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"monitor.command was replaced by monitor.tasks .* tasks: \{run: \['monitor'"):
        OrchestratorsConfig.model_validate({"monitor": {"command": ["monitor", "run"]}})
    with pytest.raises(ValueError, match="at least one task"):
        OrchestratorsConfig.model_validate({"features": {"tasks": {}}})
    with pytest.raises(ValueError, match="task 'apply' has no arguments"):
        OrchestratorsConfig.model_validate({"features": {"tasks": {"apply": []}}})
    with pytest.raises(ValueError, match="task name 'two words'"):
        OrchestratorsConfig.model_validate({"ingest": {"tasks": {"two words": ["data", "ingest"]}}})
    with pytest.raises(ValueError, match="neither a preset"):
        OrchestratorsConfig.model_validate({"ingest": {"schedule": "hourly"}})


@pytest.mark.slow
def test_local_dag_runs_end_to_end_with_dag_test(project_dir: Path, tmp_path: Path) -> None:
    """dag.test() on SQLite runs every BashOperator, i.e. `noria pipeline run ... --step S` per task."""
    project = load_project(project_dir, environ={})
    render_airflow(project, tp.REF, tmp_path / "dags", config=OrchestratorsConfig(retries=0))
    result = probe(tmp_path, "test", str(tmp_path / "dags"), "orchtest_diamond", json.dumps({"count": 3}))
    assert result["state"] == "success", result
    assert result["tasks"] == dict.fromkeys(sorted(tp.STEPS), "success")
    # The tasks left complete records for the DAG run's id: a local rerun of that run only resumes.
    statuses, report = tp.report_of_run(project_dir, result["run_id"], count=3)
    assert statuses == dict.fromkeys(tp.STEPS, "resumed")
    assert report == tp.expected_report(count=3)


def test_a_runs_noria_training_conf_reaches_every_task_of_the_pipeline_dag(project_dir: Path, tmp_path: Path) -> None:
    """The conf of a retrain triggered through Airflow's REST API (monitoring.policy.retrain_via: airflow)
    becomes NORIA_TRAINING__* variables of every task, in both modes; the ingest DAG takes NORIA_DATA__*
    entries (the months to ingest) the same way; the features and monitor DAGs take none.

    Each task's pre_execute hook is called as Airflow's task runner calls it (templates rendered
    first) with a stand-in DAG run holding the conf; the pod is then built, never started.
    """
    local_dir, kube_dir = tmp_path / "dags-local", tmp_path / "dags-kube"
    env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    render_airflow(load_project(project_dir, environ={}), tp.REF, local_dir, config=OrchestratorsConfig(env=env))
    cluster = load_project(project_dir, profile="cluster", environ={})
    render_airflow(cluster, tp.REF, kube_dir, config=kube_config(tmp_path))
    months = {"NORIA_DATA__DEFAULT_RANGE__FROM": "2024-07", "NORIA_DATA__DEFAULT_RANGE__TO": "2024-07"}
    conf = {"NORIA_TRAINING__TRAIN__FROM": "2024-W11", "NORIA_TRAINING__TRIALS": 3, "count": 5, **months}
    wanted = {"NORIA_TRAINING__TRAIN__FROM": "2024-W11", "NORIA_TRAINING__TRIALS": "3"}

    bad, plain = {"NORIA_TRAINING__trials": 3}, {"count": 5}
    local, refused, unchanged = probe(tmp_path, "hook", str(local_dir), *map(json.dumps, (conf, bad, plain)))["runs"]
    assert local["import_errors"] == {}
    for step in tp.STEPS:
        task = local["dags"]["orchtest_diamond"][step]
        assert task == {"hook": True, "env": env | wanted, "append_env": True}, step
    for task in ("drift", "feedback", "run"):
        assert local["dags"]["orchtest_monitor"][task] == {"hook": False, "env": env, "append_env": True}
    assert local["dags"]["orchtest_features"]["apply"] == {"hook": False, "env": env, "append_env": True}
    assert local["dags"]["orchtest_ingest"]["ingest"] == {"hook": True, "env": env | months, "append_env": True}

    [kube] = probe(tmp_path, "hook", str(kube_dir), json.dumps(conf))["runs"]
    assert kube["import_errors"] == {}
    for step in tp.STEPS:
        task = kube["dags"]["orchtest_diamond"][step]
        names = [e["name"] for e in task["env"]]
        assert len(names) == len(set(names)), names  # ENV is shared by the tasks: never grown in place
        values = {e["name"]: e.get("value") for e in task["env"]}
        assert {k: values[k] for k in wanted} == wanted and values["NORIA_PIPELINES__STORE"] == "s3://noria/artifacts"
        assert "AWS_SECRET_ACCESS_KEY" in names
    monitor = {e["name"] for e in kube["dags"]["orchtest_monitor"]["run"]["env"]}
    assert not monitor & (set(wanted) | set(months))
    ingest = {e["name"]: e.get("value") for e in kube["dags"]["orchtest_ingest"]["ingest"]["env"]}
    assert {k: ingest.get(k) for k in months} == months and not set(ingest) & set(wanted)

    # a bad entry fails the task before it runs, saying what is expected; no entry changes nothing
    error = refused["dags"]["orchtest_diamond"]["squares"]["error"]
    assert error.startswith("dag_run.conf['NORIA_TRAINING__trials'] = 3: a NORIA_TRAINING__ entry needs a name of")
    assert unchanged["dags"]["orchtest_diamond"]["squares"] == {"hook": True, "env": env, "append_env": True}
