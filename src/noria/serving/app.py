"""``create_app()``: the FastAPI service that serves the registry's @champion.

    from noria.serving import create_app
    app = create_app(project)            # uvicorn noria.serving.asgi:app does this from the env

Endpoints: ``POST /predict``, ``GET /health`` (alive), ``GET /ready`` (model loaded, online
store open), ``GET /version``, ``GET /metrics`` (Prometheus), ``POST /reload`` (admin). The
model is loaded and the poller started when the app starts (its lifespan), and the prediction
log is flushed when it stops, so SIGTERM loses nothing.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp

from noria.errors import NoriaError
from noria.serving._middleware import ServingMiddleware, request_id_of
from noria.serving.auth import ApiKeys
from noria.serving.config import ServingConfig
from noria.serving.errors import ServingHTTPError, error_response, noria_error
from noria.serving.loader import ModelHolder
from noria.serving.metrics import ServingMetrics
from noria.serving.model import ServedModel
from noria.serving.openapi_schema import install_openapi
from noria.serving.predict import Predictor
from noria.serving.predlog import PredictionLog
from noria.serving.requests import RequestSchema
from noria.serving.sources import FeatureSource, LoadedVersion, ModelSource
from noria.tasks import Task

if TYPE_CHECKING:
    from noria.config import Project

log = logging.getLogger("noria.serving")
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms), while
# online lookups run in a worker thread (a network store; noria.serving.coalesce). The lookup's
# Python work then competes with the event loop, and with 5 ms a request whose thread let go of
# the GIL for a system call (a socket write, a LightGBM call) could wait 5 ms to get it back.
# Measured with the lookup in a thread: more req/s and a lower p50 at 1 ms. Without that thread
# (inline features, SQLite read on the loop) the default measured as well or better: kept.
GIL_SWITCH_SECONDS = 0.001


@dataclass
class ServingState:
    """Everything the routes share; ``app.state.noria``."""

    config: ServingConfig
    holder: ModelHolder
    predictor: Predictor
    metrics: ServingMetrics
    keys: ApiKeys
    feature_status: str
    prediction_log: PredictionLog | None
    # The code this service runs (noria.provenance.code_version): shown by /version.
    code: dict[str, Any] | None = None
    # (method, path) -> the endpoint's ASGI callable, called by the middleware itself (noria.serving._middleware)
    direct: dict[tuple[str, str], ASGIApp] = field(default_factory=dict)


def create_app(
    project: Project | None = None,
    *,
    config: ServingConfig | None = None,
    model_source: ModelSource | None = None,
    feature_source: FeatureSource | None = None,
    feature_status: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    request: RequestSchema | None = None,
    task: Task | None = None,
) -> FastAPI:
    """The service for ``project`` (model from its registry, features from its online store).

    Every part can be given instead (``config``, ``model_source``, ``feature_source``, the
    ``request`` schema, the ``task``): tests use that. Without a model source the app starts but
    is not ready.
    """
    from noria.serving.config import serving_config
    from noria.tasks import BinaryTask, task_of

    env = os.environ if environ is None else environ
    cfg = config or (serving_config(project) if project is not None else ServingConfig())
    if request is None:
        if project is None:
            raise NoriaError("create_app needs a project or a request schema (noria.serving.requests)")
        from noria.serving.requests import request_schema

        request = request_schema(project)
    task = task or (task_of(project) if project is not None else BinaryTask())
    _check_sticky_key(cfg, request)
    if project is not None and model_source is None:
        from noria.serving.sources import RegistryModelSource

        model_source = RegistryModelSource(project, cfg.model or project.config.model.name)
    if project is not None and feature_source is None and feature_status is None:
        from noria.serving.sources import open_feature_source

        feature_source, feature_status = open_feature_source(
            project, cfg.online_features, cfg.feature_service, cfg.feature_cache
        )
    words = dict(descriptions or {})
    if feature_source is not None:
        words = {**feature_source.descriptions(), **words}
    elif project is not None and not words:
        words = _descriptions(project)

    metrics = ServingMetrics(task)
    keys = ApiKeys.from_config(cfg, env)

    def build(loaded: LoadedVersion) -> ServedModel:
        return ServedModel.build(
            loaded,
            task=task,
            descriptions=words,
            texts=cfg.explanations.features,
            top=cfg.explanations.top,
            method=cfg.explanations.method,
        )

    holder = ModelHolder(
        model_source if model_source is not None else _NoSource(),
        build,
        alias=cfg.alias,
        challenger_alias=cfg.ab.challenger_alias if cfg.ab.uses_challenger else None,
        poll_seconds=cfg.poll_seconds if model_source is not None else 0.0,
        on_swap=lambda model, alias: _swapped(metrics, model),
        on_error=lambda problem: metrics.reloads.labels("failed").inc(),
    )
    _export_monitoring(metrics, holder, project, task)
    cache = getattr(getattr(feature_source, "store", None), "cache", None)
    if cache is not None:
        metrics.watch_feature_cache(cache)
    prediction_log: PredictionLog | None = None
    adapter = request.adapter(cfg.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal prediction_log
        if cfg.prediction_log.enabled:
            folder = project.path(cfg.prediction_log.dir) if project is not None else None
            folder = folder or _absolute(cfg.prediction_log.dir)
            prediction_log = PredictionLog(
                folder,
                roll_rows=cfg.prediction_log.roll_rows,
                roll_seconds=cfg.prediction_log.roll_seconds,
                max_queue_rows=cfg.prediction_log.max_queue_rows,
                on_drop=lambda n: metrics.log_dropped.inc(n),
                project_root=project.root if project is not None else None,
                profile=project.profile if project is not None else None,
                remote=cfg.prediction_log.remote,
                on_ship=metrics.observe_shipping,
            )
            state.prediction_log = state.predictor.log = prediction_log
        if model_source is not None:
            await run_in_threadpool(holder.reload)
            holder.start()
        # Everything loaded so far (MLflow, Feast, pandas, the model) lives as long as the process:
        # move it out of the garbage collector's sight, or each full collection stalls requests
        # for a quarter of a second walking a few hundred thousand objects that never die.
        gc.collect()
        gc.freeze()
        switch = sys.getswitchinterval()
        if predictor.batcher is not None and predictor.batcher.worker_thread:
            sys.setswitchinterval(GIL_SWITCH_SECONDS)
        try:
            yield
        finally:
            sys.setswitchinterval(switch)
            holder.stop()
            await run_in_threadpool(predictor.close)
            if prediction_log is not None:
                await run_in_threadpool(prediction_log.close)
            gc.unfreeze()  # several apps in one process (tests, notebooks): let the collector see it all again
            metrics.worker_exited()

    name = project.config.project if project is not None else "noria"
    app = FastAPI(
        title=f"Noria serving: {name}",
        summary=f"{task.name.capitalize()} predictions with explanations, from the registry's @{cfg.alias}.",
        version=_version(),
        lifespan=lifespan,
    )
    predictor = Predictor(cfg, adapter, holder, feature_source, metrics, None, schema=request, task=task)
    from noria.provenance import code_version

    code = code_version(project.root if project is not None else None)
    state = ServingState(cfg, holder, predictor, metrics, keys, feature_status or "off", None, code)
    app.state.noria = state
    app.add_middleware(ServingMiddleware, metrics=metrics, max_body_bytes=cfg.max_body_bytes, direct=state.direct)
    _add_error_handlers(app)
    _add_routes(app, state)
    install_openapi(app, adapter, request, task, require_key_for_predict=cfg.require_key_for_predict, project=project)
    return app


def _check_sticky_key(cfg: ServingConfig, request: RequestSchema) -> None:
    key = cfg.ab.sticky_key
    if key is None or key.startswith("header:") or key in request.field_names:
        return
    from noria.errors import ConfigError

    raise ConfigError(
        f"serving.ab.sticky_key {key!r} is not a field of the request ({', '.join(request.field_names)})",
        fix="name a request field, or header:<Name> to take the key from a request header",
    )


def _export_monitoring(metrics: ServingMetrics, holder: ModelHolder, project: Project | None, task: Task) -> None:
    """Put the monitoring results (drift, performance), the batch deliveries and the served versions' facts on /metrics.

    The holdout value of the served versions is the task's primary metric, and the project's
    ``monitoring.policy.metric_drop`` is the threshold the metric-drop alert reads. A collector
    runs only when Prometheus scrapes; /predict never touches it.
    """
    from noria.monitoring.exporter import Deliveries, MonitoringCollector, ServedVersion
    from noria.monitoring.store import MonitoringStore

    metric = task.primary_metric

    def served() -> list[ServedVersion]:
        models = [m for m in (holder.champion, holder.challenger) if m is not None]
        return [
            ServedVersion(m.version, m.loaded.trained_at, m.loaded.holdout_metrics.get(metric), metric) for m in models
        ]

    # Not pulled here: the service starts without the monitoring bucket; the collector refreshes.
    store = MonitoringStore.of(project, pull=False) if project is not None else None
    threshold = project.config.monitoring.policy.metric_drop if project is not None else None
    deliveries = Deliveries.of(project) if project is not None else None
    metrics.add_collector(MonitoringCollector(store, served, task=task, metric_drop=threshold, deliveries=deliveries))


def _swapped(metrics: ServingMetrics, model: ServedModel) -> None:
    metrics.set_model(model.describe())
    metrics.reloads.labels("swapped").inc()


class _NoSource:
    def resolve(self, alias: str) -> Any:
        raise NoriaError("no model source configured")

    def load(self, ref: Any, alias: str) -> Any:
        raise NoriaError("no model source configured")


def _absolute(folder: str) -> Any:
    from pathlib import Path

    return Path(folder).expanduser().resolve()


def _version() -> str:
    from noria import __version__

    return __version__


def _descriptions(project: Project) -> dict[str, str]:
    """Feature descriptions from the project's feature definitions (for explanations), if it has any."""
    try:
        from noria.features.definitions import load_definitions

        return {name: info.description for name, info in load_definitions(project).features.items()}
    except (NoriaError, ImportError) as exc:
        log.info("no feature descriptions for explanations: %s", exc)
        return {}


def _add_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            detail = f"no endpoint {request.url.path}"
        return error_response(exc.status_code, detail, request_id_of(request), headers=dict(exc.headers or {}))

    async def serving_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServingHTTPError)
        return error_response(exc.status, exc.message, request_id_of(request), fix=exc.fix, fields=exc.fields)

    async def request_validation(request: Request, exc: Exception) -> Response:
        fields = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"], "type": e["type"]} for e in exc.errors()]  # type: ignore[attr-defined]
        return error_response(422, "invalid request", request_id_of(request), fields=fields)

    async def noria(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NoriaError)
        return noria_error(exc, request_id_of(request))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal error (logged with this request id)", request_id_of(request))

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ServingHTTPError, serving_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(NoriaError, noria)
    app.add_exception_handler(Exception, unexpected)


def _add_routes(app: FastAPI, state: ServingState) -> None:
    from noria.serving import routes

    routes.add(app, state)


__all__ = ["ServingState", "create_app"]
