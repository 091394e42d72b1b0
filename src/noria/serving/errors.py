"""Error responses: one JSON shape for every failure, naming the field when a field is wrong.

{"error": {"type": "validation_error", "message": "requests[0].distance: Input should be
 greater than 0", "fix": "...", "fields": [{"field": "requests[0].distance", ...}]},
 "request_id": "..."}
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError as PydanticValidationError
from starlette.responses import Response

from noria.errors import NoriaError

_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    422: "validation_error",
    500: "internal_error",
    502: "upstream_error",
    503: "not_ready",
}


class ServingHTTPError(Exception):
    """Raised inside the app to answer with an error response (mapped by the app's handler)."""

    def __init__(self, status: int, message: str, fix: str | None = None, fields: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fix = fix
        self.fields = fields or []


JSON = "application/json"


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def error_response(
    status: int,
    message: str,
    request_id: str,
    *,
    fix: str | None = None,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "type": _STATUS_TYPES.get(status, "error"),
            "message": message,
            "fix": fix,
            "fields": fields or [],
        },
        "request_id": request_id,
    }
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _path(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("one", "batch"):  # the discriminator's tag (noria.serving.requests)
        parts = parts[1:]
    if "features" in parts:  # drop the union member a feature value failed against
        k = parts.index("features")
        parts = parts[: k + 2]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(body)"


def field_errors(exc: PydanticValidationError) -> list[dict[str, str]]:
    """One entry per wrong field (the first problem found with it)."""
    seen: dict[str, dict[str, str]] = {}
    for err in exc.errors(include_url=False):
        path = _path(tuple(err["loc"]))
        if path in seen:
            continue
        message = str(err["msg"])
        if err["type"] == "extra_forbidden":
            message = "unknown field (not part of the API; check the spelling)"
        elif err["type"] == "json_invalid":
            message = f"the body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})"
        seen[path] = {"field": path, "message": message, "type": str(err["type"])}
    return list(seen.values())


def validation_error(exc: PydanticValidationError, request_id: str, batch_key: str = "requests") -> Response:
    fields = field_errors(exc)
    first = fields[0] if fields else {"field": "(body)", "message": "invalid request"}
    more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
    return error_response(
        422,
        f"{first['field']}: {first['message']}{more}",
        request_id,
        fix=f'send one request, or {{"{batch_key}": [...]}}, as documented in /docs (schema: PredictRequest)',
        fields=fields,
    )


def noria_error(exc: NoriaError, request_id: str) -> Response:
    status = exc.http_status if 400 <= exc.http_status < 600 else 500
    field = exc.message.split(":", 1)[0] if status == 422 and ":" in exc.message else None
    fields = [{"field": field, "message": exc.message, "type": type(exc).__name__}] if field else []
    return error_response(status, exc.message, request_id, fix=exc.fix, fields=fields)


__all__ = [
    "JSON",
    "ServingHTTPError",
    "error_response",
    "field_errors",
    "json_response",
    "noria_error",
    "validation_error",
]
