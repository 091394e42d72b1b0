"""Fuzz every endpoint from the OpenAPI document (schemathesis): never a 5xx, always the documented shapes.

Positive cases follow the schema (and must get a documented status and body); negative cases
break it (and must be refused with a 4xx, never a crash). The model comes from a real MLflow
registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import require_module
from tests.unit.serving.serving_support import (
    DESCRIPTIONS,
    KEY,
    make_migrated_db,
    make_project,
    register,
    train_booster,
)

from noria.config import Project
from noria.serving.app import create_app
from noria.serving.config import ServingConfig

schemathesis = require_module("schemathesis")

from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

AUTH = {"Authorization": f"Bearer {KEY}"}
OPERATIONS = [("/predict", "POST"), ("/health", "GET"), ("/ready", "GET"), ("/version", "GET"), ("/reload", "POST")]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("fuzz")
    project: Project = make_project(tmp / "proj", make_migrated_db(None, tmp))
    register(project, train_booster())
    config = ServingConfig.model_validate(
        {"prediction_log": {"dir": str(tmp / "log")}, "poll_seconds": 0, "max_batch": 8}
    )
    app = create_app(project, config=config, descriptions=DESCRIPTIONS, environ={"NORIA_API_KEYS": KEY})
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()


@pytest.mark.integration
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
@FUZZ
@given(data=st.data())
def test_valid_requests_get_documented_answers_and_never_a_5xx(
    api_schema: Any, path: str, method: str, data: Any
) -> None:
    case = data.draw(api_schema[path][method].as_strategy(generation_mode=GenerationMode.POSITIVE))
    case.call_and_validate(
        headers=AUTH,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )


@pytest.mark.integration
@FUZZ
@given(data=st.data())
def test_broken_predict_requests_are_refused_with_4xx(api_schema: Any, data: Any) -> None:
    case = data.draw(api_schema["/predict"]["POST"].as_strategy(generation_mode=GenerationMode.NEGATIVE))
    # Keep the case's own decision to send a key or not (a missing key is one way to be wrong).
    headers = AUTH if "Authorization" in (case.headers or {}) else None
    case.call_and_validate(
        headers=headers, checks=[not_a_server_error, negative_data_rejection, response_schema_conformance]
    )


def test_no_request_reaches_the_disk(tmp_path: Path) -> None:
    """The API takes no path, file name or model name: nothing in a request can name a file."""
    import json

    from noria.serving.openapi import render

    text = json.dumps(json.loads(render()))
    for word in ('"path"', '"file"', '"filename"', '"model_uri"', '"dir"'):
        assert f"{word}:" not in text
