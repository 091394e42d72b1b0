"""Every endpoint and every error of the HTTP API, on a model loaded from a real MLflow registry."""

from __future__ import annotations

import json

import lightgbm as lgb
import pytest
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import AppFactory
from tests.unit.serving.serving_support import FLIGHT, INLINE, KEY

from noria.config import Project
from noria.serving.predlog import read_prediction_log


def test_predict_one_flight_with_inline_features(client: TestClient, booster: lgb.Booster) -> None:
    r = client.post("/predict", json={**FLIGHT, "features": INLINE}, headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] == "abc-123" == r.headers["x-request-id"]
    assert set(body) == {
        "request_id",
        "probability",
        "late",
        "threshold",
        "model_name",
        "model_version",
        "arm",
        "explanation",
        "out_of_distribution",
    }
    assert (body["model_name"], body["model_version"], body["arm"]) == ("flight-delay", 1, "champion")
    assert body["late"] == (body["probability"] >= body["threshold"] == 0.5)
    top = body["explanation"]["contributions"]
    assert 1 <= len(top) <= 3 and top[0]["text"].endswith("points")
    assert any(c["text"].startswith("visibility 0.5 mi raised the risk") for c in top)
    assert body["out_of_distribution"] == {"flag": False, "reasons": []}


def test_batch_keeps_the_order_and_flags_each_flight(client: TestClient) -> None:
    odd = {**FLIGHT, "dest": "XXX", "features": {**INLINE, "carrier": "ZZ", "visib": 99.0}}
    r = client.post("/predict", json={"flights": [{**FLIGHT, "features": INLINE}, odd]})
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert not first["out_of_distribution"]["flag"]
    assert {x["kind"] for x in second["out_of_distribution"]["reasons"]} == {"unseen_category", "out_of_range"}


def test_without_features_and_online_store_the_missing_ones_are_flagged(client: TestClient) -> None:
    body = client.post("/predict", json=FLIGHT).json()
    reasons = body["out_of_distribution"]["reasons"]
    assert body["out_of_distribution"]["flag"] and {x["kind"] for x in reasons} == {"missing"}
    assert len(reasons) == 5


