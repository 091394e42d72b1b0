from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from training_flights_frame import CONTEXT_FEATURES, LABEL, TIME
from training_flights_frame import TEST_CATEGORICAL as CATS
from training_flights_frame import TEST_FEATURES as FEATURES

from noria.errors import ConfigError, DataError
from noria.training import TrainedModel, TrainingSettings, run_training

FAST = {"train": {"from": "2013-01", "to": "2013-06"}, "test": {"from": "2013-07", "to": "2013-12"},
        "trials": 2, "max_boost_rounds": 60, "early_stopping_rounds": 10, "time_column": TIME,
        "baseline_features": CONTEXT_FEATURES, "min_slice_rows": 50}  # fmt: skip


def test_run_training_writes_everything(flights: pd.DataFrame, tmp_path: Path) -> None:
    out = run_training(
        flights, label=LABEL, features=FEATURES, categorical=CATS, settings=TrainingSettings(**FAST),
        out_dir=tmp_path, name="flight-delay", version="7", lineage={"snapshot": "s1"},
    )  # fmt: skip
    names = {p.name for p in tmp_path.iterdir()}
    assert {"model", "evaluation.json", "split.json", "tuning.json", "feature_importance.csv"} <= names
    assert {"model_card.md", "model_card.html", "model_card_files"} <= names
    assert out.tuning is not None and out.tuning.n_trials == 2
    assert [b.name for b in out.evaluation.baselines] == ["majority_rate", "logistic_regression", "context_lightgbm"]
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["metrics"]["roc_auc"] == pytest.approx(out.evaluation.metrics["roc_auc"])
    loaded = TrainedModel.load(out.model_dir)
    assert np.array_equal(loaded.predict(out.split.test), out.model.predict(out.split.test))
    assert set(out.seconds) == {"split", "tune", "train", "baselines", "evaluate", "write"}
    assert out.summary()["trials"] == 2


def test_no_tuning_when_trials_is_zero(flights: pd.DataFrame, tmp_path: Path) -> None:
    settings = TrainingSettings(**{**FAST, "trials": 0, "baselines": ["majority_rate"]})
    out = run_training(flights, label=LABEL, features=FEATURES, categorical=CATS, settings=settings, out_dir=tmp_path)
    assert out.tuning is None and not (tmp_path / "tuning.json").exists()
    assert "default parameters" in (tmp_path / "model_card.md").read_text()


def test_bad_input_fails_before_any_training(flights: pd.DataFrame, tmp_path: Path) -> None:
    no_positive = flights.assign(**{LABEL: flights[LABEL].where(flights[LABEL].isna(), 0.0)})
    with pytest.raises(DataError, match="no positive labels"):
        run_training(no_positive, label=LABEL, features=FEATURES, settings=TrainingSettings(**FAST), out_dir=tmp_path)
    with pytest.raises(ConfigError, match="before the train period"):
        run_training(
            flights, label=LABEL, features=FEATURES, out_dir=tmp_path,
            settings=TrainingSettings.model_construct(**{**TrainingSettings(**FAST).__dict__,
                                                        "test": TrainingSettings(**FAST).train,
                                                        "train": TrainingSettings(**FAST).test}),
        )  # fmt: skip
    assert not list(tmp_path.iterdir())
