from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from noria.errors import DataError
from noria.training import binary_metrics, calibration, hour_band
from noria.training.metrics import roc_points, threshold_metrics

Y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.05, 0.9, 0.6, 0.2])


def test_metrics_match_sklearn_and_hand_values() -> None:
    m = binary_metrics(Y, P)
    assert m.rows == 8 and m.positives == 3 and m.positive_rate == pytest.approx(3 / 8)
    assert m.roc_auc == pytest.approx(roc_auc_score(Y, P))
    # 15 positive/negative pairs; the positive 0.35 ranks below 0.4 and 0.6: 13 of 15 ordered
    assert m.roc_auc == pytest.approx(13 / 15)
    assert m.pr_auc == pytest.approx(average_precision_score(Y, P))
    assert m.log_loss == pytest.approx(log_loss(Y, P))
    assert m.brier == pytest.approx(brier_score_loss(Y, P))
    assert m.brier == pytest.approx(float(np.mean((P - Y) ** 2)))
    assert m.mean_score == pytest.approx(P.mean())


def test_one_class_has_no_auc_but_has_losses() -> None:
    m = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert m.roc_auc is None and m.pr_auc is None
    assert m.log_loss == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7])))


def test_calibration_matches_sklearn_with_counts_and_ece() -> None:
    p = np.array([0.1, 0.45, 0.35, 0.85, 0.05, 0.95, 0.65, 0.25])  # no score on a bin edge
    cal = calibration(Y, p, n_bins=5)
    observed, predicted = calibration_curve(Y, p, n_bins=5)
    assert [b.observed_rate for b in cal.bins] == pytest.approx(observed.tolist())
    assert [b.mean_score for b in cal.bins] == pytest.approx(predicted.tolist())
    # bins of width 0.2: {0.1, 0.05} {0.35, 0.25} {0.45} {0.65} {0.85, 0.95}
    assert [b.rows for b in cal.bins] == [2, 2, 1, 1, 2]
    assert [b.observed_rate for b in cal.bins] == pytest.approx([0, 0.5, 0, 0, 1])
    assert [b.lower for b in cal.bins] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    expected_ece = (2 * 0.075 + 2 * 0.2 + 0.45 + 0.65 + 2 * 0.1) / 8
    assert cal.expected_calibration_error == pytest.approx(expected_ece)


def test_empty_bins_are_left_out() -> None:
    cal = calibration([0, 1, 1], [0.05, 0.95, 0.92], n_bins=10)
    assert [b.rows for b in cal.bins] == [1, 2]


def test_roc_points_are_thinned_and_end_at_corners() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    points = roc_points(y, rng.random(5000), max_points=50)
    assert len(points["fpr"]) <= 50
    assert points["fpr"][0] == 0.0 and points["tpr"][-1] == 1.0


def test_threshold_metrics() -> None:
    t = threshold_metrics(Y, P, 0.5)
    # flagged: 0.8 (pos), 0.9 (pos), 0.6 (neg)
    assert t == {"threshold": 0.5, "flagged_rate": 3 / 8, "precision": 2 / 3, "recall": 2 / 3}


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [([0, 1], [0.5], "2 labels but 1 scores"), ([0, 1], [0.5, 1.5], "probabilities"), ([0, 2], [0.1, 0.2], "0 or 1")],
)
def test_bad_inputs(y: list[int], p: list[float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        binary_metrics(y, p)


def test_hour_bands() -> None:
    bands = hour_band(pd.Series([0, 5, 6, 9, 10, 13, 14, 17, 18, 23, None]))
    assert bands.tolist()[:10] == [
        "00-05 night", "00-05 night", "06-09 morning", "06-09 morning", "10-13 midday",
        "10-13 midday", "14-17 afternoon", "14-17 afternoon", "18-23 evening", "18-23 evening",
    ]  # fmt: skip
    assert pd.isna(bands.iloc[10])
