"""Kubeflow Pipelines v2 YAML compiled from the step graph and loaded back with kfp's own loader.

kfp compiles offline; no Kubeflow installation runs here (and ``kfp.local`` cannot run
container components), so the test checks the compiled spec: one container component per
step running the single-step command, the graph's edges, the run id and the configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orch_testproject as tp
import pytest

from noria.config import load_project
from noria.errors import ConfigError
from noria.pipelines.orchestrators import OrchestratorsConfig, SecretEnv, StepResources, compile_kfp

IMAGE = "registry.example/acme/noria-pipeline:1f2e3d4"


def load_back(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline spec and the Kubernetes platform spec, as kfp's loader reads them."""
    from google.protobuf.json_format import MessageToDict
    from kfp import components

    component = components.load_component_from_file(str(path))
    platform = MessageToDict(component.platform_spec)["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return MessageToDict(component.pipeline_spec), platform


@pytest.fixture
def compiled(tmp_path: Path) -> Path:
    project = load_project(tp.make_project(tmp_path / "proj"), profile="cluster", environ={})
    config = OrchestratorsConfig(
        mode="local",  # ignored: Kubeflow always runs the image
        image=IMAGE,
        image_pull_policy="Always",
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        step_resources={"report": StepResources(limits={"memory": "6Gi"})},
        env={"MLFLOW_TRACKING_URI": "http://mlflow:5000", "NORIA_PIPELINES__STORE": "s3://noria/artifacts"},
        secrets=[SecretEnv(env="AWS_ACCESS_KEY_ID", secret="noria-secrets", key="s3-access-key-id")],
        retries=3,
        retry_delay_seconds=60,
    )
    return compile_kfp(project, tp.REF, tmp_path / "out", params={"count": 6}, config=config)


def test_one_container_component_per_step_with_the_graphs_edges(compiled: Path) -> None:
    assert compiled.name == "orchtest_diamond.kfp.yaml" and compiled.parent.name == "out"
    spec, _ = load_back(compiled)
    assert spec["pipelineInfo"]["name"] == "orchtest-diamond"
    tasks = spec["root"]["dag"]["tasks"]
    by_step = {task["taskInfo"]["name"]: task for task in tasks.values()}
    assert sorted(by_step) == sorted(tp.STEPS)
    name_of = {key: task["taskInfo"]["name"] for key, task in tasks.items()}
    edges = {(name_of[up], step) for step, task in by_step.items() for up in task.get("dependentTasks", [])}
    assert edges == tp.EDGES
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["count"] == {"parameterType": "NUMBER_INTEGER", "defaultValue": 6.0, "isOptional": True}
    assert inputs["title"]["defaultValue"] == 'it\'s a "report" & more'

    for step, task in by_step.items():
        params = task["inputs"]["parameters"]
        assert params["run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
        assert params["count"] == {"componentInputParameter": "count"}
        assert task["retryPolicy"]["maxRetryCount"] == 3 and task["retryPolicy"]["backoffDuration"] == "60s"
        assert not task["cachingOptions"].get("enableCache", False)  # Noria caches steps itself
        executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = spec["deploymentSpec"]["executors"][executor]["container"]
        # The pod's copy of the project gets the newest snapshot first; the step's arguments reach
        # noria as "$@" (placeholders filled by KFP are never re-parsed by the shell).
        assert container["image"] == IMAGE and container["command"] == [
            "/bin/sh", "-c",
            "cp -R /app/project/. /work/project && cd /work/project && "
            'noria --project /work/project --profile cluster data pull && exec noria "$@"',
            "noria",
        ]  # fmt: skip
        assert container["args"] == [
            "--project", "/work/project", "--profile", "cluster", "pipeline", "run", tp.REF, "--step", step,
            "--run-id", "{{$.inputs.parameters['run_id']}}",
            "--param", "count={{$.inputs.parameters['count']}}",
            "--param", "title={{$.inputs.parameters['title']}}",
        ]  # fmt: skip
        assert container["env"] == [
            {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
            {"name": "NORIA_PIPELINES__STORE", "value": "s3://noria/artifacts"},
        ]
        memory = "6Gi" if step == "report" else "2Gi"
        resources = container["resources"]
        assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("250m", "512Mi")
        assert (resources["resourceCpuLimit"], resources["resourceMemoryLimit"]) == ("1", memory)


def test_kubernetes_platform_spec_carries_secrets_user_and_labels(compiled: Path) -> None:
    spec, platform = load_back(compiled)
    assert sorted(platform) == sorted(spec["deploymentSpec"]["executors"])
    for executor in platform.values():
        (secret,) = executor["secretAsEnv"]
        assert secret["secretName"] == "noria-secrets"
        assert secret["keyToEnv"] == [{"secretKey": "s3-access-key-id", "envVar": "AWS_ACCESS_KEY_ID"}]
        assert executor["imagePullPolicy"] == "Always"
        assert executor["securityContext"]["runAsNonRoot"] is True
        assert executor["podMetadata"]["labels"]["app.kubernetes.io/name"] == "noria-pipeline"
        assert executor["emptyDirMounts"] == [{"volumeName": "work", "mountPath": "/work", "sizeLimit": "8Gi"}]


def test_compile_to_a_named_file_with_the_projects_s3_store(tmp_path: Path) -> None:
    root = tp.make_project(tmp_path / "proj")
    project = load_project(root, environ={})
    # Pods share only the artifact store: a local folder is refused, naming the fix.
    with pytest.raises(ConfigError, match="artifact store is the local artifacts folder") as err:
        compile_kfp(project, tp.REF, tmp_path / "pipeline.yaml")
    assert "pipelines.store" in (err.value.fix or "") and not (tmp_path / "pipeline.yaml").exists()
    project = load_project(root, environ={"NORIA_PIPELINES__STORE": "s3://bucket/noria"})
    path = compile_kfp(project, tp.REF, tmp_path / "pipeline.yaml")
    assert path == tmp_path / "pipeline.yaml" and not list(tmp_path.glob(".*tmp*"))
    spec, _ = load_back(path)
    assert spec["root"]["inputDefinitions"]["parameters"]["count"]["defaultValue"] == 4.0
    executor = next(iter(spec["deploymentSpec"]["executors"].values()))["container"]
    assert executor["image"] == "noria-pipeline:latest" and executor["args"][:4] == [
        "--project", "/work/project", "--profile", "local",
    ]  # fmt: skip


def test_without_pull_data_each_step_runs_noria_in_the_images_project(tmp_path: Path) -> None:
    project = load_project(tp.make_project(tmp_path / "proj"), environ={"NORIA_PIPELINES__STORE": "s3://b/n"})
    path = compile_kfp(project, tp.REF, tmp_path / "p.yaml", config=OrchestratorsConfig(pull_data=False))
    spec, platform = load_back(path)
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["command"] == ["noria"]
        assert executor["container"]["args"][:2] == ["--profile", "local"]
    assert not any("emptyDirMounts" in executor for executor in platform.values())
