"""The task's words in the monitoring report: metric names, units, directions, the score's label.

Titles and axis labels come from the project's task (:mod:`noria.tasks`: the positive class's
name, the target's name and unit, the classes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from noria.tasks import Task

METRIC_NAMES = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "log_loss": "log loss",
    "brier": "Brier score",
    "ece": "ECE",
    "precision": "precision",
    "recall": "recall",
    "flagged_rate": "share flagged",
    "base_rate": "positive rate",
    "mean_score": "mean score",
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "mean_confidence": "mean confidence",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R\u00b2",
    "bias": "bias",
    "mean_label": "mean label",
    "mean_prediction": "mean prediction",
}
UNIT_METRICS = frozenset({"rmse", "mae", "bias", "mean_label", "mean_prediction"})  # in the target's unit
SHARE_METRICS = frozenset({"precision", "recall", "flagged_rate", "base_rate", "accuracy"})
DAILY = {
    "binary": ("roc_auc", "precision", "recall"),
    "multiclass": ("accuracy", "log_loss"),
    "regression": ("rmse", "mae"),
}


def positive_name(task: Task) -> str:
    """The positive class of a binary task in the project's words (``model.target.name``)."""
    label = task.label_name
    return f"the positive class ({label})" if label and label != "decision" else "the positive class"


def target_name(task: Task) -> str:
    """What a regression model predicts, in the project's words (``model.target.name``)."""
    return task.label_name if task.label_name and task.label_name != "prediction" else "the target"


def with_unit(text: str, task: Task) -> str:
    return f"{text} ({task.unit})" if task.unit else text


def score_label(task: Task) -> str:
    """What the served score is: a probability, the predicted class's probability, or the predicted value."""
    if task.name == "binary":
        return f"predicted probability of {positive_name(task)}"
    if task.name == "multiclass":
        return "probability of the predicted class (confidence)"
    return with_unit(f"predicted {target_name(task)}", task)


def metric_name(metric: str, task: Task) -> str:
    """A metric's display name; the regression errors carry the target's unit."""
    name = METRIC_NAMES.get(metric) or (f"share of {metric[6:]}" if metric.startswith("share_") else metric)
    if metric == "base_rate" and task.label_name and task.label_name != "decision":
        name = f"rate of {task.label_name}"
    return with_unit(name, task) if task.name == "regression" and metric in UNIT_METRICS else name


def better(metric: str, task: Task) -> str:
    """Which way ``metric`` is better ("higher is better", "lower is better"; "" when it has no direction)."""
    higher = task.metric_directions.get(metric)
    return "" if higher is None else "higher is better" if higher else "lower is better"


def direction(metric: str, task: Task) -> str:
    way = better(metric, task)
    return f" ({way})" if way else ""


__all__ = [
    "DAILY",
    "METRIC_NAMES",
    "SHARE_METRICS",
    "UNIT_METRICS",
    "better",
    "direction",
    "metric_name",
    "positive_name",
    "score_label",
    "target_name",
    "with_unit",
]
