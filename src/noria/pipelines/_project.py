"""Pipelines inside a Noria project: the store and what the CLI calls (the section: noria.pipelines.config)."""

from __future__ import annotations

import contextvars
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from noria.pipelines._errors import PipelineDefinitionError
from noria.pipelines._graph import Pipeline
from noria.pipelines._registry import load_pipeline, pipeline_sources
from noria.pipelines._runner import RunResult, new_run_id, run_pipeline, run_step
from noria.pipelines._store import ArtifactStore, open_store

if TYPE_CHECKING:
    from rich.console import Console

    from noria.config import Project


def store_for_project(project: Project) -> ArtifactStore:
    """The artifact store configured for the project (a local folder by default)."""
    cfg = project.config.pipelines
    url = cfg.store or str(project.path(project.config.storage.artifacts_dir))
    if not url.startswith("s3://") and "://" not in url:
        url = str(project.path(url))
    return open_store(url, cache_dir=project.path(cfg.cache_dir), endpoint_url=cfg.s3_endpoint_url)


def find_pipeline(project: Project | None, ref: str) -> Pipeline:
    """Look ``ref`` up as :func:`load_pipeline` does, with the project's registry and folder."""
    if project is None:
        return load_pipeline(ref)
    return load_pipeline(ref, config_registry=project.config.pipelines.registry, search_path=project.root)


def known_pipelines(project: Project | None) -> dict[str, str]:
    """Pipeline name -> where it is defined."""
    return pipeline_sources(project.config.pipelines.registry if project is not None else None)


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["rounds=200", "name=x"]`` -> ``{"rounds": 200, "name": "x"}`` (values read as JSON, else text)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise PipelineDefinitionError(
                f"--param {pair!r} is not of the form KEY=VALUE", fix="write it like --param rounds=200"
            )
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


_PROJECT: contextvars.ContextVar[Project | None] = contextvars.ContextVar("noria_project", default=None)


def current_project() -> Project:
    """The project whose pipeline is running (for steps that need its config or data).

    Set by :func:`run_project_pipeline` (so also by ``noria pipeline run``, in one process
    or one step per process). Outside a run it falls back to the project found from
    ``NORIA_PROJECT_DIR`` or the current folder.
    """
    project = _PROJECT.get()
    if project is None:
        from noria.config import load_project

        project = load_project()
    return project


def run_project_pipeline(
    project: Project,
    ref: str,
    *,
    step: str | None = None,
    run_id: str | None = None,
    params: Mapping[str, Any] | None = None,
    use_cache: bool = True,
    progress: bool = True,
    console: Console | None = None,
) -> RunResult:
    """Run a whole pipeline locally, or (``step=``) one step against the project's store."""
    pipeline = find_pipeline(project, ref)
    store = store_for_project(project)
    token = _PROJECT.set(project)
    try:
        if step is None:
            return run_pipeline(
                pipeline,
                store,
                params=params,
                run_id=run_id,
                use_cache=use_cache,
                progress=progress,
                console=console,
            )
        rid = run_id or new_run_id()
        result = run_step(pipeline, step, store, run_id=rid, params=params, use_cache=use_cache)
        return RunResult(pipeline.name, rid, pipeline.resolve_params(params), store, {step: result}, result.seconds)
    finally:
        _PROJECT.reset(token)
