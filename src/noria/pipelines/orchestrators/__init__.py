"""Orchestrators generated from a pipeline's one step graph: Airflow DAGs, Kubeflow YAML, a Mage project.

Every generated task runs the single-step contract of :mod:`noria.pipelines`::

    noria [--project DIR] --profile P pipeline run PIPELINE --step STEP --run-id RUN_ID [--param K=V ...]

so a pipeline runs the same under Noria's local runner, Airflow, Kubeflow Pipelines and Mage.
The ``orchestrators:`` section of noria.yaml (:class:`OrchestratorsConfig`, in
:mod:`noria.pipelines.orchestrators.config`) says how tasks run: locally (the ``noria``
executable) or as pods of the Noria image, with resources, env, secrets, schedules and retries.
Heavy libraries (Airflow, kfp) are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# public name -> defining module, imported on first use: `noria.pipelines.orchestrators.config`
# (the section model noria.config composes) must not load the renderers.
from noria._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "loop_dag_source": "_airflow",
    "pipeline_dag_source": "_airflow",
    "render_airflow": "_airflow",
    "FeaturesSchedule": "config",
    "IngestSchedule": "config",
    "LoopDag": "config",
    "MonitorSchedule": "config",
    "OrchestratorsConfig": "config",
    "Resources": "config",
    "SecretEnv": "config",
    "StepResources": "config",
    "orchestrators_config": "_plan",
    "compile_kfp": "_kfp",
    "export_mage": "_mage",
    "Plan": "_plan",
    "StepTask": "_plan",
    "build_plan": "_plan",
}
__all__ = [
    "FeaturesSchedule",
    "IngestSchedule",
    "LoopDag",
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
    "loop_dag_source",
    "orchestrators_config",
    "pipeline_dag_source",
    "render_airflow",
]

if TYPE_CHECKING:
    from noria.pipelines.orchestrators._airflow import loop_dag_source, pipeline_dag_source, render_airflow
    from noria.pipelines.orchestrators._kfp import compile_kfp
    from noria.pipelines.orchestrators._mage import export_mage
    from noria.pipelines.orchestrators._plan import Plan, StepTask, build_plan, orchestrators_config
    from noria.pipelines.orchestrators.config import (
        FeaturesSchedule,
        IngestSchedule,
        LoopDag,
        MonitorSchedule,
        OrchestratorsConfig,
        Resources,
        SecretEnv,
        StepResources,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
