"""Orchestrators generated from a pipeline's one step graph: Airflow DAGs, Kubeflow YAML, a Mage project.

Every generated task runs the single-step contract of :mod:`noria.pipelines`::

    noria [--project DIR] --profile P pipeline run PIPELINE --step STEP --run-id RUN_ID [--param K=V ...]

so a pipeline runs the same under Noria's local runner, Airflow, Kubeflow Pipelines and Mage.
The ``orchestrators:`` section of noria.yaml (:class:`OrchestratorsConfig`) says how tasks
run: locally (the ``noria`` executable) or as pods of the Noria image, with resources, env,
secrets, schedules and retries. Heavy libraries (Airflow, kfp) are imported only when used.
"""

from noria.pipelines.orchestrators._airflow import monitor_dag_source, pipeline_dag_source, render_airflow
from noria.pipelines.orchestrators._config import (
    MonitorSchedule,
    OrchestratorsConfig,
    Resources,
    SecretEnv,
    StepResources,
    orchestrators_config,
)
from noria.pipelines.orchestrators._kfp import compile_kfp
from noria.pipelines.orchestrators._mage import export_mage
from noria.pipelines.orchestrators._plan import Plan, StepTask, build_plan

__all__ = [
    "MonitorSchedule",
    "OrchestratorsConfig",
    "Plan",
    "Resources",
    "SecretEnv",
    "StepResources",
    "StepTask",
    "build_plan",
    "compile_kfp",
    "export_mage",
    "monitor_dag_source",
    "orchestrators_config",
    "pipeline_dag_source",
    "render_airflow",
]