def test_explanations_can_be_skipped_per_request(client: TestClient) -> None:
    body = client.post("/predict?explain=false", json={**FLIGHT, "features": INLINE}).json()
    assert body["explanation"] is None
    full = client.post("/predict", json={**FLIGHT, "features": INLINE}).json()
    assert full["probability"] == body["probability"]
    bad = client.post("/predict?explain=maybe", json={**FLIGHT, "features": INLINE})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "explain"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**FLIGHT, "distance": -5}, "distance"),
        ({**FLIGHT, "flight": "1545"}, "flight"),  # no string-to-number coercion
        ({**FLIGHT, "distance": True}, "distance"),
        ({**FLIGHT, "scheduled_departure": "2013-07-01T05:15:00"}, "scheduled_departure"),  # no time zone
        ({**FLIGHT, "carrier": "united"}, "carrier"),
        ({**FLIGHT, "gate": "C12"}, "gate"),  # unknown field
        ({**FLIGHT, "features": {"visib": "far"}}, "features.visib"),
        ({**FLIGHT, "features": {"no_such_feature": 1.0}}, "features.no_such_feature"),
        ({"flights": []}, "flights"),
        ({"flights": [FLIGHT, {**FLIGHT, "origin": 7}]}, "flights[1].origin"),
        ([FLIGHT], "(body)"),
    ],
)
def test_bad_requests_are_422_naming_the_field(client: TestClient, body: object, field: str) -> None:
    r = client.post("/predict", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "validation_error" and error["message"].startswith(field)
    assert error["fields"][0]["field"] == field


@pytest.mark.parametrize(
    "raw", [b'{"distance": NaN}', b'{"distance": Infinity}', b"not json", b'{"flight": 1e400}', b""]
)
def test_nan_infinity_and_broken_json_are_422(client: TestClient, raw: bytes) -> None:
    payload = json.dumps({**FLIGHT, "features": {"temp": 1.0}}).encode()
    payload = payload.replace(b'"distance": 1400', raw[1:-1]) if raw.startswith(b'{"distance"') else raw
    r = client.post("/predict", content=payload, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text


def test_batches_over_the_limit_are_422(make_app: AppFactory) -> None:
    with TestClient(make_app(max_batch=3, require_key_for_predict=False)) as c:
        r = c.post("/predict", json={"flights": [FLIGHT] * 4})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "flights"
        assert c.post("/predict", json={"flights": [FLIGHT] * 3}).status_code == 200


def test_bodies_over_the_limit_are_413_also_when_chunked(make_app: AppFactory) -> None:
    with TestClient(make_app(max_body_bytes=2048, require_key_for_predict=False)) as c:
        big = {"flights": [FLIGHT] * 40}
        r = c.post("/predict", json=big)
        assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"

        def chunks():  # no Content-Length: counted while reading
            yield json.dumps(big).encode()

        assert c.post("/predict", content=chunks()).status_code == 413


def test_predict_needs_a_key_when_configured(make_app: AppFactory) -> None:
    with TestClient(make_app()) as c:
        assert c.post("/predict", json=FLIGHT).status_code == 401
        bad = c.post("/predict", json=FLIGHT, headers={"Authorization": "Bearer wrong-key-0123456789"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        assert c.post("/predict", json=FLIGHT, headers={"Authorization": KEY}).status_code == 401  # no scheme
        ok = c.post("/predict", json=FLIGHT, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200
    with TestClient(make_app(require_key_for_predict=False)) as c:
        assert c.post("/predict", json=FLIGHT).status_code == 200


def test_reload_always_needs_a_key(make_app: AppFactory) -> None:
    with TestClient(make_app(require_key_for_predict=False)) as c:
        assert c.post("/reload").status_code == 401
        r = c.post("/reload", headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200 and r.json() == {
            "changed": False,
            "previous_version": 1,
            "version": 1,
            "challenger_version": None,
        }
    with TestClient(make_app(require_key_for_predict=False, environ={})) as c:  # no keys at all
        r = c.post("/reload", headers={"Authorization": "Bearer anything-at-all-long"})
        assert r.status_code == 401 and "NORIA_API_KEYS" in r.json()["error"]["fix"]


def test_health_ready_version_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "alive"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["model"] == "flight-delay/1"
    version = client.get("/version").json()
    assert version["name"] == "flight-delay" and version["version"] == 1 and version["alias"] == "champion"
    assert version["feature_definition_hash"] == "defhash123" and version["run_id"]
    client.post("/predict", json={**FLIGHT, "features": {**INLINE, "carrier": "ZZ"}})
    client.post("/predict", json={"bad": 1})
    text = client.get("/metrics").text
    assert 'noria_http_requests_total{endpoint="/predict",status="200"}' in text
    assert 'noria_http_requests_total{endpoint="/predict",status="422"}' in text
    assert 'noria_predictions_total{arm="champion",model_version="1"}' in text
    assert 'noria_out_of_distribution_total{kind="unseen_category"}' in text
    assert "noria_http_request_duration_seconds_bucket" in text and "noria_prediction_score_bucket" in text
    assert 'noria_model_info{alias="champion",feature_definition_hash="defhash123",name="flight-delay"' in text


def test_not_ready_without_a_model(make_app: AppFactory, project: Project) -> None:
    with TestClient(make_app(project=project, require_key_for_predict=False)) as c:  # empty registry
        ready = c.get("/ready")
        assert ready.status_code == 503 and not ready.json()["ready"]
        assert "champion" in " ".join(ready.json()["problems"])
        assert c.post("/predict", json=FLIGHT).status_code == 503
        assert c.get("/version").status_code == 503
        assert c.get("/health").status_code == 200


def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    r = client.get("/../../etc/passwd")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = client.get("/predict")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"


def test_every_request_is_logged_once_with_its_feature_vector(make_app: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with TestClient(make_app(require_key_for_predict=False)) as c:
        ids = [c.post("/predict", json={**FLIGHT, "features": INLINE}).json()["request_id"] for _ in range(3)]
        batch = c.post("/predict", json={"flights": [FLIGHT, FLIGHT]}).json()["request_id"]
        bad = c.post("/predict", json={**FLIGHT, "distance": 0}).headers["x-request-id"]
    log = read_prediction_log(tmp_path / "predictions")  # the app's shutdown flushed it
    assert sorted(log["request_id"]) == sorted([*ids, batch, batch, bad])
    ok = log[log["status"] == 200]
    assert set(ok["model_version"]) == {1} and set(ok["arm"]) == {"champion"}
    row = ok[ok["request_id"] == ids[0]].iloc[0]
    assert row["feature.visib"] == 0.5 and row["feature.carrier"] == "UA" and 0 < row["probability"] < 1
    assert json.loads(row["input"])["features"] == INLINE and row["latency_ms"] > 0
    failed = log[log["request_id"] == bad].iloc[0]
    assert failed["status"] == 422 and "distance" in failed["error"]
    assert list(log[log["request_id"] == batch]["row"]) == [0, 1]


def test_predict_is_served_by_the_middleware_itself_and_failures_stay_json(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /predict skips Starlette's routing (the middleware calls the endpoint directly): it
    answers with no route left for it, and an unexpected failure is still a JSON 500 with the
    request's id."""
    app = make_app(require_key_for_predict=False)
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != "/predict"]
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/predict", json={**FLIGHT, "features": INLINE}).status_code == 200
        assert c.get("/predict").status_code == 404  # other methods still go through the router

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

        monkeypatch.setattr(app.state.noria.predictor, "handle", broken)
        r = c.post("/predict", json=FLIGHT, headers={"X-Request-ID": "req-500"})
        assert r.status_code == 500 and r.json()["request_id"] == "req-500"
        assert "boom" not in r.text
