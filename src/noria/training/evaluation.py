"""Evaluate scores on a holdout: overall, per slice, and against plain baselines.

An :class:`Evaluation` is plain data: ``to_dict()`` is JSON-ready for MLflow and the
promotion gate, ``flat_metrics()`` gives the ``name -> float`` pairs MLflow logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from noria.errors import DataError
from noria.training.baselines import Baseline
from noria.training.metrics import (
    Calibration,
    Metrics,
    binary_metrics,
    calibration,
    check_scores,
    hour_band,
    pr_points,
    roc_points,
    threshold_metrics,
)
from noria.training.model import TrainedModel

SliceSpec = str | Callable[[pd.DataFrame], pd.Series]
MISSING_VALUE = "(missing)"


@dataclass(frozen=True)
class SliceMetrics:
    slice: str
    value: str
    rows: int
    positives: int
    status: str  # "ok" or "skipped"
    reason: str = ""
    metrics: Metrics | None = None


@dataclass(frozen=True)
class BaselineResult:
    name: str
    description: str
    metrics: Metrics
    roc: dict[str, list[float]]


@dataclass
class Evaluation:
    label: str
    metrics: Metrics
    calibration: Calibration
    roc: dict[str, list[float]]
    pr: dict[str, list[float]]
    threshold: dict[str, float]
    slices: list[SliceMetrics] = field(default_factory=list)
    baselines: list[BaselineResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def slice_table(self) -> pd.DataFrame:
        """One row per slice value: rows, positives, status and the model's metrics."""
        records = []
        for s in self.slices:
            row: dict[str, Any] = {
                "slice": s.slice,
                "value": s.value,
                "rows": s.rows,
                "positives": s.positives,
            }
            row |= {"status": s.status, "reason": s.reason}
            m = s.metrics
            row |= {k: getattr(m, k) if m else None for k in ("roc_auc", "pr_auc", "log_loss", "brier")}
            records.append(row)
        return pd.DataFrame.from_records(records)

    def flat_metrics(self, prefix: str = "test_") -> dict[str, float]:
        """``{name: value}`` for MLflow: overall, baselines (``baseline_<name>_``) and slices."""
        out: dict[str, float] = {}

        def put(stem: str, m: Metrics) -> None:
            for key in ("roc_auc", "pr_auc", "log_loss", "brier", "positive_rate", "mean_score"):
                value = getattr(m, key)
                if value is not None:
                    out[f"{prefix}{stem}{key}"] = float(value)

        put("", self.metrics)
        out[f"{prefix}calibration_ece"] = self.calibration.expected_calibration_error
        for b in self.baselines:
            put(f"baseline_{_metric_name(b.name)}_", b.metrics)
        for s in self.slices:
            if s.metrics is not None and s.metrics.roc_auc is not None:
                out[f"{prefix}slice_{_metric_name(s.slice)}_{_metric_name(s.value)}_roc_auc"] = s.metrics.roc_auc
        return out


def slice_specs(columns: Sequence[str] = (), hour_band_column: str | None = None) -> dict[str, SliceSpec]:
    """Slices by plain columns, plus ``hour_band`` derived from a scheduled-hour column."""
    specs: dict[str, SliceSpec] = {col: col for col in columns}
    if hour_band_column is not None:
        hour_col = hour_band_column
        specs["hour_band"] = lambda frame: hour_band(_column(frame, hour_col, "slice"))
    return specs


def evaluate(
    model_or_scores: TrainedModel | np.ndarray | Sequence[float],
    frame: pd.DataFrame,
    label: str,
    *,
    slices: Mapping[str, SliceSpec] | None = None,
    min_slice_rows: int = 200,
    baselines: Sequence[Baseline] = (),
    calibration_bins: int = 10,
    threshold: float = 0.5,
) -> Evaluation:
    """Score ``frame`` (or take given scores, one per row) and measure against ``frame[label]``.

    A slice value with fewer than ``min_slice_rows`` rows or a single class is reported as
    skipped, with the reason, rather than given a meaningless number.
    """
    y = _column(frame, label, "label").to_numpy(dtype=np.float64)
    if isinstance(model_or_scores, TrainedModel):
        scores = model_or_scores.predict(frame)
    else:
        scores = np.asarray(model_or_scores, dtype=np.float64)
    y, scores = check_scores(y, scores)
    if not 0.0 < y.mean() < 1.0:
        raise DataError(
            f"the evaluation set ({len(y)} rows) holds only one class of {label!r}",
            fix="evaluate on a period that has both late and on-time rows",
        )
    results = [
        BaselineResult(b.name, b.description, binary_metrics(y, p), roc_points(y, p))
        for b in baselines
        for p in [np.asarray(b.predict(frame), dtype=np.float64)]
    ]
    return Evaluation(
        label=label,
        metrics=binary_metrics(y, scores),
        calibration=calibration(y, scores, calibration_bins),
        roc=roc_points(y, scores),
        pr=pr_points(y, scores),
        threshold=threshold_metrics(y, scores, threshold),
        slices=_slice_metrics(frame, y, scores, slices or {}, min_slice_rows),
        baselines=results,
    )


def _slice_metrics(
    frame: pd.DataFrame, y: np.ndarray, scores: np.ndarray, slices: Mapping[str, SliceSpec], min_rows: int
) -> list[SliceMetrics]:
    out: list[SliceMetrics] = []
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
            rows, positives = int(idx.sum()), int(y[idx].sum())
            if rows < min_rows:
                out.append(SliceMetrics(name, value, rows, positives, "skipped", f"fewer than {min_rows} rows"))
            elif positives in (0, rows):
                out.append(SliceMetrics(name, value, rows, positives, "skipped", "only one class"))
            else:
                out.append(SliceMetrics(name, value, rows, positives, "ok", "", binary_metrics(y[idx], scores[idx])))
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
