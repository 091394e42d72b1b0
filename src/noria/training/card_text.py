"""The model card's sentences: what the model predicts, the default intended use and users, the
notes under the metrics table and the limits the numbers reveal.

The limits are measured, not written by hand: drift of the label between the train and test
periods, miscalibration or bias, a gap between validation and holdout, slices too small to
judge, the weakest measured slice. :mod:`noria.training.card` lays the card out around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from noria.tasks import Task
from noria.training import _plots
from noria.training.evaluation import Evaluation

# The validation curve's metric that matches the holdout's primary metric.
_VALIDATION_OF = {"binary": "auc", "multiclass": "multi_logloss", "regression": "rmse"}


def what(task: Task, label: str) -> str:
    """What the model predicts, in words."""
    if task.name == "multiclass":
        return f"the probability of each class of {label} ({', '.join(task.classes)}; they sum to 1)"
    if task.name == "regression":
        name = task.label_name if task.label_name not in ("", "prediction") else label
        return f"{name}" + (f", in {task.unit}" if task.unit else "")
    return f"the probability that {label} = 1"


def users(task: Task, label: str) -> str:
    """The card's users when the project has not written them down."""
    return (
        f"Whoever calls the service: each answer gives {what(task, label)}, with its largest contributions "
        "in words. Who acts on the answers, and which decision rests on them, is for the project to write down."
    )


def intended_use(task: Task, label: str) -> str:
    """The card's intended use when the project has not written it down."""
    scope = "for rows like those it was trained on (same entities, same kind of period)"
    if task.name == "multiclass":
        return (
            f"Estimate how likely each outcome of {label} ({', '.join(task.classes)}) is, {scope}. "
            "Use the probabilities, not only the most likely class: close calls are common."
        )
    if task.name == "regression":
        return f"Estimate {what(task, label)}, {scope}. A point estimate: read it with the error sizes under Residuals."
    return (
        f"Rank rows by their risk of {label} = 1, {scope}. "
        "Decision support: choose the decision threshold for the use case."
    )


def metric_notes(task: Task, ev: Evaluation) -> str:
    """How to read the holdout metrics, under the metrics table."""
    m = ev.metrics
    if task.name == "binary" and ev.threshold is not None:
        t = ev.threshold
        return (
            f"At threshold {t['threshold']:.2f}: {t['flagged_rate']:.1%} of rows flagged, precision "
            f"{t['precision']:.3f}, recall {t['recall']:.3f}. "
            f"Observed positive rate {float(m.get('base_rate') or 0.0):.1%}."
        )
    if task.name == "multiclass":
        return (
            f"Accuracy {fmt(m.get('accuracy'), 3)} (the most probable class is right this often); mean probability "
            f"of the predicted class {fmt(m.get('mean_confidence'), 3)}. Log loss: lower is better; a model "
            f"that knows nothing about {len(task.classes)} equally likely classes scores {_uniform_loss(task):.3f}."
        )
    unit = f" {task.unit}" if task.unit else ""
    return (
        f"RMSE {fmt(m.get('rmse'), 3)}{unit}, MAE {fmt(m.get('mae'), 3)}{unit}, R² {fmt(m.get('r2'), 3)}; "
        f"predictions average {fmt(m.get('mean_prediction'), 3)}{unit} against an actual mean of "
        f"{fmt(m.get('mean_label'), 3)}{unit} "
        f"(bias {fmt(m.get('bias'), 3)}{unit})."
    )


def _uniform_loss(task: Task) -> float:
    import math

    return math.log(max(len(task.classes), 1))


