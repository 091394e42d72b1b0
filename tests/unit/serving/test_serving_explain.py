"""Explanations: LightGBM contributions add up to the raw score; probability points add up to p - p0."""

from __future__ import annotations

import math

import lightgbm as lgb
import numpy as np
import pytest
from tests.unit.serving.serving_support import DESCRIPTIONS, FEATURES, training_frame

from noria.serving._lgbm import FastScorer, batch_contributions, batch_raw, booster_inputs, sigmoid
from noria.serving.config import FeatureText
from noria.serving.explain import (
    Explainer,
    amount_decimals,
    amount_sentence,
    class_sentence,
    feature_text,
    format_amount,
    format_points,
    format_value,
    points,
    sentence,
)


def _rows(booster: lgb.Booster, n: int = 50) -> np.ndarray:
    frame, _ = training_frame(seed=7, n=n)
    inputs = booster_inputs(booster)
    out = np.empty((n, len(inputs.features)))
    for j, name in enumerate(inputs.features):
        if name in inputs.categories:
            cats = list(inputs.categories[name])
            out[:, j] = [cats.index(str(v)) for v in frame[name]]
        else:
            out[:, j] = frame[name].to_numpy()
    return out


def test_booster_inputs_reads_order_categories_and_training_ranges(booster: lgb.Booster) -> None:
    inputs = booster_inputs(booster)
    assert inputs.features == FEATURES
    assert inputs.categories == {"carrier": ("AA", "DL", "UA"), "origin": ("EWR", "JFK", "LGA")}
    frame, _ = training_frame(seed=0)
    low, high = inputs.ranges["visib"]
    assert low == pytest.approx(frame["visib"].min()) and high == pytest.approx(frame["visib"].max())
    assert "carrier" not in inputs.ranges


def test_contributions_plus_bias_equal_the_raw_score(booster: lgb.Booster) -> None:
    x = _rows(booster)
    x[3, 0] = np.nan  # a missing value takes the default branch in both paths
    contribs = batch_contributions(booster, x)
    raw = batch_raw(booster, x)
    np.testing.assert_allclose(contribs.sum(axis=1), raw, rtol=0, atol=1e-9)
    np.testing.assert_allclose([sigmoid(r) for r in raw], booster.predict(x, num_threads=1), atol=1e-12)
    scorer = FastScorer(booster)
    for i in range(len(x)):  # the C single-row fast path gives the very same numbers
        np.testing.assert_allclose(scorer.contributions(x[i]), contribs[i], atol=1e-12)
        assert scorer.raw(x[i]) == pytest.approx(raw[i], abs=1e-12)
    scorer.close()


def test_points_add_up_to_the_probability_change_and_keep_each_sign(booster: lgb.Booster) -> None:
    contribs = batch_contributions(booster, _rows(booster))
    for row in contribs:
        pts, p0, p = points(row)
        assert p0 == pytest.approx(sigmoid(row[-1]))
        assert p == pytest.approx(sigmoid(row.sum()))
        assert pts.sum() == pytest.approx(100 * (p - p0), abs=1e-9)
        assert np.all(np.sign(pts) == np.sign(row[:-1]))


def test_points_are_proportional_not_order_dependent() -> None:
    row = np.array([1.0, -0.5, 2.0, -1.2])  # three features and the bias
    pts, p0, p = points(row)
    slope = (p - p0) / 2.5  # S = 1 - 0.5 + 2
    np.testing.assert_allclose(pts, 100 * slope * row[:-1])
    permuted, _, _ = points(row[[2, 0, 1, 3]])
    np.testing.assert_allclose(permuted, pts[[2, 0, 1]])


def test_points_when_contributions_cancel_use_the_slope_at_the_baseline() -> None:
    row = np.array([0.7, -0.7, 0.0, 0.3])
    pts, p0, p = points(row)
    assert p == pytest.approx(p0)
    np.testing.assert_allclose(pts, 100 * p0 * (1 - p0) * row[:-1])
    assert all(math.isfinite(v) for v in pts)


def test_texts_read_like_a_sentence() -> None:
    visib = feature_text("visib", DESCRIPTIONS["visib"])
    assert (visib.label, visib.unit) == ("visibility", "mi")
    assert sentence(visib, 0.5, 12.2) == "visibility 0.5 mi raised the risk by 12 points"
    temp = feature_text("temp", "Temperature (F).")
    assert sentence(temp, 71.04, -3.4) == "temperature 71°F lowered the risk by 3 points"
    rate = feature_text("carrier_late_rate_7d", "Share of them that left > 15 min late.")
    assert rate.label == "carrier late rate 7d"  # a long description: the name reads better
    assert sentence(feature_text("carrier"), "UA", 1.0) == "carrier UA raised the risk by 1 point"
    assert format_value(None, visib) == "unknown"
    assert format_points(0.04) == "less than 0.1 points" and format_points(-0.46) == "0.5 points"
    override = feature_text("visib", DESCRIPTIONS["visib"], FeatureText(label="storm: visibility", unit="miles"))
    assert sentence(override, 0.5, 12) == "storm: visibility 0.5 miles raised the risk by 12 points"


