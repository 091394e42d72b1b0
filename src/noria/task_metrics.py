"""Metrics of a model's predictions against labels, in the task's terms (holdout and live alike).

One function, :func:`task_metrics`, for both places a model is judged: the training holdout
(:mod:`noria.training.evaluation`) and the delayed labels of served predictions
(:mod:`noria.monitoring.feedback`), so "live AUC vs holdout AUC" compares the same computation.

=====================  ==================================================================
binary                 roc_auc, pr_auc (average precision), log_loss, brier, ece, precision,
                       recall, flagged_rate (at the decision threshold), base_rate, mean_score
multiclass             log_loss, accuracy, macro_f1, brier (multi-class), ece (of the top
                       label's probability), mean_confidence
regression             rmse, mae, r2, bias (mean prediction - mean label), mean_label,
                       mean_prediction
=====================  ==================================================================

Predictions: binary, P(positive) per row; multiclass, one row of K probabilities per row (class
order = ``model.target.classes``); regression, the value. Labels: 0/1, the class index, the
number. A metric that cannot be computed (one class present, too few rows) is None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from noria.errors import DataError

if TYPE_CHECKING:
    from noria.tasks import Task

Metrics = dict[str, float | None]


def check_inputs(task: Task, y: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as float arrays of matching shape, checked for the task."""
    labels = np.asarray(y, dtype=np.float64).ravel()
    values = np.asarray(pred, dtype=np.float64)
    if task.name == "multiclass":
        k = len(task.classes)
        if values.ndim != 2 or values.shape != (len(labels), k):
            raise DataError(
                f"{len(labels)} labels but predictions of shape {values.shape} (expected {len(labels)} x {k})",
                fix="pass one row of class probabilities per label",
            )
    else:
        values = values.ravel()
        if values.shape != labels.shape:
            raise DataError(
                f"{len(labels)} labels but {len(values)} predictions", fix="score exactly the labelled rows"
            )
    if len(labels) == 0:
        raise DataError("no rows to evaluate", fix="evaluate on a non-empty set of labelled rows")
    if not np.isfinite(values).all():
        raise DataError("predictions hold NaN or infinite values", fix="check the model's inputs")
    if task.name == "binary" and (not np.isin(labels, (0.0, 1.0)).all() or values.min() < 0 or values.max() > 1):
        raise DataError("binary labels must be 0/1 and predictions probabilities", fix="drop unlabelled rows first")
    if task.name == "multiclass" and not np.isin(labels, np.arange(len(task.classes))).all():
        raise DataError("class labels must be class indexes", fix="encode labels as their index in the classes")
    return labels, values


def task_metrics(task: Task, y: Any, pred: Any, *, threshold: float = 0.5, min_rows: int = 1) -> Metrics:
    """The task's metrics of ``pred`` against ``y`` (see the module docstring)."""
    labels, values = check_inputs(task, y, pred)
    if task.name == "binary":
        return _binary(labels, values, threshold, min_rows)
    if task.name == "multiclass":
        return _multiclass(labels, values, len(task.classes))
    return _regression(labels, values)


def _binary(y: np.ndarray, p: np.ndarray, threshold: float, min_rows: int) -> Metrics:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    positives = float(y.sum())
    ranked = 0 < positives < len(y) and len(y) >= min_rows
    flagged = p >= threshold
    hits = float((flagged & (y == 1)).sum())
    return {
        "rows": float(len(y)),
        "roc_auc": float(roc_auc_score(y, p)) if ranked else None,
        "pr_auc": float(average_precision_score(y, p)) if ranked else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p, labels=[0, 1])),
        "ece": reliability(y, p)[1],
        "precision": hits / float(flagged.sum()) if flagged.any() else None,
        "recall": hits / positives if positives else None,
        "flagged_rate": float(flagged.mean()),
        "base_rate": float(y.mean()),
        "mean_score": float(p.mean()),
    }


def _multiclass(y: np.ndarray, p: np.ndarray, k: int) -> Metrics:
    from sklearn.metrics import f1_score, log_loss

    codes = y.astype(np.int64)
    predicted = p.argmax(axis=1)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(codes)), codes] = 1.0
    confidence = p.max(axis=1)
    correct = (predicted == codes).astype(np.float64)
    return {
        "rows": float(len(y)),
        "log_loss": float(log_loss(codes, np.clip(p, 1e-15, 1.0), labels=list(range(k)))),
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1_score(codes, predicted, labels=list(range(k)), average="macro", zero_division=0)),
        "brier": float(((p - onehot) ** 2).sum(axis=1).mean()),
        "ece": reliability(correct, confidence)[1],
        "mean_confidence": float(confidence.mean()),
    }


def _regression(y: np.ndarray, v: np.ndarray) -> Metrics:
    error = v - y
    spread = float(((y - y.mean()) ** 2).sum())
    return {
        "rows": float(len(y)),
        "rmse": float(np.sqrt((error**2).mean())),
        "mae": float(np.abs(error).mean()),
        "r2": 1.0 - float((error**2).sum()) / spread if len(y) > 1 and spread > 0 else None,
        "bias": float(error.mean()),
        "mean_label": float(y.mean()),
        "mean_prediction": float(v.mean()),
    }


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[list[dict[str, Any]], float]:
    """Non-empty equal-width bins of ``p`` (low, high, mean predicted, observed rate, count) and the ECE.

    Binary: the positive class's probability against the label. Multi-class: the top label's
    probability against whether it was right (``y`` = 1 when right).
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], p)  # scikit-learn's calibration_curve assignment
    count = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    filled = np.flatnonzero(count)
    mean_p = predicted[filled] / count[filled]
    rate = observed[filled] / count[filled]
    ece = float(np.sum(count[filled] * np.abs(rate - mean_p)) / max(len(p), 1))
    table = [
        {"low": float(edges[i]), "high": float(edges[i + 1]), "mean_predicted": float(m), "observed": float(o)}
        | {"count": int(count[i])}
        for i, m, o in zip(filled, mean_p, rate, strict=True)
    ]
    return table, ece


def primary(task: Task, metrics: Metrics) -> float | None:
    """The task's primary (gate) metric out of a metrics dict."""
    return metrics.get(task.primary_metric)


def kpi_default(task: Task) -> str:
    """The metric a project's KPI is, unless it names another: recall, accuracy, MAE."""
    return {"binary": "recall", "multiclass": "accuracy", "regression": "mae"}[task.name]


__all__ = ["Metrics", "check_inputs", "kpi_default", "primary", "reliability", "task_metrics"]
