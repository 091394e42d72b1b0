"""The ``orchestrators:`` configuration: defaults, validation messages, per-step resources."""

from __future__ import annotations

from pathlib import Path

import orch_testproject as tp
import pytest
from pydantic import ValidationError

from noria.config import NoriaConfig, load_project
from noria.errors import ConfigError
from noria.pipelines.orchestrators import OrchestratorsConfig, build_plan, orchestrators_config


def test_defaults_run_locally_with_the_noria_beside_python(tmp_path: Path) -> None:
    project = load_project(tp.make_project(tmp_path / "proj"), environ={})
    assert orchestrators_config(project) == OrchestratorsConfig()
    plan = build_plan(project, tp.REF)
    assert plan.executable == str(tp.NORIA) and plan.project_dir == str(project.root)
    assert plan.dag_id == "orchtest_diamond" and plan.params == {"count": 4, "title": 'it\'s a "report" & more'}
    assert [t.step for t in plan.tasks] == tp.STEPS and set(plan.edges) == tp.EDGES
    assert plan.step_args("total", "R1", lambda name: "V") == [
        "--project", str(project.root), "--profile", "local", "pipeline", "run", tp.REF,
        "--step", "total", "--run-id", "R1", "--param", "count=V", "--param", "title=V",
    ]  # fmt: skip
    pods = build_plan(
        project, tp.REF, mode="kubernetes", config=OrchestratorsConfig(env={"NORIA_PIPELINES__STORE": "s3://b/p"})
    )
    assert pods.executable == "noria" and pods.project_dir is None  # the image's NORIA_PROJECT_DIR
    assert pods.global_args() == ["--profile", "local"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "daily", "neither a preset"),
        ("schedule", "0 3 * *", "five-field cron"),
        ("resources", {"limits": {"memory": "4 GB"}}, "not a Kubernetes quantity"),
        ("resources", {"requests": {"gpu": "1"}}, "unknown resource 'gpu'"),
        ("namespace", "ML_prod", "not a Kubernetes namespace"),
        ("env", {"BAD-NAME": "x"}, "not environment variable names"),
        ("secrets", [{"env": "A", "secret": "Bad_Name", "key": "k"}], "not a Kubernetes Secret name"),
        ("retries", -1, "greater than or equal to 0"),
        ("monitor", {"tasks": {"run": []}}, "has no arguments"),
        ("mode", "docker", "'local' or 'kubernetes'"),
    ],
)
def test_invalid_values_are_refused_with_the_reason(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OrchestratorsConfig.model_validate({field: value})


def test_contradictions_are_refused() -> None:
    with pytest.raises(ValidationError, match="kubeconfig is set but in_cluster is true"):
        OrchestratorsConfig(kubeconfig="/k", in_cluster=True)
    with pytest.raises(ValidationError, match="AWS_ACCESS_KEY_ID set twice"):
        OrchestratorsConfig(
            env={"AWS_ACCESS_KEY_ID": "x"}, secrets=[{"env": "AWS_ACCESS_KEY_ID", "secret": "s", "key": "k"}]
        )
    assert OrchestratorsConfig(kubeconfig="/k").pods_in_cluster is False
    assert OrchestratorsConfig().pods_in_cluster is True


def test_step_resources_merge_over_the_defaults() -> None:
    config = OrchestratorsConfig(step_resources={"train": {"requests": {"cpu": "4"}, "limits": {"memory": "16Gi"}}})
    assert config.resources_for("train").model_dump() == {
        "requests": {"cpu": "4", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "16Gi"},
    }
    assert config.resources_for("other") == config.resources


def test_parameter_names_must_survive_templating(tmp_path: Path) -> None:
    project = load_project(tp.make_project(tmp_path / "proj"), environ={})
    (project.root / "odd_flows.py").write_text(
        "from noria.pipelines import Pipeline, step\n"
        "@step\ndef one(n: int) -> int:\n    return n\n"
        "odd = Pipeline('odd', [one], params={'n': 1, 'not an id': 2})\n"
    )
    with pytest.raises(ConfigError, match="parameter name 'not an id'"):
        build_plan(project, "odd_flows:odd")


@pytest.mark.skipif(
    "orchestrators" not in NoriaConfig.model_fields, reason="the lead wires OrchestratorsConfig into NoriaConfig"
)
def test_the_cluster_profile_sets_the_section(tmp_path: Path) -> None:
    root = tp.make_project(tmp_path / "proj")
    text = (
        (root / "noria.yaml")
        .read_text()
        .replace(
            "  cluster: {}",
            "  cluster:\n    orchestrators: {mode: kubernetes, image: 'reg/noria:1', schedule: '@weekly'}",
        )
    )
    (root / "noria.yaml").write_text(text)
    assert orchestrators_config(load_project(root, environ={})) == OrchestratorsConfig()
    cluster = orchestrators_config(load_project(root, profile="cluster", environ={}))
    assert (cluster.mode, cluster.image, cluster.schedule) == ("kubernetes", "reg/noria:1", "@weekly")
    env = {"NORIA_ORCHESTRATORS__IMAGE": "reg/noria:2"}
    assert orchestrators_config(load_project(root, profile="cluster", environ=env)).image == "reg/noria:2"
