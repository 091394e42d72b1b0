"""The service's OpenAPI schema, installed by :func:`noria.serving.app.create_app`: FastAPI's, plus
the /predict request body (validated by the route itself), the bearer-key security scheme, and
examples. :mod:`noria.serving.openapi` exports it to ``docs/api/openapi.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

if TYPE_CHECKING:
    from noria.config import Project
    from noria.serving.requests import RequestSchema
    from noria.tasks import Task

_REF = "#/components/schemas/{model}"


def _predict_body(adapter: TypeAdapter[Any], schemas: dict[str, Any], request: RequestSchema) -> dict[str, Any]:
    schema = adapter.json_schema(ref_template=_REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schema.pop("discriminator", None)  # a callable discriminator has no OpenAPI form; oneOf says it
    schema["title"] = "PredictRequest"
    key = request.batch_key
    schema["description"] = f'One request, or {{"{key}": [...]}} (up to serving.max_batch requests).'
    schemas["PredictRequest"] = schema
    example = request.example()
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": _REF.format(model="PredictRequest")},
                "examples": {
                    "one request": {"value": example},
                    "batch": {"value": {key: [example, example]}},
                },
            }
        },
    }


def _describe(task: Task, request: RequestSchema) -> str:
    what = {
        "binary": f"the probability of the positive class and the decision ({task.label_name})",
        "multiclass": f"the predicted class ({', '.join(task.classes)}) and the probability of each",
        "regression": f"the predicted {task.label_name}" + (f" in {task.unit}" if task.unit else ""),
    }[task.name]
    head = f"{request.description} " if request.description else ""
    return (
        f"{head}Answers with {what}, the reasons (LightGBM contributions in the task's terms) and an "
        "out-of-distribution flag. Keys: `Authorization: Bearer <key>`."
    )


def install_openapi(
    app: FastAPI,
    adapter: TypeAdapter[Any],
    request: RequestSchema,
    task: Task,
    *,
    require_key_for_predict: bool,
    project: Project | None = None,
) -> None:
    """Make ``app.openapi()`` return the complete document (built on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        if project is not None and project.config.serving.request.example is None:
            from noria.serving.requests import example_from_data

            found = example_from_data(project, request)
            if found is not None:
                request.set_example(found)
        doc = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=_describe(task, request),
            routes=app.routes,
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        components["securitySchemes"] = {
            "bearerKey": {"type": "http", "scheme": "bearer", "description": "An API key from NORIA_API_KEYS."}
        }
        predict = doc["paths"]["/predict"]["post"]
        predict["requestBody"] = _predict_body(adapter, schemas, request)
        predict["parameters"] = [
            {
                "name": "explain",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": True},
                "description": "Set false to skip the explanation (faster); on by default when configured.",
            }
        ]
        if require_key_for_predict:
            predict["security"] = [{"bearerKey": []}]
        doc["paths"]["/reload"]["post"]["security"] = [{"bearerKey": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