def test_multiclass_and_regression_texts_read_like_a_sentence() -> None:
    form = feature_text("home_form")
    assert class_sentence(form, 2.1, 4.2, "H") == "home form 2.1 raised the chance of H by 4 points"
    assert class_sentence(feature_text("league"), "D1", -0.3, "A") == "league D1 lowered the chance of A by 0.3 points"
    glucose = feature_text("glucose_latest", "Latest glucose (mg/dL).")
    decimals = amount_decimals(150.0)
    assert decimals == 1
    assert (
        amount_sentence(glucose, 180.0, 12.3, "glucose in 30 min", "mg/dL", decimals)
        == "latest glucose 180 mg/dL raised the predicted glucose in 30 min by 12 mg/dL"
    )
    assert (
        amount_sentence(glucose, 70.0, -0.04, "glucose in 30 min", "mg/dL", decimals)
        == "latest glucose 70 mg/dL lowered the predicted glucose in 30 min by less than 0.1 mg/dL"
    )
    assert amount_sentence(glucose, 70.0, 3.0, "prediction", "mg/dL") == (
        "latest glucose 70 mg/dL raised the prediction by 3 mg/dL"
    )
    # two significant digits, never more decimals than the target's size calls for
    assert [format_amount(v, "min") for v in (123.4, 12.3, 3.44, 0.96, 0.46, -0.07)] == [
        "123 min",
        "12 min",
        "3.4 min",
        "1 min",
        "0.5 min",
        "0.1 min",
    ]
    assert format_amount(0.0004, "", amount_decimals(0.05)) == "0.0004"
    assert format_amount(0.00004, "", amount_decimals(0.05)) == "less than 0.0001"
    assert amount_decimals(0.0) == amount_decimals(float("nan")) == 1 and amount_decimals(2.5) == 2


def test_explainer_returns_the_largest_contributions_first(booster: lgb.Booster) -> None:
    x = _rows(booster, 5)
    contribs = batch_contributions(booster, x)
    explainer = Explainer.build(FEATURES, DESCRIPTIONS, {}, top=2)
    values = [x[0, 0], x[0, 1], x[0, 2], "UA", "EWR"]
    out = explainer.explain(contribs[0], values)
    items = out["contributions"]
    assert len(items) == 2
    assert abs(items[0]["log_odds"]) >= abs(items[1]["log_odds"])
    assert abs(items[0]["log_odds"]) == pytest.approx(np.abs(contribs[0][:-1]).max(), abs=1e-6)
    assert out["baseline_probability"] == pytest.approx(sigmoid(contribs[0][-1]), abs=1e-6)
    assert items[0]["text"].startswith(explainer.texts[FEATURES.index(items[0]["feature"])].label or "")


def test_path_contributions_add_up_to_the_raw_score_dense_or_sparse(
    booster: lgb.Booster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from noria.serving import _lgbm

    x = _rows(booster)
    x[4, 1] = np.nan
    dense = _lgbm.PathAttribution(booster)
    monkeypatch.setattr(_lgbm, "DENSE_LIMIT", 0)
    sparse = _lgbm.PathAttribution(booster)
    assert dense.dense is not None and sparse.dense is None
    scorer = FastScorer(booster)
    leaves = _lgbm.batch_leaves(booster, x)
    raw = batch_raw(booster, x)
    for i in range(len(x)):
        np.testing.assert_array_equal(scorer.leaves(x[i]), leaves[i])  # LightGBM's own routing
        c = dense.contributions(leaves[i])
        np.testing.assert_allclose(c, sparse.contributions(leaves[i]), atol=1e-12)
        assert c.sum() == pytest.approx(raw[i], abs=1e-9)
    # Same story as SHAP on the whole: the feature that matters most is usually the same one.
    shap = batch_contributions(booster, x)
    path = np.stack([dense.contributions(leaves[i]) for i in range(len(x))])
    np.testing.assert_allclose(dense.contributions_rows(leaves), path, atol=1e-12)  # a batch at once
    np.testing.assert_allclose(sparse.contributions_rows(leaves), path, atol=1e-12)
    assert dense.contributions_rows(leaves[:0]).shape == (0, path.shape[1])
    agree = np.mean(np.abs(shap[:, :-1]).argmax(axis=1) == np.abs(path[:, :-1]).argmax(axis=1))
    assert agree >= 0.8


def test_served_model_explains_with_either_method(booster: lgb.Booster) -> None:
    from tests.unit.serving.serving_support import INLINE

    from noria.serving.model import ServedModel
    from noria.serving.sources import LoadedVersion, VersionRef

    loaded = LoadedVersion(VersionRef("flight-delay", 1), "champion", booster)
    by_shap = ServedModel.build(loaded, descriptions=DESCRIPTIONS, method="shap")
    by_path = ServedModel.build(loaded, descriptions=DESCRIPTIONS, method="path")
    rows = [INLINE, {**INLINE, "visib": 8.0, "carrier": "DL"}]
    for model in (by_shap, by_path):
        single = model.score(model.encode([rows[0]], None), 0.5, explain=True)[0]
        batch = model.score(model.encode(rows, None), 0.5, explain=True)
        assert single.probability == pytest.approx(batch[0].probability, abs=1e-12)
        assert single.explanation == batch[0].explanation
        for scored in batch:
            pts = sum(c["points"] for c in scored.explanation["contributions"])  # type: ignore[index]
            assert abs(pts) <= 100
    assert by_shap.score(by_shap.encode(rows, None), 0.5, True)[1].probability == pytest.approx(
        by_path.score(by_path.encode(rows, None), 0.5, True)[1].probability, abs=1e-12
    )
    top = by_path.score(by_path.encode([rows[0]], None), 0.5, True)[0].explanation
    assert top is not None and top["contributions"][0]["feature"] == "visib"
