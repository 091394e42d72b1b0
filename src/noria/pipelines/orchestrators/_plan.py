"""What every generator renders: one task per step, the graph's edges, and the single-step command.

The command of a task is exactly the contract of :mod:`noria.pipelines`::

    noria [--project DIR] --profile P pipeline run PIPELINE --step STEP --run-id RUN_ID [--param K=V ...]

Each orchestrator fills RUN_ID and the parameter values with its own placeholders (Airflow's
``{{ run_id }}``, Kubeflow's job id, a Mage pipeline-run variable). Every task passes every
pipeline parameter, so all tasks of one run see the same values.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from noria.errors import ConfigError
from noria.pipelines._errors import PipelineDefinitionError
from noria.pipelines._graph import Pipeline
from noria.pipelines._project import find_pipeline
from noria.pipelines.orchestrators.config import OrchestratorsConfig, Resources

if TYPE_CHECKING:
    from noria.config import Project


# The layout of the Noria pipeline image (deploy/docker/pipeline.Dockerfile): a non-root user and
# a read-only root file system, the project at IMAGE_PROJECT_DIR; each pod's writable copy of the
# project lives at WORK_PROJECT_DIR (an emptyDir), as in deploy/k8s/base's CronJobs.
IMAGE_PROJECT_DIR = "/app/project"
IMAGE_UID = 10001
WORK_PROJECT_DIR = "/work/project"


def pull_data_script(plan: Plan) -> str:
    """Shell that copies the image's project to the pod's writable folder and checks the newest
    snapshot out there from the S3 DVC remote (``noria data pull``), before a task runs on it."""
    source = plan.config.project_dir or IMAGE_PROJECT_DIR
    pull = [plan.executable, "--project", WORK_PROJECT_DIR, "--profile", plan.profile, "data", "pull"]
    return f"cp -R {shlex.quote(source)}/. {WORK_PROJECT_DIR} && cd {WORK_PROJECT_DIR} && {shlex.join(pull)}"


def orchestrators_config(project: Project) -> OrchestratorsConfig:
    """The project's ``orchestrators`` section (kept as a public name; ``project.config.orchestrators``)."""
    return project.config.orchestrators


@dataclass(frozen=True)
class StepTask:
    """One task: the step it runs, the steps it waits for, and its container's resources."""

    step: str
    upstream: tuple[str, ...]
    resources: Resources


@dataclass(frozen=True)
class Plan:
    """A pipeline laid out for an orchestrator, with the command prefix every task runs."""

    project: str
    ref: str  # the pipeline as named on the command line: a registered name or module:attribute
    pipeline: Pipeline
    profile: str
    params: dict[str, Any]
    config: OrchestratorsConfig
    executable: str
    project_dir: str | None
    tasks: tuple[StepTask, ...]

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(upstream, downstream)`` step pairs, one per dependency (several artifacts count once)."""
        return [(up, task.step) for task in self.tasks for up in task.upstream]

    @property
    def dag_id(self) -> str:
        return f"{self.project}_{self.pipeline.name}"

    def loop_dag_id(self, name: str) -> str:
        """The id of loop DAG ``name`` (``ingest``, ``features``, ``monitor``): ``<project>_<name>``."""
        return f"{self.project}_{name}"

    def global_args(self) -> list[str]:
        """``[--project DIR] --profile P``: the options before the sub-command."""
        head = ["--project", self.project_dir] if self.project_dir else []
        return [*head, "--profile", self.profile]

    def step_args(self, step: str, run_id: str, param_value: Callable[[str], str]) -> list[str]:
        """The arguments after ``noria``: global options, then ``pipeline run ... --step STEP``."""
        args = [*self.global_args(), "pipeline", "run", self.ref, "--step", step, "--run-id", run_id]
        for name in self.params:
            args += ["--param", f"{name}={param_value(name)}"]
        return args

    def command_args(self, args: list[str]) -> list[str]:
        """The arguments after ``noria`` of a loop task: global options, then the task's own."""
        return [*self.global_args(), *args]


def build_plan(
    project: Project,
    ref: str,
    *,
    params: Mapping[str, Any] | None = None,
    config: OrchestratorsConfig | None = None,
    mode: Literal["local", "kubernetes"] | None = None,
) -> Plan:
    """Load pipeline ``ref`` of ``project`` and lay it out as tasks (``params`` override the defaults).

    ``mode`` overrides ``orchestrators.mode`` (Kubeflow always runs containers, Mage never).
    """
    cfg = config if config is not None else orchestrators_config(project)
    if mode is not None and mode != cfg.mode:
        cfg = cfg.model_copy(update={"mode": mode})
    if cfg.mode == "kubernetes":
        _check_shared_store(project, cfg)
    pipeline = find_pipeline(project, ref)
    resolved = pipeline.resolve_params(params)
    for name in resolved:
        if not name.isidentifier():
            raise PipelineDefinitionError(
                f"pipeline {pipeline.name!r}: parameter name {name!r} cannot be passed through an orchestrator",
                fix="name parameters like Python identifiers (letters, digits, '_')",
            )
    tasks = tuple(
        StepTask(
            step=name,
            upstream=tuple(dict.fromkeys(pipeline.nodes[name].inputs.values())),
            resources=cfg.resources_for(name),
        )
        for name in pipeline.order
    )
    project_dir: str | None
    if cfg.mode == "local":
        executable = cfg.executable or local_executable()
        project_dir = cfg.project_dir or str(project.root)
    else:
        executable = cfg.executable or "noria"
        project_dir = cfg.project_dir
    return Plan(
        project=project.config.project,
        ref=ref,
        pipeline=pipeline,
        profile=project.profile,
        params=resolved,
        config=cfg,
        executable=executable,
        project_dir=project_dir,
        tasks=tasks,
    )


def _check_shared_store(project: Project, cfg: OrchestratorsConfig) -> None:
    """Pods share nothing but the artifact store: it must be on S3, not a folder inside one pod."""
    store = cfg.env.get("NORIA_PIPELINES__STORE") or project.config.pipelines.store
    if store is None or not store.startswith("s3://"):
        raise ConfigError(
            f"orchestrators.mode is kubernetes but the artifact store is {store or 'the local artifacts folder'}: "
            "each step runs in its own pod, so a step would not find the outputs of the steps before it",
            fix="set pipelines.store to an s3:// URL in this profile, "
            "or orchestrators.env.NORIA_PIPELINES__STORE for the pods",
        )


def local_executable() -> str:
    """The ``noria`` script beside the running interpreter (a venv's bin), else the one on PATH."""
    beside = Path(sys.executable).parent / ("noria.exe" if os.name == "nt" else "noria")
    if beside.is_file():
        return str(beside)
    found = shutil.which("noria")
    return str(Path(found).resolve()) if found else "noria"
