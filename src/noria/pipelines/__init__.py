"""Noria pipelines: typed ``@step`` functions wired into a ``Pipeline``, run with content-hash caching.

Example::

    from noria.pipelines import Pipeline, step

    @step
    def raw(rows: int) -> pd.DataFrame: ...

    @step
    def features(raw: pd.DataFrame) -> pd.DataFrame: ...   # input: the output of `raw`

    training = Pipeline("training", steps=[raw, features], params={"rows": 1000})

**The single-step contract** (what the Airflow and Kubeflow generators render, one task
per step, all tasks of a DAG run sharing one RUN_ID)::

    noria [--project DIR] [--profile P] pipeline run PIPELINE --step STEP --run-id RUN_ID [--param K=V ...]

- PIPELINE: a registered name (``pipelines.registry`` in noria.yaml, or a built-in) or a
  ``module:attribute`` reference, importable from the project folder.
- The step reads each input from the artifact store through the record the upstream step
  wrote for the same RUN_ID (``runs/<pipeline>/<run_id>/steps/<step>.json``); failing
  that, through the cache (same code, parameters and inputs). If neither exists it exits
  with code 5 (not found) and names the upstream step to run first.
- It writes its outputs as content-addressed artifacts, then its cache entry and its run
  record; nothing else. Tasks of one run may therefore execute in separate processes,
  pods or machines, in parallel where the graph allows, as long as they share the store.
- Every task must receive the same ``--param`` values (pipeline defaults apply otherwise).
- RUN_ID: letters, digits and ``. _ : + -`` (Airflow's ``{{ run_id }}`` fits).
- The store is the project's: ``pipelines.store`` (a folder or ``s3://bucket/prefix``),
  settable per pod with ``NORIA_PIPELINES__STORE``; S3 credentials come from the standard
  ``AWS_*`` variables. Default: ``storage.artifacts_dir``.
- Exit codes: 0 done (ran, cached or resumed), 8 the step's code raised, 5 an input is
  missing, 3 a definition or parameter error, 4 an output cannot be serialised.
- Re-running a finished task with the same RUN_ID is a no-op (it is ``resumed``), so
  orchestrator retries are safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# public name -> defining module, imported on first use: `noria.pipelines.config` (the section
# model noria.config composes) must not load the runner, the store or the serializers.
from noria._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "ArtifactNotFoundError": "_errors",
    "ArtifactTypeError": "_errors",
    "PipelineDefinitionError": "_errors",
    "PipelineNotFoundError": "_errors",
    "StepFailedError": "_errors",
    "Pipeline": "_graph",
    "PipelinesConfig": "config",
    "current_project": "_project",
    "find_pipeline": "_project",
    "known_pipelines": "_project",
    "parse_params": "_project",
    "run_project_pipeline": "_project",
    "store_for_project": "_project",
    "load_pipeline": "_registry",
    "register_pipeline": "_registry",
    "RunResult": "_runner",
    "StepResult": "_runner",
    "run_pipeline": "_runner",
    "run_step": "_runner",
    "Serializer": "_serializers",
    "register_serializer": "_serializers",
    "Step": "_step",
    "current_run_id": "_step",
    "scratch_dir": "_step",
    "step": "_step",
    "ArtifactStore": "_store",
    "LocalArtifactStore": "_store",
    "S3ArtifactStore": "_store",
    "open_store": "_store",
}
__all__ = [
    "ArtifactNotFoundError",
    "ArtifactStore",
    "ArtifactTypeError",
    "LocalArtifactStore",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineNotFoundError",
    "PipelinesConfig",
    "RunResult",
    "S3ArtifactStore",
    "Serializer",
    "Step",
    "StepFailedError",
    "StepResult",
    "current_project",
    "current_run_id",
    "find_pipeline",
    "known_pipelines",
    "load_pipeline",
    "open_store",
    "parse_params",
    "register_pipeline",
    "register_serializer",
    "run_pipeline",
    "run_project_pipeline",
    "run_step",
    "scratch_dir",
    "step",
    "store_for_project",
]

if TYPE_CHECKING:
    from noria.pipelines._errors import (
        ArtifactNotFoundError,
        ArtifactTypeError,
        PipelineDefinitionError,
        PipelineNotFoundError,
        StepFailedError,
    )
    from noria.pipelines._graph import Pipeline
    from noria.pipelines._project import (
        current_project,
        find_pipeline,
        known_pipelines,
        parse_params,
        run_project_pipeline,
        store_for_project,
    )
    from noria.pipelines._registry import load_pipeline, register_pipeline
    from noria.pipelines._runner import RunResult, StepResult, run_pipeline, run_step
    from noria.pipelines._serializers import Serializer, register_serializer
    from noria.pipelines._step import Step, current_run_id, scratch_dir, step
    from noria.pipelines._store import ArtifactStore, LocalArtifactStore, S3ArtifactStore, open_store
    from noria.pipelines.config import PipelinesConfig


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
