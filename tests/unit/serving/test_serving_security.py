"""API keys (hashed, constant-time), the start-up refusal without a key, A/B stickiness."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import AppFactory
from tests.unit.serving.serving_support import FLIGHT, INLINE, KEY

from noria.errors import ConfigError
from noria.serving.ab_assignment import CHALLENGER, CHAMPION, Router, bucket
from noria.serving.auth import ApiKeys, hash_key
from noria.serving.config import ABConfig, ServingConfig
from noria.serving.server import check_security, is_loopback


def test_keys_are_kept_hashed_and_checked_as_bearer_tokens() -> None:
    other = "second-key-abcdefghijklmnop"
    keys = ApiKeys.from_config(ServingConfig(api_key_hashes=[hash_key(other)]), {"NORIA_API_KEYS": f" {KEY} , ,"})
    assert len(keys) == 2
    assert KEY.encode() not in repr(vars(keys)).encode()  # only digests are held
    assert keys.check(f"Bearer {KEY}") and keys.check(f"bearer {other}")
    assert not keys.check(KEY) and not keys.check("Bearer ") and not keys.check(None)
    assert not keys.check(f"Basic {KEY}") and not keys.check(f"Bearer {KEY}x")
    assert not ApiKeys.from_config(ServingConfig(), {}).check(f"Bearer {KEY}")


def test_the_key_variable_is_configurable_and_weak_keys_are_refused() -> None:
    config = ServingConfig(api_keys_env="MY_KEYS")
    assert ApiKeys.from_config(config, {"MY_KEYS": KEY}).check(f"Bearer {KEY}")
    with pytest.raises(ConfigError, match="at least 16"):
        ApiKeys.from_config(config, {"MY_KEYS": "short"})
    with pytest.raises(ValueError, match="sha256"):
        ServingConfig(api_key_hashes=[KEY])


def test_serving_refuses_to_start_without_a_key_unless_insecure_local_on_loopback() -> None:
    config = ServingConfig()
    with pytest.raises(ConfigError) as err:
        check_security(config, {}, insecure_local=False)
    assert "NORIA_API_KEYS" in err.value.message and "--insecure-local" in (err.value.fix or "")
    assert check_security(config, {"NORIA_API_KEYS": KEY}, insecure_local=False) is config
    open_local = check_security(config, {}, insecure_local=True)
    assert open_local.require_key_for_predict is False
    with pytest.raises(ConfigError, match="loopback"):
        check_security(ServingConfig(host="0.0.0.0"), {}, insecure_local=True)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_ab_assignment_is_sticky_per_key_and_near_the_configured_share() -> None:
    config = ABConfig(challenger_fraction=0.3, sticky_key="carrier", experiment="exp-1")
    first, second = Router(config), Router(config)  # e.g. two workers or a restart
    keys = [f"C{i:03d}" for i in range(2000)]
    arms = [first.arm(k) for k in keys]
    assert arms == [second.arm(k) for k in keys] == [first.arm(k) for k in keys]
    share = arms.count(CHALLENGER) / len(arms)
    assert 0.26 < share < 0.34
    reshuffled = Router(config.model_copy(update={"experiment": "exp-2"}))
    assert [reshuffled.arm(k) for k in keys] != arms
    assert bucket("exp-1", "UA") == bucket("exp-1", "UA") != bucket("exp-2", "UA")
    assert first.arm(None) == CHAMPION  # no key: the champion
    header = Router(ABConfig(challenger_fraction=0.5, sticky_key="header:X-Customer"))
    assert header.key(None, {"x-customer": "c-42"}) == "c-42" and header.key(None, {}) is None


def test_ab_requests_go_to_both_versions_and_the_same_carrier_always_to_the_same(make_app: AppFactory) -> None:
    app = make_app(require_key_for_predict=False, ab={"challenger_fraction": 0.5, "sticky_key": "carrier"})
    carriers = [f"{a}{b}" for a in "ABCDEFGH" for b in "XYZ"]
    with TestClient(app) as c:
        seen: dict[str, set[int]] = {}
        for _ in range(2):
            for carrier in carriers:
                flight = {**FLIGHT, "carrier": carrier, "features": INLINE}
                body = c.post("/predict", json=flight).json()
                seen.setdefault(carrier, set()).add(body["model_version"])
                assert body["arm"] == ("challenger" if body["model_version"] == 2 else "champion")
        assert all(len(v) == 1 for v in seen.values())
        assert {v for s in seen.values() for v in s} == {1, 2}
        assert c.get("/version").json()["challenger"]["version"] == 2


def test_shadow_scores_with_the_challenger_and_logs_it_without_returning_it(make_app: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from noria.serving.predlog import read_prediction_log

    with TestClient(make_app(require_key_for_predict=False, ab={"shadow": True})) as c:
        body = c.post("/predict", json={**FLIGHT, "features": INLINE}).json()
        assert body["model_version"] == 1 and body["arm"] == "champion"
        assert 'noria_predictions_total{arm="shadow",model_version="2"} 1.0' in c.get("/metrics").text
    log = read_prediction_log(tmp_path / "predictions")
    rows = log[log["request_id"] == body["request_id"]].sort_values("arm")
    assert list(rows["arm"]) == ["champion", "shadow"] and list(rows["model_version"]) == [1, 2]
    assert list(rows["served"]) == [True, False]
