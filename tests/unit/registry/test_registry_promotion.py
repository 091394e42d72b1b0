"""The gate on the real registry: champion/challenger, manual promotion, rollback, races."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from registry_helpers import evaluation

from noria.config import Project
from noria.errors import NotFoundError, ValidationError
from noria.registry import (
    GateConfig,
    ModelVersionInfo,
    NoPreviousChampionError,
    PromotionBusyError,
    RegistryConfig,
    champion_history,
    get_version,
    promote,
    promote_if_better,
    record_evaluation,
    rollback,
)
from noria.registry.mlflow_client import get_client

NAME = "flight-delay"
GATE = GateConfig(min_delta=0.01, max_slice_drop=0.05)


def champion(project: Project) -> int | None:
    aliases = get_client(project).get_registered_model(NAME).aliases
    return int(aliases["champion"]) if "champion" in aliases else None


def test_gate_promotes_then_refuses_and_records_why(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    v1, v2, v3 = registered(), registered(), registered()
    first = promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE)
    assert first.promoted and first.previous_champion is None and champion(project) == 1

    better = promote_if_better(project, NAME, v2.version, evaluation(0.72), gate=GATE)
    assert better.promoted and better.previous_champion == 1 and champion(project) == 2

    small = promote_if_better(project, NAME, v3.version, evaluation(0.725), gate=GATE)
    assert not small.promoted and small.alias == "challenger" and champion(project) == 2
    assert "min_delta 0.01" in small.reason and "vs champion version 2" in small.reason

    info = get_version(project, f"{NAME}@challenger")
    assert info.version == 3
    assert info.tags["noria.gate.decision"] == "challenger"
    assert "min_delta" in info.tags["noria.gate.reason"]
    assert info.tags["noria.gate.compared_to"] == "2"
    assert info.metrics["roc_auc"] == pytest.approx(0.725)
    assert champion_history(project, NAME).stack == [1, 2]
    # The full decision is stored as JSON with the version's run.
    assert v3.run_id is not None
    artifacts = get_client(project).list_artifacts(v3.run_id, "noria/gate")
    assert len(artifacts) == 1
    local = get_client(project).download_artifacts(v3.run_id, artifacts[0].path)
    stored = json.loads(Path(local).read_text(encoding="utf-8"))
    assert stored["promoted"] is False and {c["name"] for c in stored["checks"]} >= {"beats_champion", "slices"}


def test_behavioural_failures_keep_the_champion(project: Project, registered: Callable[..., ModelVersionInfo]) -> None:
    v1, v2, v3 = registered(), registered(), registered()
    promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE)
    collapsed = evaluation(0.80, slices={"origin=EWR": 0.9, "origin=JFK": 0.5})
    d2 = promote_if_better(project, NAME, v2.version, collapsed, gate=GATE)
    assert not d2.promoted and "slices" in d2.reason and "origin=JFK" in d2.reason
    out_of_range = evaluation(0.80, predictions=np.array([0.2, 1.3]))
    d3 = promote_if_better(project, NAME, v3.version, out_of_range, gate=GATE)
    assert not d3.promoted and "prediction_range" in d3.reason
    assert champion(project) == 1


def test_champion_evaluator_is_called_on_the_current_champion(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    v1, v2 = registered(), registered()
    promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE)
    seen: list[int] = []

    def evaluate(info: ModelVersionInfo) -> Any:
        seen.append(info.version)
        return evaluation(0.75)  # re-evaluated on today's holdout, the champion is stronger

    decision = promote_if_better(project, NAME, v2.version, evaluation(0.72), champion=evaluate, gate=GATE)
    assert seen == [1] and not decision.promoted and champion(project) == 1


def test_manual_promotion_is_gated_unless_forced_with_a_reason(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    v1, v2, v3 = registered(), registered(), registered()
    promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE)
    # Manual promotion uses the recorded evaluations and the configured gate (default min_delta 0.002).
    record_evaluation(project, NAME, v2.version, evaluation(0.701))
    refused = promote(project, NAME, v2.version, reason="try")
    assert not refused.promoted and refused.alias == "challenger" and champion(project) == 1
    record_evaluation(project, NAME, v2.version, evaluation(0.71))  # re-evaluated
    gated = promote(project, NAME, v2.version, reason="re-evaluated on the new holdout")
    assert gated.promoted and champion(project) == 2
    assert champion_history(project, NAME).events[-1]["reason"] == "re-evaluated on the new holdout"
    with pytest.raises(ValidationError) as err:
        promote(project, NAME, v3.version)  # never evaluated
    assert "no recorded holdout evaluation" in err.value.message and "--force" in (err.value.fix or "")
    with pytest.raises(ValidationError):
        promote(project, NAME, v3.version, force=True, reason="  ")
    forced = promote(project, NAME, v3.version, force=True, reason="hotfix: champion mislabels JFK")
    assert forced.promoted and forced.forced and champion(project) == 3
    event = champion_history(project, NAME).events[-1]
    assert event["action"] == "force" and event["reason"] == "hotfix: champion mislabels JFK" and event["by"]
    already = promote(project, NAME, v3.version, force=True, reason="again")
    assert not already.promoted and "already @champion" in already.reason
    with pytest.raises(NotFoundError):
        promote(project, NAME, 99, force=True, reason="x")


def test_rollback_walks_back_the_champions(project: Project, registered: Callable[..., ModelVersionInfo]) -> None:
    v1, v2, v3 = registered(), registered(), registered()
    with pytest.raises(NoPreviousChampionError):
        rollback(project, NAME, "nothing yet")
    promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE)
    with pytest.raises(NoPreviousChampionError):
        rollback(project, NAME, "only one champion")
    promote_if_better(project, NAME, v2.version, evaluation(0.72), gate=GATE)
    promote_if_better(project, NAME, v3.version, evaluation(0.74), gate=GATE)
    with pytest.raises(ValidationError):
        rollback(project, NAME, "")
    first = rollback(project, NAME, "v3 degrades on live traffic")
    assert (first.from_version, first.to_version) == (3, 2) and champion(project) == 2
    second = rollback(project, NAME, "v2 too")
    assert (second.from_version, second.to_version) == (2, 1) and champion(project) == 1
    history = champion_history(project, NAME)
    assert history.stack == [1]
    assert [e["action"] for e in history.events] == ["promote", "promote", "promote", "rollback", "rollback"]
    assert history.events[-1]["reason"] == "v2 too" and history.events[-1]["by"] == first.by
    assert "v3 degrades" in get_version(project, f"{NAME}/3").tags["noria.rolled_back"]
    with pytest.raises(NoPreviousChampionError):
        rollback(project, NAME, "again")


def test_alias_moved_outside_noria_blocks_rollback(
    project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    v1, v2 = registered(), registered()
    promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE)
    promote_if_better(project, NAME, v2.version, evaluation(0.72), gate=GATE)
    get_client(project).set_registered_model_alias(NAME, "champion", "1")  # by hand, in the MLflow UI
    with pytest.raises(Exception, match="set outside Noria"):
        rollback(project, NAME, "why")


def test_lock_held_elsewhere_times_out(
    project: Project, registered: Callable[..., ModelVersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from noria.registry import records

    v1 = registered()
    monkeypatch.setattr(records, "registry_config", lambda _p: RegistryConfig(lock_timeout_s=0.3))
    with records.registry_lock(project, NAME), pytest.raises(PromotionBusyError):
        promote(project, NAME, v1.version, force=True, reason="x")
    assert promote(project, NAME, v1.version, force=True, reason="x").promoted


def _race(root: str, version: int, barrier: Any, results: Any) -> None:
    from noria.config import load_project
    from noria.registry import promote_if_better
    from noria.registry.mlflow_client import get_client

    project = load_project(root, environ={})
    get_client(project).search_registered_models()  # connected before the start line
    barrier.wait(timeout=120)
    decision = promote_if_better(project, "flight-delay", version, gate=GateConfig(min_delta=0.01))
    results.put(decision.to_dict())


@pytest.fixture
def fork_safe_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forked children must not share the parent's pooled SQLite connections: with NullPool
    # every MLflow call opens its own. (Set before the test's store is first created.)
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")


def test_two_racing_promotions_leave_exactly_one_champion(
    fork_safe_store: None, project: Project, registered: Callable[..., ModelVersionInfo]
) -> None:
    v1, v2, v3 = registered(), registered(), registered()
    promote_if_better(project, NAME, v1.version, evaluation(0.70), gate=GATE)
    # Both challengers beat the champion by the same margin: whoever goes second must then
    # be compared with the first (not with v1) and lose on min_delta.
    record_evaluation(project, NAME, v2.version, evaluation(0.75))
    record_evaluation(project, NAME, v3.version, evaluation(0.75))
    ctx = multiprocessing.get_context("fork")  # two real processes, started in milliseconds
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(project.root), v, barrier, results)) for v in (2, 3)]
    for p in procs:
        p.start()
    decisions = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    winners = [d for d in decisions if d["promoted"]]
    losers = [d for d in decisions if not d["promoted"]]
    assert len(winners) == 1 and len(losers) == 1
    winner, loser = winners[0]["version"], losers[0]["version"]
    assert champion(project) == winner
    assert losers[0]["previous_champion"] == winner and "min_delta" in losers[0]["reason"]
    assert get_version(project, f"{NAME}@challenger").version == loser
    assert champion_history(project, NAME).stack == [1, winner]


def test_the_gate_judges_in_the_projects_task(project: Project, registered: Callable[..., ModelVersionInfo]) -> None:
    """A regression project: lower RMSE wins, predictions outside [0, 1] are fine (no explicit task given)."""
    from noria.config import load_project
    from noria.registry import Evaluation, InvarianceResult

    config = project.root / "noria.yaml"
    config.write_text(
        config.read_text().replace("  name: flight-delay\n", "  name: flight-delay\n  task: regression\n")
    )
    regression = load_project(project.root, environ={})
    values = np.linspace(60.0, 300.0, 40)

    def rmse(value: float) -> Evaluation:
        return Evaluation.from_arrays(
            {"rmse": value, "mae": value * 0.8}, values, invariance=InvarianceResult((), 0.0), holdout_id="h"
        )

    v1, v2, v3 = registered(), registered(), registered()
    first = promote_if_better(regression, NAME, v1.version, rmse(20.0))
    assert first.promoted, first.reason
    worse = promote_if_better(regression, NAME, v2.version, rmse(21.0))
    assert not worse.promoted and "lower is better" in worse.reason and champion(project) == 1
    record_evaluation(regression, NAME, v3.version, rmse(18.0))
    better = promote(regression, NAME, v3.version, reason="lower RMSE")
    assert better.promoted and champion(project) == 3
