"""The promotion gate as a pure function: may a candidate replace the champion?

The caller evaluates both versions on the *same* holdout and hands over plain values:
overall metrics, the primary metric per slice, a summary of the holdout predictions and
the result of an invariance test. :func:`judge` decides; it touches no MLflow and no disk,
so the training code (and tests) can use it directly. Storing the outcome in the registry
is :mod:`noria.registry.promotion`'s job.

The comparison is in the task's terms (:meth:`GateConfig.for_task`): the primary metric and
its direction (binary ROC AUC up, multi-class log loss down, regression RMSE down), the same
metric per slice, and the range predictions must lie in (probabilities in [0, 1] whose rows
sum to 1 for a multi-class model; any finite value for a regression).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from noria.errors import ValidationError
from noria.registry.config import GateConfig

if TYPE_CHECKING:
    from noria.tasks import Task

# A multi-class model's probabilities of one row must sum to 1 within this.
ROW_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PredictionSummary:
    """What the gate needs to know about holdout predictions (kept instead of the array).

    ``predictions`` are one value per row, or an (n, K) matrix of class probabilities; for
    the latter ``row_sum_error`` is the largest distance of a row's sum from 1.
    """

    count: int
    minimum: float | None
    maximum: float | None
    invalid: int = 0  # NaN or infinite
    outputs: int = 1  # values per row (K for a multi-class model)
    row_sum_error: float | None = None

    @classmethod
    def of(cls, predictions: ArrayLike) -> PredictionSummary:
        array = np.asarray(predictions, dtype=np.float64)
        outputs = int(array.shape[1]) if array.ndim == 2 and array.shape[1] > 1 else 1
        values = array.ravel()
        finite = values[np.isfinite(values)]
        row_sum_error = None
        if outputs > 1:
            sums = array.sum(axis=1)
            sums = sums[np.isfinite(sums)]
            row_sum_error = float(np.abs(sums - 1.0).max()) if sums.size else None
        return cls(
            count=int(array.shape[0]) if array.ndim == 2 else int(values.size),
            minimum=float(finite.min()) if finite.size else None,
            maximum=float(finite.max()) if finite.size else None,
            invalid=int(values.size - finite.size),
            outputs=outputs,
            row_sum_error=row_sum_error,
        )


@dataclass(frozen=True)
class InvarianceResult:
    """How far predictions moved when fields the model must ignore were changed."""

    fields: tuple[str, ...]
    max_change: float
    rows: int = 0

    @classmethod
    def of(cls, fields: Sequence[str], before: ArrayLike, after: ArrayLike) -> InvarianceResult:
        a = np.asarray(before, dtype=np.float64).ravel()
        b = np.asarray(after, dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise ValidationError(
                f"invariance check: {a.size} predictions before but {b.size} after changing {list(fields)}",
                fix="predict the same rows twice, changing only the irrelevant fields",
            )
        change = float(np.max(np.abs(a - b))) if a.size else 0.0
        return cls(tuple(fields), change if math.isfinite(change) else math.inf, int(a.size))


@dataclass(frozen=True)
class Evaluation:
    """One model version's results on a holdout."""

    metrics: Mapping[str, float]
    slices: Mapping[str, float] = field(default_factory=dict)
    predictions: PredictionSummary | None = None
    invariance: InvarianceResult | None = None
    holdout_id: str = ""  # e.g. "<snapshot>:2013-07..2013-12"; both sides must match

    @classmethod
    def from_arrays(
        cls,
        metrics: Mapping[str, float],
        predictions: ArrayLike,
        *,
        slices: Mapping[str, float] | None = None,
        invariance: InvarianceResult | None = None,
        holdout_id: str = "",
    ) -> Evaluation:
        return cls(dict(metrics), dict(slices or {}), PredictionSummary.of(predictions), invariance, holdout_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "slices": {k: float(v) for k, v in self.slices.items()},
            "predictions": None if self.predictions is None else asdict(self.predictions),
            "invariance": None
            if self.invariance is None
            else {**asdict(self.invariance), "fields": list(self.invariance.fields)},
            "holdout_id": self.holdout_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        pred = data.get("predictions")
        inv = data.get("invariance")
        return cls(
            metrics={k: float(v) for k, v in (data.get("metrics") or {}).items()},
            slices={k: float(v) for k, v in (data.get("slices") or {}).items()},
            predictions=None if pred is None else PredictionSummary(**pred),
            invariance=None
            if inv is None
            else InvarianceResult(tuple(inv["fields"]), float(inv["max_change"]), int(inv.get("rows", 0))),
            holdout_id=str(data.get("holdout_id") or ""),
        )


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    checks: tuple[Check, ...]
    candidate_metric: float
    champion_metric: float | None


def _metric(evaluation: Evaluation, name: str, who: str) -> float:
    if name not in evaluation.metrics:
        known = ", ".join(sorted(evaluation.metrics)) or "none"
        raise ValidationError(
            f"the {who}'s evaluation has no {name!r} metric (it has: {known})",
            fix="evaluate both versions with registry.gate.primary_metric, or change that setting",
        )
    return float(evaluation.metrics[name])


def _behaviour(candidate: Evaluation, gate: GateConfig) -> list[Check]:
    checks = []
    pred = candidate.predictions
    if pred is None:
        ok = not gate.require_behaviour_checks
        checks.append(Check("prediction_range", ok, "no holdout predictions were summarised"))
    else:
        lo, hi = gate.prediction_min, gate.prediction_max
        bad = pred.invalid > 0 or pred.count == 0
        bad = bad or (lo is not None and pred.minimum is not None and pred.minimum < lo)
        bad = bad or (hi is not None and pred.maximum is not None and pred.maximum > hi)
        allowed = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        what = (
            f"{pred.count} rows of {pred.outputs} class probabilities"
            if pred.outputs > 1
            else f"{pred.count} predictions"
        )
        detail = f"{what} in [{pred.minimum}, {pred.maximum}], {pred.invalid} NaN/inf; allowed {allowed}"
        if pred.row_sum_error is not None:
            sums_ok = pred.row_sum_error <= ROW_SUM_TOLERANCE
            bad = bad or not sums_ok
            detail += f"; rows sum to 1 within {pred.row_sum_error:.3g} (allowed {ROW_SUM_TOLERANCE:g})"
        checks.append(Check("prediction_range", not bad, detail))
    inv = candidate.invariance
    if inv is None:
        ok = not gate.require_behaviour_checks
        checks.append(Check("invariance", ok, "no invariance test was run"))
    else:
        ok = inv.max_change <= gate.invariance_tolerance
        detail = (
            f"changing {', '.join(inv.fields) or '(no fields)'} moved predictions "
            f"by up to {inv.max_change:.3g} "
            f"(tolerance {gate.invariance_tolerance:.3g})"
        )
        checks.append(Check("invariance", ok, detail))
    return checks


def _against_champion(candidate: Evaluation, champion: Evaluation, gate: GateConfig) -> list[Check]:
    checks = []
    if candidate.holdout_id and champion.holdout_id and candidate.holdout_id != champion.holdout_id:
        detail = f"evaluated on different holdouts ({candidate.holdout_id!r} vs champion {champion.holdout_id!r})"
        checks.append(Check("same_holdout", False, detail))
    else:
        checks.append(
            Check("same_holdout", True, f"holdout {candidate.holdout_id or champion.holdout_id or '(unnamed)'}")
        )
    sign = 1.0 if gate.higher_is_better else -1.0
    metric = str(gate.primary_metric)
    new, old = _metric(candidate, metric, "candidate"), _metric(champion, metric, "champion")
    gain = sign * (new - old)
    ok = gain >= gate.min_delta - 1e-12
    checks.append(
        Check(
            "beats_champion",
            ok,
            f"{metric} {new:.4f} vs champion {old:.4f}: improvement {gain:+.4f} "
            f"({'>=' if ok else '<'} min_delta {gate.min_delta}; {'higher' if sign > 0 else 'lower'} is better)",
        )
    )
    collapsed, missing = [], []
    for name, old_value in sorted(champion.slices.items()):
        if name not in candidate.slices:
            missing.append(name)
            continue
        new_value = candidate.slices[name]
        if math.isnan(old_value) or math.isnan(new_value):
            continue  # e.g. AUC of a one-class slice: undefined on at least one side
        drop = sign * (old_value - new_value)
        if drop > gate.max_slice_drop + 1e-12:
            collapsed.append(f"{name} {old_value:.4f} -> {new_value:.4f}")
    if missing:
        checks.append(Check("slices", False, f"slices missing from the candidate: {', '.join(missing)}"))
    elif collapsed:
        checks.append(
            Check(
                "slices",
                False,
                f"slices worse than the champion by more than {gate.max_slice_drop}: {'; '.join(collapsed)}",
            )
        )
    else:
        checks.append(
            Check("slices", True, f"{len(champion.slices)} slices within {gate.max_slice_drop} of the champion")
        )
    return checks


def judge(
    candidate: Evaluation, champion: Evaluation | None, gate: GateConfig, task: Task | str | None = None
) -> Verdict:
    """Pass only if every behavioural check holds and (if there is a champion) the candidate beats it.

    Settings ``gate`` leaves unset come from ``task`` (default binary; see :meth:`GateConfig.for_task`).
    """
    gate = gate.for_task(task)
    metric = str(gate.primary_metric)
    new = _metric(candidate, metric, "candidate")
    checks = _behaviour(candidate, gate)
    old = None
    if champion is not None:
        old = _metric(champion, metric, "champion")
        checks += _against_champion(candidate, champion, gate)
    failed = [c for c in checks if not c.passed]
    if failed:
        reason = "; ".join(f"{c.name}: {c.detail}" for c in failed)
    elif champion is None:
        reason = f"no champion yet; {metric} {new:.4f}; behavioural checks passed"
    else:
        reason = next(c.detail for c in checks if c.name == "beats_champion") + "; behavioural checks passed"
    return Verdict(not failed, reason, tuple(checks), new, old)
