"""Evaluate predictions on a holdout in the task's terms: overall, per slice, against baselines.

The metrics are those of :func:`noria.task_metrics.task_metrics`, the same computation that
judges served predictions on delayed labels. Around them, per task:

=====================  ====================================================================
binary                 calibration (equal-width bins), ROC and PR curves, the decision
                       threshold's flagged share, precision and recall
multiclass             confusion matrix (rows: actual class, columns: predicted class) and
                       the calibration of the top label's probability
regression             residual summary: quantiles of the error (prediction - label), of its
                       size, and the error by decile of the label; a thinned sample of
                       (actual, predicted) pairs for plots
=====================  ====================================================================

Slices report the task's primary metric (ROC AUC, log loss, RMSE) per slice value, or say why
not (too few rows; for binary, a single class). An :class:`Evaluation` is plain data:
``to_dict()`` is JSON-ready for MLflow and the promotion gate, ``flat_metrics()`` gives the
``name -> float`` pairs MLflow logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from noria.errors import DataError
from noria.task_metrics import Metrics, check_inputs, task_metrics
from noria.tasks import BinaryTask, Task
from noria.training.baselines import Baseline, check_predictions
from noria.training.metrics import Calibration, calibration, hour_band, pr_points, roc_points, threshold_metrics
from noria.training.model import TrainedModel

SliceSpec = str | Callable[[pd.DataFrame], pd.Series]
MISSING_VALUE = "(missing)"
# Binary metrics MLflow has always logged (test_<name>, test_baseline_<b>_<name>), and where they
# come from in task_metrics' dict: the names stay, so runs before and after compare.
BINARY_LOGGED = {
    "roc_auc": "roc_auc",
    "pr_auc": "pr_auc",
    "log_loss": "log_loss",
    "brier": "brier",
    "positive_rate": "base_rate",
    "mean_score": "mean_score",
}
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_PLOT_POINTS = 2000


@dataclass(frozen=True)
class SliceMetrics:
    slice: str
    value: str
    rows: int
    positives: int | None  # binary: rows with label 1; None for other tasks
    status: str  # "ok" or "skipped"
    reason: str = ""
    metrics: Metrics | None = None  # task_metrics of the slice's rows


@dataclass(frozen=True)
class BaselineResult:
    name: str
    description: str
    metrics: Metrics
    roc: dict[str, list[float]] | None = None  # binary only


@dataclass
class Evaluation:
    label: str
    metrics: Metrics
    task: str = "binary"
    classes: list[str] = field(default_factory=list)
    calibration: Calibration | None = None  # binary: P(positive); multiclass: the top label's probability
    roc: dict[str, list[float]] | None = None  # binary
    pr: dict[str, list[float]] | None = None  # binary
    threshold: dict[str, float] | None = None  # binary
    confusion: dict[str, Any] | None = None  # multiclass
    residuals: dict[str, Any] | None = None  # regression
    slices: list[SliceMetrics] = field(default_factory=list)
    baselines: list[BaselineResult] = field(default_factory=list)
    primary_metric: str = "roc_auc"
    higher_is_better: bool = True
    unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def primary(self, metrics: Metrics | None = None) -> float | None:
        """The primary metric of ``metrics`` (default: the overall ones)."""
        return (self.metrics if metrics is None else metrics).get(self.primary_metric)

    def slice_table(self) -> pd.DataFrame:
        """One row per slice value: rows, positives (binary), status and the model's metrics."""
        columns = ("roc_auc", "pr_auc", "log_loss", "brier") if self.task == "binary" else tuple(self._metric_names())
        records = []
        for s in self.slices:
            row: dict[str, Any] = {"slice": s.slice, "value": s.value, "rows": s.rows, "positives": s.positives}
            row |= {"status": s.status, "reason": s.reason}
            row |= {k: s.metrics.get(k) if s.metrics else None for k in columns}
            records.append(row)
        return pd.DataFrame.from_records(records)

    def _metric_names(self) -> list[str]:
        return [k for k in self.metrics if k != "rows"]

    def flat_metrics(self, prefix: str = "test_") -> dict[str, float]:
        """``{name: value}`` for MLflow: overall, baselines (``baseline_<name>_``) and slices.

        Binary: ``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``, ``positive_rate``,
        ``mean_score`` and ``calibration_ece``; ``slice_<slice>_<value>_roc_auc``. Other tasks:
        every metric of :func:`noria.task_metrics.task_metrics` (``test_log_loss``,
        ``test_rmse``, ...) and ``slice_<slice>_<value>_<primary metric>``.
        """
        out: dict[str, float] = {}
        names = BINARY_LOGGED if self.task == "binary" else {k: k for k in self._metric_names()}

        def put(stem: str, m: Metrics) -> None:
            for key, source in names.items():
                value = m.get(source)
                if value is not None:
                    out[f"{prefix}{stem}{key}"] = float(value)

        put("", self.metrics)
        if self.task == "binary" and self.calibration is not None:
            out[f"{prefix}calibration_ece"] = self.calibration.expected_calibration_error
        for b in self.baselines:
            put(f"baseline_{_metric_name(b.name)}_", b.metrics)
        for s in self.slices:
            value = self.primary(s.metrics) if s.metrics is not None else None
            if value is not None:
                out[f"{prefix}slice_{_metric_name(s.slice)}_{_metric_name(s.value)}_{self.primary_metric}"] = value
        return out


