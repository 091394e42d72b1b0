"""The OpenAPI document: FastAPI's, plus the /predict request body (validated by the route itself),
the bearer-key security scheme, and examples; exported to ``docs/api/openapi.json``.

    python -m noria.serving.openapi            # rewrite docs/api/openapi.json
    python -m noria.serving.openapi --check    # exit 1 if it is out of date (CI, tests)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from noria.serving.schemas import EXAMPLE_FLIGHT

DOC = Path("docs") / "api" / "openapi.json"
_REF = "#/components/schemas/{model}"


def _predict_body(adapter: TypeAdapter[Any], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = adapter.json_schema(ref_template=_REF)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schema.pop("discriminator", None)  # a callable discriminator has no OpenAPI form; oneOf says it
    schema["title"] = "PredictRequest"
    schema["description"] = 'One flight, or {"flights": [...]} (up to serving.max_batch flights).'
    schemas["PredictRequest"] = schema
    inline = {**EXAMPLE_FLIGHT, "features": {"visib": 0.5, "temp": 71.1, "precip": 0.02}}
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": _REF.format(model="PredictRequest")},
                "examples": {
                    "one flight": {"value": EXAMPLE_FLIGHT},
                    "inline features": {"summary": "Feature values given inline", "value": inline},
                    "batch": {"value": {"flights": [EXAMPLE_FLIGHT, {**EXAMPLE_FLIGHT, "flight": 1714}]}},
                },
            }
        },
    }


def install_openapi(app: FastAPI, adapter: TypeAdapter[Any], *, require_key_for_predict: bool) -> None:
    """Make ``app.openapi()`` return the complete document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=(
                "Predicts whether a flight leaving New York departs more than 15 minutes late, with the "
                "reasons (LightGBM contributions in probability points) and an out-of-distribution flag. "
                "Keys: `Authorization: Bearer <key>`."
            ),
            routes=app.routes,
        )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        components["securitySchemes"] = {
            "bearerKey": {"type": "http", "scheme": "bearer", "description": "An API key from NORIA_API_KEYS."}
        }
        predict = doc["paths"]["/predict"]["post"]
        predict["requestBody"] = _predict_body(adapter, schemas)
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


def document() -> dict[str, Any]:
    """The OpenAPI document of the service with the default configuration."""
    from noria.serving.app import create_app
    from noria.serving.config import ServingConfig

    return create_app(config=ServingConfig(), environ={}).openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(path: Path = DOC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(), encoding="utf-8")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the file is not up to date")
    parser.add_argument("--path", type=Path, default=DOC)
    args = parser.parse_args(argv)
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else ""
        if current != render():
            print(f"{args.path} is out of date: run python -m noria.serving.openapi", file=sys.stderr)
            return 1
        print(f"{args.path} is up to date")
        return 0
    print(f"wrote {export(args.path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
