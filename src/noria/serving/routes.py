"""The service's endpoints. ``/predict`` reads the raw body and validates it itself (from bytes,
strictly); its request schema is added to the OpenAPI document by :mod:`noria.serving.openapi_schema`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from pydantic import ValidationError as PydanticValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from noria.errors import NoriaError
from noria.serving._middleware import STARTED, request_id_of
from noria.serving.errors import JSON, ServingHTTPError, error_response, noria_error, validation_error
from noria.serving.errors import json_response as _json
from noria.serving.schemas import (
    ERRORS,
    HealthResponse,
    ReadyResponse,
    ReloadResponse,
    VersionResponse,
    prediction_models,
)

if TYPE_CHECKING:
    from noria.serving.app import ServingState

_UNAUTHORIZED = "missing or wrong API key"
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_KEY_FIX = "send the header 'Authorization: Bearer <key>' with a key from the service's NORIA_API_KEYS"


def add(app: FastAPI, state: ServingState) -> None:
    predictor, holder, metrics, cfg, keys = state.predictor, state.holder, state.metrics, state.config, state.keys
    require_key = cfg.require_key_for_predict
    _, one, batch = prediction_models(predictor.task)

    @app.post(
        "/predict",
        summary="Predict one request or a batch",
        response_model=one | batch,
        responses={**ERRORS, 401: ERRORS[401]},
        tags=["predictions"],
    )
    async def predict(request: Request) -> Response:
        request_id = request_id_of(request)
        started = request.scope.get(STARTED) or time.perf_counter()
        if require_key and not keys.check(request.headers.get("authorization")):
            predictor.log_failure(request_id, started, 401, _UNAUTHORIZED, None)
            return error_response(401, _UNAUTHORIZED, request_id, fix=_KEY_FIX, headers={"WWW-Authenticate": "Bearer"})
        body = await request.body()
        unknown = [k for k in request.query_params if k != "explain"]
        if unknown:
            message = f"{unknown[0]}: unknown query parameter (only 'explain' is accepted)"
            fields = [{"field": unknown[0], "message": "unknown query parameter", "type": "extra_forbidden"}]
            predictor.log_failure(request_id, started, 422, message, body)
            return error_response(422, message, request_id, fields=fields)
        flag = request.query_params.get("explain")
        explain = None if flag is None else _BOOL.get(flag.lower())
        if flag is not None and explain is None:
            response = error_response(
                422,
                f"explain: expected true or false, got {flag[:20]!r}",
                request_id,
                fields=[{"field": "explain", "message": "expected true or false", "type": "bool_parsing"}],
            )
            predictor.log_failure(request_id, started, 422, "explain: not a boolean", body)
            return response
        try:
            outcome = await predictor.handle(body, request.headers, request_id, started, explain)
        except PydanticValidationError as exc:
            response = validation_error(exc, request_id, predictor.batch_key)
        except ServingHTTPError as exc:
            response = error_response(exc.status, exc.message, request_id, fix=exc.fix, fields=exc.fields)
        except NoriaError as exc:
            response = noria_error(exc, request_id)
        else:
            task = BackgroundTask(predictor.shadow, outcome, request_id) if outcome.shadow else None
            return Response(outcome.body, media_type=JSON, background=task)
        predictor.log_failure(request_id, started, response.status_code, _message(response), body)
        return response

    # The middleware calls this itself for POST /predict (ServingState.direct): the same endpoint
    # without Starlette's exception middleware, route scan and FastAPI's per-request work, which it
    # does not use. The FastAPI route above stays for the OpenAPI document.
    async def predict_asgi(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await predict(request)
        except ServingHTTPError as exc:  # a chunked body over the limit (the middleware's receive)
            response = error_response(exc.status, exc.message, request_id_of(request), fix=exc.fix, fields=exc.fields)
        await response(scope, receive, send)

    state.direct[("POST", "/predict")] = predict_asgi

    @app.get("/health", summary="Liveness: the process answers", response_model=HealthResponse, tags=["operations"])
    async def health() -> Response:
        return _json({"status": "alive"})

    @app.get(
        "/ready",
        summary="Readiness: a model is loaded and the online store is open",
        response_model=ReadyResponse,
        responses={503: {"model": ReadyResponse, "description": "Not ready yet; `problems` says why."}},
        tags=["operations"],
    )
    async def ready() -> Response:
        champion = holder.champion
        problems = list(holder.problems)
        if champion is None and not problems:
            problems.append("no model loaded yet")
        store = state.feature_status
        if cfg.online_features == "on" and predictor.features is None:
            problems.append(f"online store: {store}")
        ok = champion is not None and not (cfg.online_features == "on" and predictor.features is None)
        body = {
            "ready": ok,
            "model": f"{champion.name}/{champion.version}" if champion else None,
            "online_store": store,
            "problems": problems,
        }
        return _json(body, 200 if ok else 503)

    @app.get(
        "/version",
        summary="The model version serving (name, version, alias, run id, feature definition hash) and the code",
        response_model=VersionResponse,
        responses={503: ERRORS[503]},
        tags=["operations"],
    )
    async def version(request: Request) -> Response:
        champion = holder.champion
        if champion is None:
            return error_response(503, "no model is loaded yet", request_id_of(request), fix="wait for /ready")
        challenger = holder.challenger
        body = champion.describe() | {"challenger": challenger.describe() if challenger else None, "code": state.code}
        return _json(body)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics."}},
        tags=["operations"],
    )
    async def prometheus() -> Response:
        # In a worker thread: the monitoring collector reads files, which must not stall the event loop.
        data, content_type = await run_in_threadpool(metrics.expose)
        return Response(data, media_type=content_type)

    @app.post(
        "/reload",
        summary="Admin: check the registry aliases now and swap the model if they moved",
        response_model=ReloadResponse,
        responses={401: ERRORS[401], 503: ERRORS[503]},
        tags=["operations"],
    )
    async def reload(request: Request) -> Response:
        request_id = request_id_of(request)
        if not keys.check(request.headers.get("authorization")):
            fix = _KEY_FIX if keys else "start the service with API keys (NORIA_API_KEYS) to enable /reload"
            return error_response(401, _UNAUTHORIZED, request_id, fix=fix, headers={"WWW-Authenticate": "Bearer"})
        result = await run_in_threadpool(holder.reload)
        if result.version is None:
            message = "; ".join(result.problems) or "no model could be loaded"
            return error_response(503, message, request_id, fix="check the registry alias (noria models list)")
        return _json(result.to_dict())


def _message(response: Response) -> str:
    import orjson

    try:
        return str(orjson.loads(bytes(response.body))["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


__all__ = ["add"]