def slice_specs(columns: Sequence[str] = (), hour_band_column: str | None = None) -> dict[str, SliceSpec]:
    """Slices by plain columns, plus ``hour_band`` derived from an hour-of-day column."""
    specs: dict[str, SliceSpec] = {col: col for col in columns}
    if hour_band_column is not None:
        hour_col = hour_band_column
        specs["hour_band"] = lambda frame: hour_band(_column(frame, hour_col, "slice"))
    return specs


def evaluate(
    model_or_scores: TrainedModel | np.ndarray | Sequence[float] | Sequence[Sequence[float]],
    frame: pd.DataFrame,
    label: str,
    *,
    task: Task | None = None,
    slices: Mapping[str, SliceSpec] | None = None,
    min_slice_rows: int = 200,
    baselines: Sequence[Baseline] = (),
    calibration_bins: int = 10,
    threshold: float = 0.5,
) -> Evaluation:
    """Predict ``frame`` (or take given predictions, one per row) and measure against ``frame[label]``.

    ``task``: the model's by default (binary for bare predictions); predictions are what
    :meth:`TrainedModel.predict` returns for it, labels as a training set holds them. A slice
    value with fewer than ``min_slice_rows`` rows (or, binary, a single class) is reported as
    skipped, with the reason, rather than given a meaningless number. ``threshold`` is the
    binary decision threshold.
    """
    if isinstance(model_or_scores, TrainedModel):
        task = task or model_or_scores.task
        predictions = model_or_scores.predict(frame)
    else:
        predictions = np.asarray(model_or_scores, dtype=np.float64)
    task = task or BinaryTask()
    y, p = check_inputs(task, _column(frame, label, "label").to_numpy(dtype=np.float64), predictions)
    if task.name == "binary" and not 0.0 < y.mean() < 1.0:
        raise DataError(
            f"the evaluation set ({len(y)} rows) holds only one class of {label!r}",
            fix="evaluate on a period that holds both classes",
        )
    results = []
    for b in baselines:
        bp = check_predictions(b.predict(frame), task, len(frame), f"baseline {b.name}")
        curve = roc_points(y, bp) if task.name == "binary" else None
        results.append(BaselineResult(b.name, b.description, task_metrics(task, y, bp, threshold=threshold), curve))
    ev = Evaluation(
        label=label,
        metrics=task_metrics(task, y, p, threshold=threshold),
        task=task.name,
        classes=list(task.classes),
        slices=_slice_metrics(task, frame, y, p, slices or {}, min_slice_rows, threshold),
        baselines=results,
        primary_metric=task.primary_metric,
        higher_is_better=task.higher_is_better,
        unit=task.unit,
    )
    if task.name == "binary":
        ev.calibration = calibration(y, p, calibration_bins)
        ev.roc, ev.pr = roc_points(y, p), pr_points(y, p)
        ev.threshold = threshold_metrics(y, p, threshold)
    elif task.name == "multiclass":
        correct = (p.argmax(axis=1) == y.astype(np.int64)).astype(np.float64)
        ev.calibration = calibration(correct, p.max(axis=1), calibration_bins)
        ev.confusion = confusion(y, p, task.classes)
    else:
        ev.residuals = residuals(y, p)
    return ev


