"""A served model: inputs in the model's order, category codes, scores, out-of-distribution reasons."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from tests.unit.serving.serving_support import DESCRIPTIONS, INLINE, training_frame

from noria.monitoring import ReferenceProfile
from noria.serving.model import InlineFeatureError, ServedModel
from noria.serving.ood import Bounds
from noria.serving.sources import LoadedVersion, LookedUp, VersionRef


def _model(booster: lgb.Booster, profile: object = None) -> ServedModel:
    loaded = LoadedVersion(VersionRef("flight-delay", 1, "run"), "champion", booster, "hash", profile=profile)
    return ServedModel.build(loaded, descriptions=DESCRIPTIONS, top=3)


def test_scores_match_lightgbm_on_the_pandas_frame_it_was_trained_with(booster: lgb.Booster) -> None:
    model = _model(booster)
    frame, _ = training_frame(seed=5, n=20)
    rows = [
        {k: (str(v) if k in ("carrier", "origin") else float(v)) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    expected = booster.predict(frame, num_threads=1)
    batch = model.score(model.encode(list(rows), None), 0.5, explain=True)
    np.testing.assert_allclose([s.probability for s in batch], expected, atol=1e-12)
    single = model.score(model.encode([rows[3]], None), 0.5, explain=True)[0]
    assert single.probability == pytest.approx(expected[3], abs=1e-12)
    assert single.decision == (expected[3] >= 0.5)
    plain = model.score(model.encode([rows[3]], None), 0.5, explain=False)[0]
    assert plain.explanation is None and plain.probability == pytest.approx(expected[3], abs=1e-12)


def test_inline_values_win_over_looked_up_ones_and_the_rest_come_from_the_lookup(booster: lgb.Booster) -> None:
    model = _model(booster)
    looked = LookedUp(
        {"visib": np.array([9.0]), "temp": np.array([np.nan]), "carrier": np.array(["DL"], dtype=object)}, [["temp"]]
    )
    encoded = model.encode([{"visib": 0.5}], looked)
    assert encoded.values[0] == [0.5, None, None, "DL", None]
    assert np.isnan(encoded.matrix[0, 1]) and encoded.matrix[0, 3] == 1.0  # DL is category 1 of AA, DL, UA


def test_unknown_inline_feature_or_text_for_a_number_is_a_validation_error(booster: lgb.Booster) -> None:
    model = _model(booster)
    with pytest.raises(InlineFeatureError) as err:
        model.encode([{"visibility": 1.0}], None, ["flights[2].features"])
    assert err.value.message.startswith("flights[2].features.visibility:") and "visib" in (err.value.fix or "")
    with pytest.raises(InlineFeatureError, match="temp: expected a number"):
        model.encode([{"temp": "warm"}], None)


def test_out_of_distribution_names_range_category_and_missing_features(booster: lgb.Booster) -> None:
    model = _model(booster)
    ok = model.score(model.encode([INLINE], None), 0.5, explain=False)[0]
    assert ok.ood == []
    odd = {**INLINE, "visib": 25.0, "carrier": "ZZ"}
    del odd["temp"]
    scored = model.score(model.encode([odd], None), 0.5, explain=True)[0]
    kinds = {r["feature"]: r["kind"] for r in scored.ood}
    assert kinds == {"visib": "out_of_range", "carrier": "unseen_category", "temp": "missing"}
    details = " | ".join(r["detail"] for r in scored.ood)
    assert "visib 25 is above the training maximum" in details and "carrier 'ZZ' was not seen" in details
    # An unseen category is a missing value for the model, exactly as LightGBM treats it with pandas.
    frame = pd.DataFrame([{**INLINE, "carrier": "ZZ"}]).astype({"carrier": "category", "origin": "category"})
    expected = booster.predict(frame, num_threads=1)[0]
    got = model.score(model.encode([{**INLINE, "carrier": "ZZ"}], None), 0.5, explain=False)[0]
    assert got.probability == pytest.approx(expected, abs=1e-12)


def test_reference_profile_gives_ranges_and_tolerated_missing_features(booster: lgb.Booster) -> None:
    frame, _ = training_frame(seed=0)
    frame = frame.astype({"carrier": str, "origin": str})
    frame.loc[frame.index[:200], "temp"] = np.nan  # often missing in training: not a reason
    profile = ReferenceProfile.build(frame)
    model = _model(booster, profile)
    assert model.bounds.source == "reference profile" and "temp" in model.bounds.may_be_missing
    row = {k: v for k, v in INLINE.items() if k != "temp"}
    assert model.score(model.encode([row], None), 0.5, explain=False)[0].ood == []
    assert Bounds.from_booster(model.inputs).may_be_missing == frozenset()


@pytest.mark.parametrize("classes", [1, 3])
def test_a_few_rows_scored_row_by_row_match_booster_predict_exactly(booster: lgb.Booster, classes: int) -> None:
    """Up to FAST_ROWS rows go through the single-row scorer one row at a time (a service's batch):
    the leaves, raw scores and SHAP values are LightGBM's own, the same as ``Booster.predict``'s."""
    from noria.serving._lgbm import FAST_ROWS, FastScorer, batch_contributions, batch_leaves, batch_raw

    if classes > 1:
        rng = np.random.default_rng(3)
        x = rng.normal(size=(300, 4))
        y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
        params = {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1}
        booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=8)
    width = booster.num_feature()
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(FAST_ROWS, width)) * 5
    matrix[rng.random(matrix.shape) < 0.2] = np.nan
    fast = FastScorer(booster)
    try:
        for rows in (matrix[:1], matrix[:5], matrix):
            np.testing.assert_array_equal(batch_leaves(booster, rows, fast), batch_leaves(booster, rows))
            np.testing.assert_allclose(batch_raw(booster, rows, fast), batch_raw(booster, rows), rtol=0, atol=1e-12)
            np.testing.assert_allclose(
                batch_contributions(booster, rows, fast), batch_contributions(booster, rows), rtol=0, atol=1e-12
            )
    finally:
        fast.close()
