"""The gate as a pure function: min_delta, slices, prediction range, invariance, holdouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from registry_helpers import evaluation

from noria.errors import ValidationError
from noria.registry import Evaluation, GateConfig, InvarianceResult, PredictionSummary, judge

GATE = GateConfig(min_delta=0.01, max_slice_drop=0.05)


def failed(verdict: object) -> set[str]:
    return {c.name for c in verdict.checks if not c.passed}  # type: ignore[attr-defined]


def test_first_version_needs_only_the_behavioural_checks() -> None:
    verdict = judge(evaluation(0.6), None, GATE)
    assert verdict.passed
    assert verdict.champion_metric is None
    assert "no champion yet" in verdict.reason


def test_beats_champion_by_min_delta() -> None:
    verdict = judge(evaluation(0.71), evaluation(0.70), GATE)
    assert verdict.passed, verdict.reason
    assert "+0.0100" in verdict.reason


def test_not_enough_improvement_is_refused() -> None:
    verdict = judge(evaluation(0.705), evaluation(0.70), GATE)
    assert not verdict.passed
    assert failed(verdict) == {"beats_champion"}
    assert "min_delta 0.01" in verdict.reason


def test_lower_is_better_metric() -> None:
    gate = GateConfig(primary_metric="log_loss", higher_is_better=False, min_delta=0.01, max_slice_drop=1.0)
    better = Evaluation.from_arrays({"log_loss": 0.40}, [0.2], invariance=InvarianceResult((), 0.0))
    worse = Evaluation.from_arrays({"log_loss": 0.45}, [0.2], invariance=InvarianceResult((), 0.0))
    assert judge(better, worse, gate).passed
    assert not judge(worse, better, gate).passed


def test_slice_collapse_is_refused_even_when_overall_improves() -> None:
    champion = evaluation(0.70, slices={"origin=EWR": 0.70, "origin=JFK": 0.72})
    candidate = evaluation(0.75, slices={"origin=EWR": 0.80, "origin=JFK": 0.60})
    verdict = judge(candidate, champion, GATE)
    assert not verdict.passed
    assert failed(verdict) == {"slices"}
    assert "origin=JFK 0.7200 -> 0.6000" in verdict.reason


def test_slice_drop_within_margin_passes_and_undefined_slices_are_skipped() -> None:
    champion = evaluation(0.70, slices={"a": 0.70, "b": math.nan})
    candidate = evaluation(0.75, slices={"a": 0.66, "b": 0.1})
    assert judge(candidate, champion, GATE).passed


def test_missing_slice_is_refused() -> None:
    verdict = judge(evaluation(0.75, slices={"a": 0.7}), evaluation(0.7, slices={"a": 0.7, "b": 0.7}), GATE)
    assert failed(verdict) == {"slices"}
    assert "missing" in verdict.reason


@pytest.mark.parametrize(
    "predictions",
    [np.array([0.1, 1.2]), np.array([-0.01, 0.5]), np.array([0.2, np.nan]), np.array([0.2, np.inf])],
)
def test_predictions_outside_0_1_are_refused(predictions: np.ndarray) -> None:
    verdict = judge(evaluation(0.9, predictions=predictions), evaluation(0.7), GATE)
    assert not verdict.passed
    assert "prediction_range" in failed(verdict)


def test_invariance_failure_is_refused() -> None:
    bad = Evaluation.from_arrays(
        {"roc_auc": 0.9}, [0.5], invariance=InvarianceResult.of(["flight"], [0.2, 0.3], [0.2, 0.35])
    )
    verdict = judge(bad, None, GATE)
    assert failed(verdict) == {"invariance"}
    assert "flight" in verdict.reason


def test_missing_behaviour_inputs_fail_unless_allowed() -> None:
    bare = Evaluation({"roc_auc": 0.9})
    assert failed(judge(bare, None, GATE)) == {"prediction_range", "invariance"}
    assert judge(bare, None, GATE.model_copy(update={"require_behaviour_checks": False})).passed


def test_different_holdouts_are_refused() -> None:
    champion = Evaluation(**{**evaluation(0.7).__dict__, "holdout_id": "other"})
    verdict = judge(evaluation(0.9), champion, GATE)
    assert failed(verdict) == {"same_holdout"}


def test_missing_primary_metric_names_what_exists() -> None:
    with pytest.raises(ValidationError) as err:
        judge(Evaluation({"accuracy": 0.9}), None, GATE)
    assert "'roc_auc'" in err.value.message and "accuracy" in err.value.message


def test_evaluation_round_trips_through_json() -> None:
    original = evaluation(0.71)
    again = Evaluation.from_dict(original.to_dict())
    assert again == Evaluation(
        dict(original.metrics), dict(original.slices), original.predictions, original.invariance, original.holdout_id
    )


def test_summaries() -> None:
    s = PredictionSummary.of([0.1, np.nan, 0.9])
    assert (s.count, s.minimum, s.maximum, s.invalid) == (3, 0.1, 0.9, 1)
    with pytest.raises(ValidationError):
        InvarianceResult.of(["x"], [0.1, 0.2], [0.1])
    assert InvarianceResult.of(["x"], [0.1, 0.2], [0.1, 0.25]).max_change == pytest.approx(0.05)


def test_gate_config_is_strict() -> None:
    with pytest.raises(ValueError):
        GateConfig(prediction_min=1.0, prediction_max=0.0)
    with pytest.raises(ValueError):
        GateConfig(min_delta=-0.1)
    with pytest.raises(ValueError):
        GateConfig.model_validate({"min_detla": 0.1})
