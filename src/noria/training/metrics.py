"""Curves and tables of probabilities against 0/1 outcomes, computed with scikit-learn.

Ranking: ROC AUC and PR AUC (average precision). Probability quality: log loss, Brier
score and a calibration curve (a binary model's P(positive); a multi-class model's top-label
probability against whether it was right). All results are plain floats/ints/lists
(JSON-ready). The holdout's headline metrics for every task come from
:func:`noria.task_metrics.task_metrics`; :func:`binary_metrics` stays for direct use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from noria.errors import DataError

# Hour-of-day bands used for slicing: (label, first hour, last hour), in the hour column's clock.
HOUR_BANDS: tuple[tuple[str, int, int], ...] = (
    ("00-05 night", 0, 5),
    ("06-09 morning", 6, 9),
    ("10-13 midday", 10, 13),
    ("14-17 afternoon", 14, 17),
    ("18-23 evening", 18, 23),
)


@dataclass(frozen=True)
class Metrics:
    rows: int
    positives: int
    positive_rate: float
    mean_score: float
    roc_auc: float | None  # None when only one class is present
    pr_auc: float | None
    log_loss: float
    brier: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    rows: int
    mean_score: float
    observed_rate: float


@dataclass(frozen=True)
class Calibration:
    bins: list[CalibrationBin]  # non-empty bins only
    expected_calibration_error: float  # row-weighted mean |observed - predicted| over bins

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_scores(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert labels (0/1) and scores (probabilities) to float arrays."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise DataError(f"{len(y)} labels but {len(p)} scores", fix="score exactly the rows whose labels are given")
    if len(y) == 0:
        raise DataError("no rows to evaluate", fix="evaluate on a non-empty holdout")
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("labels must be 0 or 1 (missing labels dropped first)", fix="drop unlabelled rows")
    if not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0:
        raise DataError("scores must be probabilities in [0, 1]", fix="pass predicted probabilities, not logits")
    return y, p


def binary_metrics(y_true: Any, y_score: Any) -> Metrics:
    y, p = check_scores(y_true, y_score)
    two_classes = 0.0 < y.mean() < 1.0
    return Metrics(
        rows=len(y),
        positives=int(y.sum()),
        positive_rate=float(y.mean()),
        mean_score=float(p.mean()),
        roc_auc=float(roc_auc_score(y, p)) if two_classes else None,
        pr_auc=float(average_precision_score(y, p)) if two_classes else None,
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        brier=float(brier_score_loss(y, p)),
    )


def calibration(y_true: Any, y_score: Any, n_bins: int = 10) -> Calibration:
    """Equal-width bins over [0, 1]: observed rate of label 1 against mean predicted probability."""
    y, p = check_scores(y_true, y_score)
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Same bin assignment as scikit-learn's calibration_curve, to count rows per bin.
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    filled = np.flatnonzero(counts)
    bins = [
        CalibrationBin(
            lower=float(edges[i]),
            upper=float(edges[i + 1]),
            rows=int(counts[i]),
            mean_score=float(predicted[k]),
            observed_rate=float(observed[k]),
        )
        for k, i in enumerate(filled)
    ]
    ece = float(np.sum(counts[filled] * np.abs(observed - predicted)) / len(y))
    return Calibration(bins=bins, expected_calibration_error=ece)


def roc_points(y_true: Any, y_score: Any, max_points: int = 200) -> dict[str, list[float]]:
    """ROC curve thinned to at most ``max_points`` points (for plots and JSON)."""
    y, p = check_scores(y_true, y_score)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=True)
    keep = _thin(len(fpr), max_points)
    return {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()}


def pr_points(y_true: Any, y_score: Any, max_points: int = 200) -> dict[str, list[float]]:
    y, p = check_scores(y_true, y_score)
    precision, recall, _ = precision_recall_curve(y, p)
    keep = _thin(len(recall), max_points)
    return {"recall": recall[keep].round(5).tolist(), "precision": precision[keep].round(5).tolist()}


def threshold_metrics(y_true: Any, y_score: Any, threshold: float) -> dict[str, float]:
    """What a yes/no decision at ``threshold`` gives: share flagged, precision, recall."""
    y, p = check_scores(y_true, y_score)
    flagged = p >= threshold
    hits = float((flagged & (y == 1)).sum())
    return {
        "threshold": float(threshold),
        "flagged_rate": float(flagged.mean()),
        "precision": hits / float(flagged.sum()) if flagged.any() else 0.0,
        "recall": hits / float(y.sum()) if y.any() else 0.0,
    }


def hour_band(hours: pd.Series) -> pd.Series:
    """Label each hour of the day (0-23) with its band from :data:`HOUR_BANDS`."""
    values = pd.to_numeric(hours, errors="coerce")
    out = pd.Series(pd.NA, index=hours.index, dtype="object")
    for name, first, last in HOUR_BANDS:
        out[(values >= first) & (values <= last)] = name
    return out


def _thin(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
