"""Model loading and swapping through the real MLflow registry (SQLite in a temp folder)."""

from __future__ import annotations

import time

import lightgbm as lgb
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import AppFactory
from tests.unit.serving.serving_support import DESCRIPTIONS, FLIGHT, INLINE, KEY, register

from noria.config import Project
from noria.serving.loader import ModelHolder
from noria.serving.model import ServedModel
from noria.serving.sources import LoadedVersion, RegistryModelSource


def _build(loaded: LoadedVersion) -> ServedModel:
    return ServedModel.build(loaded, descriptions=DESCRIPTIONS)


def test_registry_source_resolves_aliases_and_loads_lineage(project: Project, booster: lgb.Booster) -> None:
    version = register(project, booster)
    source = RegistryModelSource(project, "flight-delay")
    ref = source.resolve("champion")
    assert (ref.name, ref.version) == ("flight-delay", version) and ref.run_id
    loaded = source.load(ref, "champion")
    assert loaded.feature_definition_hash == "defhash123" and loaded.profile is None
    assert loaded.booster.model_to_string() == booster.model_to_string()


def test_reload_swaps_when_the_alias_moves_and_keeps_serving_on_failure(
    project: Project, booster: lgb.Booster, booster_v2: lgb.Booster
) -> None:
    register(project, booster)
    holder = ModelHolder(RegistryModelSource(project, "flight-delay"), _build, poll_seconds=0)
    first = holder.reload()
    assert first.changed and first.version == 1 and holder.ready
    old = holder.champion
    assert not holder.reload().changed and holder.champion is old  # nothing moved: same object
    register(project, booster_v2)  # version 2, now @champion
    swapped = holder.reload()
    assert swapped.changed and (swapped.previous_version, swapped.version) == (1, 2)
    assert old is not None and old.version == 1  # a request holding the old object still has it whole
    from noria.registry.mlflow_client import get_client

    get_client(project).delete_registered_model_alias("flight-delay", "champion")
    broken = holder.reload()
    assert not broken.changed and broken.version == 2 and "champion" in broken.problems[0]
    assert holder.champion is not None and holder.champion.version == 2  # still serving


def test_the_poller_picks_up_a_new_champion(project: Project, booster: lgb.Booster, booster_v2: lgb.Booster) -> None:
    register(project, booster)
    holder = ModelHolder(RegistryModelSource(project, "flight-delay"), _build, poll_seconds=0.2)
    holder.reload()
    holder.start()
    try:
        register(project, booster_v2)
        deadline = time.monotonic() + 30
        while holder.champion is not None and holder.champion.version != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert holder.champion is not None and holder.champion.version == 2
    finally:
        holder.stop()


def test_reload_endpoint_moves_the_service_to_the_new_version(
    make_app: AppFactory, project: Project, booster: lgb.Booster, booster_v2: lgb.Booster
) -> None:
    register(project, booster)
    auth = {"Authorization": f"Bearer {KEY}"}
    with TestClient(make_app(project=project)) as c:
        assert c.post("/predict", json={**FLIGHT, "features": INLINE}, headers=auth).json()["model_version"] == 1
        register(project, booster_v2)
        result = c.post("/reload", headers=auth).json()
        assert result == {"changed": True, "previous_version": 1, "version": 2, "challenger_version": None}
        assert c.post("/predict", json={**FLIGHT, "features": INLINE}, headers=auth).json()["model_version"] == 2
        assert 'noria_model_info{alias="champion",feature_definition_hash="defhash123",name="flight-delay",' in (
            c.get("/metrics").text
        )
        assert 'version="1"' not in c.get("/metrics").text.split("noria_model_info{")[-1].split("\n")[0]
