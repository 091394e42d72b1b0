"""``champion_state``: who is @champion and the newest change of it, read from MLflow's SQLite
tables directly (the training pipeline's gate cache asks on every run). The direct read must
agree with MLflow's client on every change: this pins the table layout Noria reads."""

from __future__ import annotations

from collections.abc import Callable

from noria.config import Project
from noria.registry import ModelVersionInfo, champion_state, promote, rollback
from noria.registry.mlflow_client import get_client
from noria.registry.records import _champion_state_sqlite

NAME = "flight-delay"


def test_the_direct_read_agrees_with_mlflow_through_promotions_and_rollbacks(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    client = get_client(project)
    seen = []

    def both() -> dict[str, object]:
        direct = _champion_state_sqlite(project, NAME)
        assert direct is not None, "the SQLite layout changed: champion_state falls back to the client"
        assert direct == champion_state(project, NAME, client=client)
        seen.append(direct)
        return direct

    v1 = registered(NAME)
    assert both() == {"name": NAME, "champion": None, "history_events": 0, "last_event": None}
    promote(project, NAME, v1.version, force=True, reason="first")
    v2 = registered(NAME)
    assert both()["champion"] == v1.version
    promote(project, NAME, v2.version, force=True, reason="second")
    assert both()["champion"] == v2.version
    rollback(project, NAME, "v2 degrades")
    state = both()
    assert state["champion"] == v1.version and state["history_events"] == 3
    assert state["last_event"]["action"] == "rollback"  # type: ignore[index]
    assert len({str(s) for s in seen}) == len(seen)  # every change gives a new state


def test_an_unknown_model_falls_back_to_the_client_and_its_error(project: Project) -> None:
    import pytest

    from noria.errors import NoriaError

    assert _champion_state_sqlite(project, "nobody") is None
    with pytest.raises(NoriaError):
        champion_state(project, "nobody")


def test_a_version_left_by_a_killed_attempt_is_marked_abandoned_and_not_promoted(
    project: Project, booster: object
) -> None:
    """A register step killed after creating its version (its MLflow run still RUNNING): the
    re-run of the same pipeline run closes that run as FAILED and tags the version abandoned;
    the gate and manual promotion refuse it unless forced."""
    import pytest

    from noria.errors import ValidationError
    from noria.registry import collect_lineage, get_version, start_run

    lineage = collect_lineage(
        project,
        data_snapshot="snap1",
        feature_service="flights_v1",
        feature_definition_hash="abc",
        pipeline_run_id="R1",
    )
    killed = start_run(project, "train-snap1", lineage)  # never closed: the process died here
    stray = killed.log_model(booster, NAME)
    with start_run(project, "train-snap1", lineage) as again:  # the re-run of pipeline run R1
        fresh = again.log_model(booster, NAME)
    client = get_client(project)
    assert client.get_run(killed.run_id).info.status == "FAILED"
    assert "pipeline run R1" in get_version(project, f"{NAME}/{stray.version}").tags["noria.abandoned"]
    assert "noria.abandoned" not in get_version(project, f"{NAME}/{fresh.version}").tags
    with pytest.raises(ValidationError, match="was abandoned"):
        promote(project, NAME, stray.version, reason="try it")
    forced = promote(project, NAME, stray.version, force=True, reason="known good, restored by hand")
    assert forced.promoted


def test_the_state_before_the_gates_own_promotion_is_what_that_decision_was_judged_against() -> None:
    """A re-run of the gate that promoted its candidate must find the state it was keyed on;
    any other newest change (another note, another version, a rollback) is a new state."""
    import json

    from noria.registry.records import _state

    first = {"action": "force", "version": 1, "from": None, "reason": "first"}
    own = {"action": "promote", "version": 2, "from": 1, "reason": "training pipeline"}
    before = _state(NAME, 1, json.dumps({"events": [first]}))
    after = json.dumps({"events": [first, own]})
    assert _state(NAME, 2, after, (2, "training pipeline")) == before
    assert _state(NAME, 2, after) != before  # without the candidate: the state as it is
    assert _state(NAME, 2, after, (2, "by hand")) != before  # promoted by someone else
    assert _state(NAME, 2, after, (3, "training pipeline")) != before  # another candidate
    rolled = json.dumps({"events": [first, own, {"action": "rollback", "version": 1, "from": 2, "reason": "x"}]})
    assert _state(NAME, 1, rolled, (2, "training pipeline"))["last_event"]["action"] == "rollback"  # type: ignore[index]
    alone = json.dumps({"events": [{"action": "promote", "version": 1, "from": None, "reason": "training pipeline"}]})
    assert _state(NAME, 1, alone, (1, "training pipeline")) == _state(NAME, None, None)


def test_the_direct_read_agrees_with_mlflow_before_a_promotion(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    client = get_client(project)
    v1 = registered(NAME)
    promote(project, NAME, v1.version, force=True, reason="first")
    key = (int(v1.version), "first")  # a forced promotion is not the gate's: the state stays as it is
    direct = _champion_state_sqlite(project, NAME, key)
    assert direct is not None and direct == champion_state(project, NAME, client=client, before_promotion_of=key)
    assert direct["champion"] == v1.version