def confusion(y: np.ndarray, p: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Counts of actual (rows) against predicted (columns) class, and each class's recall and precision."""
    k = len(classes)
    actual, predicted = y.astype(np.int64), p.argmax(axis=1)
    counts = np.bincount(actual * k + predicted, minlength=k * k).reshape(k, k)
    support, chosen = counts.sum(axis=1), counts.sum(axis=0)
    hits = np.diag(counts)
    return {
        "classes": list(classes),
        "counts": counts.tolist(),
        "recall": [float(h / n) if n else None for h, n in zip(hits, support, strict=True)],
        "precision": [float(h / n) if n else None for h, n in zip(hits, chosen, strict=True)],
    }


def residuals(y: np.ndarray, v: np.ndarray, max_points: int = _PLOT_POINTS) -> dict[str, Any]:
    """Quantiles of the error (prediction - label) and of its size, the error by decile of the
    label, and up to ``max_points`` evenly spaced (actual, predicted) pairs for plots."""
    error = v - y
    size = np.abs(error)
    edges = np.unique(np.quantile(y, np.linspace(0.0, 1.0, 11)))
    index = np.searchsorted(edges[1:-1], y, side="right") if len(edges) > 2 else np.zeros(len(y), dtype=np.int64)
    deciles = []
    for i in range(max(len(edges) - 1, 1)):
        inside = index == i
        if not inside.any():
            continue
        e = error[inside]
        deciles.append(
            {
                "low": float(y[inside].min()),
                "high": float(y[inside].max()),
                "rows": int(inside.sum()),
                "mean_label": float(y[inside].mean()),
                "mean_prediction": float(v[inside].mean()),
                "bias": float(e.mean()),
                "mae": float(np.abs(e).mean()),
                "rmse": float(np.sqrt((e**2).mean())),
            }
        )
    keep = np.unique(np.linspace(0, len(y) - 1, min(max_points, len(y))).round().astype(np.int64))
    return {
        "error_quantiles": {f"q{round(q * 100):02d}": float(np.quantile(error, q)) for q in _QUANTILES},
        "abs_error_quantiles": {f"q{round(q * 100):02d}": float(np.quantile(size, q)) for q in (0.5, 0.9, 0.99)},
        "label_std": float(y.std()),
        "prediction_std": float(v.std()),
        "by_label_decile": deciles,
        "points": {"actual": y[keep].round(6).tolist(), "predicted": v[keep].round(6).tolist()},
    }


def _slice_metrics(
    task: Task,
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    slices: Mapping[str, SliceSpec],
    min_rows: int,
    threshold: float,
) -> list[SliceMetrics]:
    out: list[SliceMetrics] = []
    binary = task.name == "binary"
    for name, spec in slices.items():
        raw = _column(frame, spec, "slice") if isinstance(spec, str) else spec(frame)
        values = np.asarray(raw, dtype=object)
        if values.shape != (len(frame),):
            raise DataError(
                f"slice {name!r} gave {values.shape[0] if values.ndim else 0} values for {len(frame)} rows",
                fix="a slice function must return one value per row of the frame",
            )
        keys = np.where(pd.isna(values), MISSING_VALUE, values.astype(str))
        for value in sorted(set(keys)):
            idx = keys == value
            rows = int(idx.sum())
            positives = int(y[idx].sum()) if binary else None
            if rows < min_rows:
                out.append(SliceMetrics(name, value, rows, positives, "skipped", f"fewer than {min_rows} rows"))
            elif binary and positives in (0, rows):
                out.append(SliceMetrics(name, value, rows, positives, "skipped", "only one class"))
            else:
                m = task_metrics(task, y[idx], p[idx], threshold=threshold)
                out.append(SliceMetrics(name, value, rows, positives, "ok", "", m))
    return out


def _column(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in frame.columns:
        raise DataError(
            f"the evaluation frame has no {role} column {name!r}",
            fix=f"add {name!r} to the frame or remove it from the {role} settings",
        )
    return frame[name]


def _metric_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "blank"
