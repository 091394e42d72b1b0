"""Shared Optuna studies on a SQLite storage: workers, names, URLs and the errors people hit.

The same code on PostgreSQL, with worker processes running at once, is tested in
tests/integration/test_optuna_shared.py.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from training_flights_frame import TEST_CATEGORICAL as CATS
from training_flights_frame import TEST_FEATURES as FEATURES

from noria.errors import ConfigError, ExternalToolError, NotFoundError
from noria.training import Split, tune
from noria.training.config import TrainingSettings
from noria.training.study import (
    create_study,
    default_study_name,
    redact,
    resolve_storage,
    study_result,
    tune_options,
)
from noria.training.tuning import START_PARAMS

FAST = {"max_rounds": 40, "early_stopping_rounds": 5}


def test_sequential_workers_share_one_study(split: Split, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = tune(split, FEATURES, CATS, trials=2, storage=url, study_name="s", worker=1, **FAST)
    second = tune(split, FEATURES, CATS, trials=1, storage=url, study_name="s", worker=2, **FAST)
    assert [t.number for t in first.trials] == [0, 1] and [t.number for t in second.trials] == [2]
    assert first.trials[0].params == START_PARAMS  # enqueued once, by whoever created the study
    assert all(t.params != START_PARAMS for t in second.trials)
    assert {t.worker for t in first.trials} == {1} and {t.worker for t in second.trials} == {2}
    whole = study_result(url, "s")
    assert [t.worker for t in whole.trials] == [1, 1, 2]
    assert whole.best_value == max(t.value for t in whole.trials if t.value is not None) == second.best_value
    assert whole.to_dict()["n_trials"] == 3


def test_create_study_is_idempotent_and_tied_to_its_direction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert create_study(url, "s") is True
    assert create_study(url, "s") is False
    waiting = optuna.load_study(study_name="s", storage=url).get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [START_PARAMS]
    with pytest.raises(ConfigError, match="minimize"):
        create_study(url, "s", metric="binary_logloss")
    with pytest.raises(ConfigError, match="not supported"):
        create_study(url, "t", metric="f1")
    with pytest.raises(NotFoundError, match="no finished trial"):
        study_result(url, "s")
    with pytest.raises(NotFoundError, match="no study 'u'"):
        study_result(url, "u")


def test_bad_storage_urls_are_clear_errors(split: Split, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a study_name"):
        tune(split, FEATURES, CATS, trials=1, storage=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="not a usable database URL"):
        create_study("nosuchdb://host/db", "s")
    with pytest.raises(ExternalToolError, match="cannot connect") as caught:
        create_study(f"postgresql+psycopg2://optuna:hunter2@/optuna?host={tmp_path / 'no-server'}", "s")
    assert "hunter2" not in str(caught.value) and "PGPASSWORD" in str(caught.value.fix)


def test_urls_are_redacted_and_sqlite_paths_are_project_relative(tmp_path: Path) -> None:
    assert (
        redact("postgresql+psycopg2://optuna:s3cret@db:5432/optuna")
        == "postgresql+psycopg2://optuna:***@db:5432/optuna"
    )
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_storage("sqlite:///.noria/optuna.db", tmp_path) == f"sqlite:///{tmp_path}/.noria/optuna.db"
    assert resolve_storage("sqlite:////abs/optuna.db", tmp_path) == "sqlite:////abs/optuna.db"
    assert resolve_storage("postgresql://db/optuna", tmp_path) == "postgresql://db/optuna"


def test_default_study_name_follows_what_trials_measure() -> None:
    settings = TrainingSettings.model_validate(
        {"train": {"from": "2013-01", "to": "2013-05"}, "test": {"from": "2013-06", "to": "2013-06"}}
    )
    context = {
        "model_name": "flight-delay",
        "snapshot_id": "0123456789abcdef",
        "definition_hash": "d1",
        "training": settings.model_dump(mode="json", by_alias=True),
    }
    name = default_study_name(context)
    assert name.startswith("flight-delay-01234567-") and default_study_name(dict(context)) == name
    budget = context | {"training": context["training"] | {"trials": 99, "timeout_seconds": 5}}
    assert default_study_name(budget) == name  # more trials continue the same search
    for changed in (
        context | {"snapshot_id": "fedcba9876543210"},
        context | {"definition_hash": "d2"},
        context | {"training": context["training"] | {"seed": 7}},
    ):
        assert default_study_name(changed) != name
    assert tune_options(settings)["metric"] == "auc"
