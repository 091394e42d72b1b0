"""The gate as a pure function: min_delta, slices, prediction range, invariance, holdouts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from registry_helpers import evaluation

from noria.errors import ConfigError, ValidationError
from noria.registry import Evaluation, GateConfig, InvarianceResult, PredictionSummary, judge
from noria.tasks import MulticlassTask

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


# --- tasks: the primary metric, its direction and the prediction range come from the task ----------


def task_evaluation(metrics: dict[str, float], predictions: Any, slices: dict[str, float] | None = None) -> Evaluation:
    return Evaluation.from_arrays(
        metrics, predictions, slices=slices or {}, invariance=InvarianceResult((), 0.0), holdout_id="h"
    )


def test_gate_settings_default_to_the_tasks() -> None:
    binary, multi, reg = (
        GateConfig().for_task(t) for t in ("binary", MulticlassTask(classes=("H", "D")), "regression")
    )
    assert (binary.primary_metric, binary.higher_is_better, binary.prediction_min, binary.prediction_max) == (
        "roc_auc", True, 0.0, 1.0,
    )  # fmt: skip
    assert (multi.primary_metric, multi.higher_is_better, multi.prediction_min, multi.prediction_max) == (
        "log_loss", False, 0.0, 1.0,
    )  # fmt: skip
    assert (reg.primary_metric, reg.higher_is_better, reg.prediction_min, reg.prediction_max) == (
        "rmse", False, None, None,
    )  # fmt: skip
    assert GateConfig().for_task(None) == binary
    # a named metric takes its own direction; explicit settings win
    assert GateConfig(primary_metric="accuracy").for_task("multiclass").higher_is_better is True
    assert GateConfig(primary_metric="mae").for_task("regression").higher_is_better is False
    assert GateConfig(primary_metric="r2", higher_is_better=True).for_task("regression").higher_is_better is True
    assert GateConfig(prediction_min=40.0, prediction_max=400.0).for_task("regression").prediction_max == 400.0
    with pytest.raises(ConfigError, match="higher_is_better"):
        GateConfig(primary_metric="my_score").for_task("regression")
    with pytest.raises(ConfigError, match="prediction_min"):
        GateConfig(prediction_min=2.0).for_task("binary")


def test_multiclass_gate_wants_a_lower_log_loss_overall_and_per_slice() -> None:
    probabilities = np.tile([0.5, 0.3, 0.2], (20, 1))
    champion = task_evaluation({"log_loss": 0.95}, probabilities, {"phase=early": 1.0, "phase=late": 0.9})
    better = task_evaluation({"log_loss": 0.90}, probabilities, {"phase=early": 0.97, "phase=late": 0.93})
    verdict = judge(better, champion, GATE, "multiclass")
    assert verdict.passed, verdict.reason
    assert (
        "log_loss 0.9000 vs champion 0.9500: improvement +0.0500" in verdict.reason
        and "lower is better" in verdict.reason
    )
    worse = task_evaluation({"log_loss": 0.99}, probabilities, {"phase=early": 1.0, "phase=late": 0.9})
    assert failed(judge(worse, champion, GATE, "multiclass")) == {"beats_champion"}
    # a slice whose log loss rose by more than max_slice_drop fails even though the whole improved
    collapsed = task_evaluation({"log_loss": 0.90}, probabilities, {"phase=early": 0.8, "phase=late": 0.97})
    verdict = judge(collapsed, champion, GATE, "multiclass")
    assert failed(verdict) == {"slices"} and "phase=late 0.9000 -> 0.9700" in verdict.reason


def test_multiclass_rows_must_be_probabilities_summing_to_one() -> None:
    ok = task_evaluation({"log_loss": 0.9}, np.tile([0.5, 0.3, 0.2], (20, 1)))
    assert judge(ok, None, GATE, "multiclass").passed
    summary = ok.predictions
    assert summary is not None and (summary.count, summary.outputs) == (20, 3)
    assert summary.row_sum_error is not None and summary.row_sum_error < 1e-12
    not_summing = task_evaluation({"log_loss": 0.9}, np.tile([0.5, 0.3, 0.3], (20, 1)))
    verdict = judge(not_summing, None, GATE, "multiclass")
    assert failed(verdict) == {"prediction_range"} and "rows sum to 1 within 0.1" in verdict.reason
    above_one = task_evaluation({"log_loss": 0.9}, np.tile([1.2, -0.1, -0.1], (20, 1)))
    assert failed(judge(above_one, None, GATE, "multiclass")) == {"prediction_range"}
    again = Evaluation.from_dict(ok.to_dict())
    assert again.predictions == ok.predictions


def test_regression_gate_wants_a_lower_rmse_and_finite_values_of_any_size() -> None:
    values = np.linspace(60.0, 300.0, 50)
    champion = task_evaluation({"rmse": 20.0}, values, {"day_of_week=0": 19.0})
    better = task_evaluation({"rmse": 18.0}, values, {"day_of_week=0": 18.5})
    verdict = judge(better, champion, GATE, "regression")
    assert verdict.passed, verdict.reason  # values far outside [0, 1] are fine for a regression
    assert not judge(champion, better, GATE, "regression").passed
    broken = task_evaluation({"rmse": 18.0}, np.append(values, np.nan))
    verdict = judge(broken, None, GATE, "regression")
    assert failed(verdict) == {"prediction_range"} and "1 NaN/inf; allowed [-inf, inf]" in verdict.reason
    bounded = GateConfig(prediction_min=40.0, prediction_max=250.0)
    assert failed(judge(better, None, bounded, "regression")) == {"prediction_range"}
    # the same values judged as a binary model's are out of range
    assert "prediction_range" in failed(judge(task_evaluation({"roc_auc": 0.8}, values), None, GATE))
