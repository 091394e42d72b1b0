from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from training_flights_frame import LABEL
from training_flights_frame import TEST_CATEGORICAL as CATS
from training_flights_frame import TEST_FEATURES as FEATURES

from noria.errors import ConfigError, DataError, NotFoundError
from noria.training import Split, TrainedModel, feature_importance, train

SMALL = {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20, "feature_fraction": 0.8,
         "bagging_fraction": 0.8}  # fmt: skip


@pytest.fixture(scope="module")
def model(split: Split) -> TrainedModel:
    return train(split, FEATURES, CATS, SMALL, seed=7, max_rounds=200, early_stopping_rounds=20)


def test_training_records_the_validation_curve(model: TrainedModel) -> None:
    assert set(model.valid_curve) == {"auc", "binary_logloss"}
    assert len(model.valid_curve["auc"]) >= model.best_iteration > 0
    # the curve's best AUC is at the chosen iteration (early stopping on the first metric)
    assert int(np.argmax(model.valid_curve["auc"])) + 1 == model.best_iteration
    assert model.booster.num_trees() == model.best_iteration
    assert model.params["deterministic"] is True and model.params["seed"] == 7


def test_save_load_round_trip_predicts_the_same(model: TrainedModel, split: Split, tmp_path: Path) -> None:
    path = model.save(tmp_path / "m")
    assert path.name == "model.txt" and path.read_text().startswith("tree\n")
    assert not list((tmp_path / "m").glob("*.tmp"))
    loaded = TrainedModel.load(tmp_path / "m")
    before, after = model.predict(split.test), loaded.predict(split.test)
    assert np.array_equal(before, after)
    assert loaded.model_text() == model.model_text()
    assert (loaded.features, loaded.categorical, loaded.label) == (FEATURES, CATS, LABEL)
    assert loaded.valid_curve == model.valid_curve
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format"] == "lightgbm-text/1" and len(meta["model_sha256"]) == 64


def test_load_refuses_damaged_or_missing_files(model: TrainedModel, tmp_path: Path) -> None:
    model.save(tmp_path)
    with (tmp_path / "model.txt").open("a") as handle:
        handle.write("\n")
    with pytest.raises(DataError, match="digest"):
        TrainedModel.load(tmp_path)
    with pytest.raises(NotFoundError, match="no model.txt"):
        TrainedModel.load(tmp_path / "nowhere")


def test_unseen_categories_and_missing_values_score(model: TrainedModel, split: Split) -> None:
    rows = split.test.head(5).copy()
    rows["dest"] = "ZZZ"  # a destination never seen in training
    rows["temp"] = np.nan
    scores = model.predict(rows)
    assert scores.shape == (5,) and np.all((scores > 0) & (scores < 1))
    assert model.predict(rows.iloc[:0]).shape == (0,)


def test_same_inputs_same_model_text(split: Split) -> None:
    a = train(split, FEATURES, CATS, SMALL, seed=3, max_rounds=60, early_stopping_rounds=10)
    b = train(split, FEATURES, CATS, SMALL, seed=3, max_rounds=60, early_stopping_rounds=10)
    assert a.model_text() == b.model_text()
    c = train(split, FEATURES, CATS, SMALL, seed=4, max_rounds=60, early_stopping_rounds=10)
    assert c.model_text() != a.model_text()  # the seed matters (bagging), so the check above means something


def test_feature_importance_is_sorted_by_gain(model: TrainedModel) -> None:
    table = feature_importance(model)
    assert list(table.columns) == ["feature", "gain", "gain_share", "splits"]
    assert sorted(table["feature"]) == sorted(FEATURES)
    assert table["gain"].is_monotonic_decreasing
    assert table["gain_share"].sum() == pytest.approx(1.0)


def test_feature_errors(split: Split) -> None:
    with pytest.raises(DataError, match="lacks feature columns \\['nope'\\]"):
        train(split, [*FEATURES, "nope"], CATS)
    with pytest.raises(DataError, match="'tailnum' has dtype") as info:
        train(split, [*FEATURES, "tailnum"], CATS)
    assert "categorical" in (info.value.fix or "")
    with pytest.raises(ConfigError, match="not among the features"):
        train(split, ["distance"], ["carrier"])


def test_refit_uses_the_whole_train_period(split: Split) -> None:
    fit_only = train(split, FEATURES, CATS, SMALL, seed=7, max_rounds=60, early_stopping_rounds=10, refit=False)
    refit = train(split, FEATURES, CATS, SMALL, seed=7, max_rounds=60, early_stopping_rounds=10, refit=True)
    assert fit_only.best_iteration == refit.best_iteration
    assert fit_only.model_text() != refit.model_text()
    assert isinstance(pd.Series(refit.predict(split.test)).mean(), float)
