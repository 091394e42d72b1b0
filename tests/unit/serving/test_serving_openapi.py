"""The OpenAPI document is complete (bodies, examples, errors, security) and docs/api/openapi.json is current."""

from __future__ import annotations

import json
from pathlib import Path

from noria.serving.openapi import DOC, document, main, render

ROOT = Path(__file__).resolve().parents[3]


def test_docs_api_openapi_json_is_up_to_date() -> None:
    assert (ROOT / DOC).read_text(encoding="utf-8") == render(), "run: python -m noria.serving.openapi"
    assert main(["--check", "--path", str(ROOT / DOC)]) == 0


def test_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}", encoding="utf-8")
    assert main(["--check", "--path", str(stale)]) == 1
    assert main(["--path", str(stale)]) == 0 and main(["--check", "--path", str(stale)]) == 0


def test_document_describes_requests_responses_errors_and_keys() -> None:
    doc = document()
    assert set(doc["paths"]) == {"/predict", "/health", "/ready", "/version", "/metrics", "/reload"}
    predict = doc["paths"]["/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"one request", "batch"}
    assert body["examples"]["one request"]["value"]["carrier"] == "UA"  # the flights project's example
    schemas = doc["components"]["schemas"]
    request = schemas["PredictRequest"]
    assert [ref["$ref"].rsplit("/", 1)[-1] for ref in request["oneOf"]] == ["FlightRequest", "PredictBatch"]
    flight = schemas["FlightRequest"]
    assert flight["additionalProperties"] is False
    assert set(flight["required"]) == {"carrier", "flight", "origin", "dest", "scheduled_departure", "distance"}
    assert flight["properties"]["scheduled_departure"]["format"] == "date-time"
    assert schemas["PredictBatch"]["properties"]["flights"]["maxItems"] == 256  # the project's batch key
    assert {"200", "401", "413", "422", "503"} <= set(predict["responses"])
    assert predict["security"] == [{"bearerKey": []}]
    assert doc["paths"]["/reload"]["post"]["security"] == [{"bearerKey": []}]
    prediction = schemas["Prediction"]["properties"]
    assert {"probability", "late", "model_version", "arm", "explanation", "out_of_distribution"} <= set(prediction)
    assert json.dumps(doc)  # serialisable as it is exported
    assert doc["info"]["title"] == "Noria serving: flights"
