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