def measured_limits(info: Mapping[str, Any], ev: Evaluation, task: Task) -> list[str]:
    """The limits the split, the holdout and the slices show, one sentence each."""
    out = []
    parts = (info.get("split") or {}).get("parts", {})
    train, test = parts.get("train"), parts.get("test")
    if train and test:
        where = f"Trained on {train['window']['label']} only; measured on {test['window']['label']}."
        out.append(f"{where} {_label_moved(task, train, test)} Other periods, places or entities are untested.")
    dropped = sum((info.get("split") or {}).get("dropped_unlabelled", {}).values())
    if dropped:
        out.append(
            f"{dropped} rows had no label and were left out; the model says nothing about whether a row will "
            "have a label at all."
        )
    if ev.calibration is not None and ev.calibration.expected_calibration_error > 0.02:
        ece = ev.calibration.expected_calibration_error
        if task.name == "multiclass":
            out.append(
                f"The predicted class's probability is off by {ece:.3f} on average on the holdout (calibration "
                "error): recalibrate before reading the probabilities as chances."
            )
        else:
            out.append(
                f"Probabilities are off by {ece:.3f} on average on the holdout (calibration error): "
                "read scores as a ranking, or recalibrate before using them as probabilities."
            )
    if task.name == "regression":
        bias, spread = ev.metrics.get("bias"), (ev.residuals or {}).get("label_std")
        if bias is not None and spread and abs(bias) > 0.1 * spread:
            unit = f" {task.unit}" if task.unit else ""
            side = "high" if bias > 0 else "low"
            out.append(f"Predictions are {abs(bias):.3g}{unit} too {side} on average on the holdout (bias).")
    gap = _validation_gap(info, ev, task)
    if gap is not None:
        out.append(gap)
    skipped = [s for s in ev.slices if s.status == "skipped"]
    if skipped:
        why = "too small or single-class" if task.name == "binary" else "too small"
        out.append(f"{len(skipped)} slice values were {why} to measure (see Slices).")
    metric = ev.primary_metric
    measured = [s for s in ev.slices if s.metrics and s.metrics.get(metric) is not None]
    if measured:
        pick = min if ev.higher_is_better else max
        worst = pick(measured, key=lambda s: float((s.metrics or {}).get(metric) or 0.0))
        value = float((worst.metrics or {}).get(metric) or 0.0)
        out.append(
            f"Weakest measured slice: {worst.slice} = {worst.value} ({_plots.metric_label(metric)} {value:.3f}, "
            f"{worst.rows} rows)."
        )
    return out


def _label_moved(task: Task, train: Mapping[str, Any], test: Mapping[str, Any]) -> str:
    """How the label differs between the train and test periods, in the task's terms."""
    if task.name == "multiclass":
        before, after = train.get("class_shares") or {}, test.get("class_shares") or {}
        moves = ", ".join(f"{c} {before.get(c, 0.0):.1%} -> {after.get(c, 0.0):.1%}" for c in task.classes)
        largest = max((abs(after.get(c, 0.0) - before.get(c, 0.0)) for c in task.classes), default=0.0)
        if largest >= 0.03:
            return f"Class shares moved between them ({moves}): expect drift."
        return f"Class shares were close in both ({moves}); other periods may differ."
    if task.name == "regression":
        unit = f" {task.unit}" if task.unit else ""
        mean_a, mean_b, std_a, std_b = (train.get("mean"), test.get("mean"), train.get("std"), test.get("std"))
        numbers = (
            f"from {fmt(mean_a, 3)} to {fmt(mean_b, 3)}{unit} (spread, std, from {fmt(std_a, 3)} to {fmt(std_b, 3)})"
        )
        if mean_a is None or mean_b is None or std_a is None or std_b is None:
            return f"The label's mean went {numbers}."
        tolerance = 0.1 * float(std_a)  # a tenth of the training spread
        shifted = abs(float(mean_b) - float(mean_a)) > tolerance or abs(float(std_b) - float(std_a)) > tolerance
        if shifted:
            return f"The label's mean moved {numbers} between them: expect drift."
        return f"The label's mean went {numbers}: close in both; other periods may differ."
    return (
        f"The positive rate moved from {train['positive_rate']:.1%} to {test['positive_rate']:.1%} between them: "
        "expect drift."
    )


def _validation_gap(info: Mapping[str, Any], ev: Evaluation, task: Task) -> str | None:
    """A holdout clearly worse than the validation slice at the best iteration."""
    valid = (info.get("validation") or {}).get(_VALIDATION_OF[task.name])
    holdout = ev.primary()
    if valid is None or holdout is None:
        return None
    name = _plots.metric_label(ev.primary_metric)
    if task.name == "binary":
        gap = float(valid) - holdout
        if gap > 0.02:
            return f"Holdout ROC AUC is {gap:.3f} below the validation AUC: performance decays after training."
    elif task.name == "multiclass":
        gap = holdout - float(valid)
        if gap > 0.02:
            return f"Holdout {name} is {gap:.3f} above the validation {name}: performance decays after training."
    elif float(valid) > 0 and holdout > 1.1 * float(valid):
        share = holdout / float(valid) - 1.0
        return f"Holdout {name} is {share:.0%} above the validation {name}: performance decays after training."
    return None


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals, or ``n/a``."""
    return "n/a" if value is None else f"{float(value):.{digits}f}"
