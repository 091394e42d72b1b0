from __future__ import annotations

import pytest
from training_flights_frame import TEST_CATEGORICAL as CATS
from training_flights_frame import TEST_FEATURES as FEATURES

from noria.errors import ConfigError
from noria.training import SEARCH_SPACE, Split, TrialSummary, train, tune
from noria.training.tuning import START_PARAMS


def test_trial_budget_is_respected_and_reported(split: Split) -> None:
    seen: list[TrialSummary] = []
    result = tune(
        split, FEATURES, CATS, trials=3, seed=1, max_rounds=80, early_stopping_rounds=10, on_trial=seen.append
    )
    assert result.n_trials == 3 and len(seen) == 3
    assert [t.number for t in result.trials] == [0, 1, 2]
    assert result.trials[0].params == START_PARAMS  # tuning starts from the untuned defaults
    assert set(result.best_params) == set(SEARCH_SPACE)
    done = [t for t in result.trials if t.state == "complete"]
    assert result.best_value == max(t.value for t in done if t.value is not None)
    assert result.metric == "auc" and result.direction == "maximize"
    assert 0 < result.best_iteration <= 80
    low, high, _, _ = SEARCH_SPACE["num_leaves"]
    assert all(low <= t.params["num_leaves"] <= high for t in result.trials)
    payload = result.to_dict()
    assert payload["n_trials"] == 3 and len(payload["trials"]) == 3


def test_tuning_then_training_is_reproducible(split: Split) -> None:
    texts = []
    for _ in range(2):
        result = tune(split, FEATURES, CATS, trials=3, seed=5, max_rounds=60, early_stopping_rounds=10)
        model = train(split, FEATURES, CATS, result.best_params, seed=5, max_rounds=60, early_stopping_rounds=10)
        texts.append((result.best_params, model.model_text()))
    assert texts[0] == texts[1]


def test_trials_learn_on_a_bounded_sample_and_say_so(split: Split) -> None:
    """A trial costs the same however much history there is: fit and validation rows are
    capped by seeded samples (the same sample every time), and the result records the sizes."""
    cap = 1_000
    assert len(split.fit) > cap and len(split.valid) > cap // 4
    runs = [
        tune(split, FEATURES, CATS, trials=2, seed=3, max_rounds=40, early_stopping_rounds=5, sample_rows=cap)
        for _ in range(2)
    ]
    first = runs[0].to_dict()
    assert (first["fit_rows"], first["valid_rows"], first["sampled"]) == (cap, cap // 4, True)
    assert runs[0].best_params == runs[1].best_params and runs[0].best_value == runs[1].best_value
    whole = tune(split, FEATURES, CATS, trials=1, seed=3, max_rounds=40, early_stopping_rounds=5)
    assert (whole.fit_rows, whole.valid_rows, whole.sampled) == (len(split.fit), len(split.valid), False)


def test_log_loss_is_minimised(split: Split) -> None:
    result = tune(split, FEATURES, CATS, trials=1, metric="binary_logloss", max_rounds=40, early_stopping_rounds=5)
    assert result.direction == "minimize" and 0 < result.best_value < 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"trials": 0}, "at least 1"), ({"metric": "f1"}, "not supported"), ({"timeout": 0}, "positive")],
)
def test_bad_budgets(split: Split, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tune(split, FEATURES, CATS, **kwargs)  # type: ignore[arg-type]
