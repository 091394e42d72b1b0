"""Serving a multi-class or a regression model: outputs in the task's terms, explanations that add up.

Small real boosters trained here on the serving tests' synthetic rows (three numeric features,
two categorical ones), with a 3-class label and a numeric one.
"""

from __future__ import annotations

import math
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from tests.unit.serving.serving_support import DESCRIPTIONS, FEATURES, INLINE, train_booster, training_frame

from noria.errors import ValidationError
from noria.serving import _lgbm
from noria.serving._lgbm import FastScorer, PathAttribution, batch_contributions, batch_leaves, batch_raw
from noria.serving._lgbm import parse_objective as objective_of
from noria.serving.explain import amounts, class_points, ova_contributions, points, softmax
from noria.serving.model import ModelTaskError, Scored, ServedModel
from noria.serving.sources import LoadedVersion, VersionRef
from noria.tasks import BinaryTask, MulticlassTask, RegressionTask, Task

CLASSES = ("H", "D", "A")
THREE = MulticlassTask(label_name="result", classes=CLASSES)
GLUCOSE = RegressionTask(label_name="glucose in 30 min", unit="mg/dL")
METHODS = ("shap", "path")


def _labels(frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(frame)
    k = np.where(frame["visib"] < 3, 2, np.where(frame["carrier"] == "DL", 1, 0))
    k = np.where(rng.random(n) < 0.25, rng.integers(0, 3, n), k)
    y = 5 * frame["visib"] + 0.3 * frame["temp"] + 10.0 * (frame["carrier"] == "DL") + rng.normal(0, 2, n)
    return k, y.to_numpy()


def _train(objective: str, rounds: int = 20, **params: Any) -> lgb.Booster:
    frame, _ = training_frame(seed=3, n=2000)
    classes, value = _labels(frame, seed=3)
    label = classes if objective.startswith("multiclass") else value
    if objective in ("poisson", "gamma"):
        label = np.exp(value / 40.0)
    settings = {"objective": objective, "verbosity": -1, "num_threads": 1, "num_leaves": 7, "seed": 0, **params}
    if objective.startswith("multiclass"):
        settings["num_class"] = 3
    booster = lgb.train(settings, lgb.Dataset(frame, label), num_boost_round=rounds)
    return lgb.Booster(model_str=booster.model_to_string())


@pytest.fixture(scope="module")
def multiclass() -> lgb.Booster:
    return _train("multiclass")


@pytest.fixture(scope="module")
def regression() -> lgb.Booster:
    return _train("regression")


def _served(booster: lgb.Booster, task: Task | None, method: str = "shap", top: int = 3) -> ServedModel:
    loaded = LoadedVersion(VersionRef("model", 4, "run"), "champion", booster, "hash")
    return ServedModel.build(loaded, task=task, descriptions=DESCRIPTIONS, top=top, method=method)


def _rows(n: int = 25) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    frame, _ = training_frame(seed=11, n=n)
    rows = [
        {k: (str(v) if k in ("carrier", "origin") else float(v)) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    rows[2] = {**rows[2], "temp": None}  # a missing value takes LightGBM's default branch everywhere
    frame.loc[frame.index[2], "temp"] = np.nan
    return frame, rows


def _matrix(model: ServedModel, rows: list[dict[str, Any]]) -> np.ndarray:
    return model.encode(list(rows), None).matrix


def _score(model: ServedModel, rows: list[dict[str, Any]], explain: bool) -> tuple[list[Scored], list[Scored]]:
    """(the rows scored as one batch, each row scored alone)."""
    batch = model.score(model.encode(list(rows), None), 0.5, explain)
    single = [model.score(model.encode([row], None), 0.5, explain)[0] for row in rows]
    return batch, single


# --- multi-class -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_multiclass_probabilities_are_lightgbms_and_sum_to_one(multiclass: lgb.Booster, method: str) -> None:
    model = _served(multiclass, THREE, method)
    frame, rows = _rows()
    expected = multiclass.predict(frame, num_threads=1)
    for explain in (False, True):
        for scored in _score(model, rows, explain):
            got = np.array([s.probabilities for s in scored])
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
            np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)
            for s, p in zip(scored, expected, strict=True):
                assert s.label == CLASSES[int(np.argmax(p))]
                assert s.score == s.probability == pytest.approx(p.max(), abs=1e-9)
                assert s.raw is None and s.decision is None
                assert (s.explanation is not None) == explain


@pytest.mark.parametrize("method", METHODS)
def test_multiclass_single_row_and_batch_agree(multiclass: lgb.Booster, method: str) -> None:
    model = _served(multiclass, THREE, method)
    _, rows = _rows(8)
    batch, single = _score(model, rows, True)
    for a, b in zip(batch, single, strict=True):
        assert a.label == b.label and a.explanation == b.explanation
        np.testing.assert_allclose(a.probabilities or [], b.probabilities or [], atol=1e-12)


def test_native_outputs_have_k_blocks_and_the_path_method_splits_trees_by_class(
    multiclass: lgb.Booster, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _served(multiclass, THREE)
    _, rows = _rows()
    x = _matrix(model, rows)
    raw = batch_raw(multiclass, x)
    shap = batch_contributions(multiclass, x)
    leaves = batch_leaves(multiclass, x)
    assert raw.shape == (len(x), 3) and shap.shape == (len(x), 3 * (len(FEATURES) + 1))
    assert leaves.shape == (len(x), multiclass.num_trees())
    dense = PathAttribution(multiclass)
    monkeypatch.setattr(_lgbm, "DENSE_LIMIT", 0)
    sparse = PathAttribution(multiclass)
    assert dense.dense is not None and sparse.dense is None
    scorer = FastScorer(multiclass)
    for i in range(len(x)):  # the C single-row fast path sizes its buffers for K outputs
        np.testing.assert_allclose(scorer.raw_scores(x[i]), raw[i], atol=1e-12)
        np.testing.assert_allclose(scorer.contributions(x[i]), shap[i], atol=1e-12)
        np.testing.assert_array_equal(scorer.leaves(x[i]), leaves[i])
        path = dense.contributions(leaves[i])
        np.testing.assert_allclose(path, sparse.contributions(leaves[i]), atol=1e-12)
        # per class: that class's trees add up to its raw score, SHAP's blocks too
        np.testing.assert_allclose(path.reshape(3, -1).sum(axis=1), raw[i], atol=1e-9)
        np.testing.assert_allclose(shap[i].reshape(3, -1).sum(axis=1), raw[i], atol=1e-9)
    # Several rows at once (a service's batch): the same blocks as row by row, dense or sparse
    for paths in (dense, sparse):
        one_by_one = np.stack([paths.contributions(leaves[i]) for i in range(len(x))])
        np.testing.assert_allclose(paths.contributions_rows(leaves), one_by_one, atol=1e-12)
    scorer.close()


@pytest.mark.parametrize("method", METHODS)
def test_multiclass_points_add_up_to_the_change_of_the_predicted_class(multiclass: lgb.Booster, method: str) -> None:
    model = _served(multiclass, THREE, method, top=len(FEATURES))
    frame, rows = _rows()
    x = _matrix(model, rows)
    if method == "shap":
        blocks = batch_contributions(multiclass, x).reshape(len(x), 3, -1)
    else:
        paths = PathAttribution(multiclass)
        blocks = np.stack([paths.contributions(leaf).reshape(3, -1) for leaf in batch_leaves(multiclass, x)])
    expected = multiclass.predict(frame, num_threads=1)
    scored = model.score(model.encode(rows, None), 0.5, True)
    for i in range(len(x)):
        for k in range(3):  # exact for every class, not only the predicted one
            d, pts, p0, p = class_points(blocks[i], k)
            assert p0 == pytest.approx(softmax(blocks[i][:, -1])[k], abs=1e-12)
            assert p == pytest.approx(expected[i, k], abs=1e-9)
            assert pts.sum() == pytest.approx(100 * (p - p0), abs=1e-9)
            assert np.all(np.sign(pts) == np.sign(d))  # a feature's points follow its log-odds
            assert d.sum() == pytest.approx(math.log(p / (1 - p)) - math.log(p0 / (1 - p0)), abs=1e-9)
        explanation = scored[i].explanation
        assert explanation is not None
        k = CLASSES.index(explanation["class"])
        assert explanation["class"] == scored[i].label
        _, pts, p0, p = class_points(blocks[i], k)
        assert explanation["baseline_probability"] == pytest.approx(p0, abs=1e-6)
        items = explanation["contributions"]
        assert sum(c["points"] for c in items) == pytest.approx(100 * (p - p0), abs=1e-3 * len(items))
        for c in items:
            assert set(c) == {"feature", "value", "log_odds", "points", "text"}
            verb = "raised" if c["points"] >= 0 else "lowered"
            assert f" {verb} the chance of {explanation['class']} by " in c["text"]
        assert [abs(c["log_odds"]) for c in items] == sorted((abs(c["log_odds"]) for c in items), reverse=True)


def test_multiclass_points_with_two_classes_are_the_binary_points() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        blocks = rng.normal(size=(2, 6))
        d, pts, p0, p = class_points(blocks, 1)
        binary, q0, q = points(blocks[1] - blocks[0])  # class 1 against class 0: log-odds c_i1 - c_i0
        np.testing.assert_allclose(d, blocks[1, :-1] - blocks[0, :-1], atol=1e-12)
        np.testing.assert_allclose(pts, binary, atol=1e-9)
        assert (p0, p) == pytest.approx((q0, q), abs=1e-12)


def test_multiclass_points_ignore_what_lifts_every_class_alike() -> None:
    rng = np.random.default_rng(2)
    blocks = rng.normal(size=(4, 5))
    shifted = blocks + rng.normal(size=(1, 5))  # each feature (and the bias) adds the same to every class
    for k in range(4):
        d, pts, p0, p = class_points(blocks, k)
        d2, pts2, _, _ = class_points(shifted, k)
        np.testing.assert_allclose(d2, d, atol=1e-9)
        np.testing.assert_allclose(pts2, pts, atol=1e-9)
    flat = np.zeros((3, 4))
    flat[:, 0] = 0.7  # a feature that lifts all three classes by the same amount: no effect on any
    d, pts, p0, p = class_points(flat, 0)
    assert p == pytest.approx(p0) and np.allclose(pts, 0.0) and all(map(math.isfinite, pts))


def test_one_vs_all_models_give_normalised_sigmoids_and_exact_points() -> None:
    booster = _train("multiclassova")
    frame, rows = _rows()
    sigmoids = booster.predict(frame, num_threads=1)
    expected = sigmoids / sigmoids.sum(axis=1, keepdims=True)
    for method in METHODS:
        model = _served(booster, THREE, method)
        for explain in (False, True):
            for scored in _score(model, rows, explain):
                np.testing.assert_allclose([s.probabilities for s in scored], expected, atol=1e-9)
    blocks = batch_contributions(booster, _matrix(model, rows)).reshape(len(rows), 3, -1)
    for i in range(len(rows)):
        for k in range(3):
            _, pts, p0, p = class_points(ova_contributions(blocks[i]), k)
            assert p == pytest.approx(expected[i, k], abs=1e-9)
            assert pts.sum() == pytest.approx(100 * (p - p0), abs=1e-9)


# --- regression ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_regression_predictions_are_lightgbms_and_amounts_add_up(regression: lgb.Booster, method: str) -> None:
    model = _served(regression, GLUCOSE, method, top=len(FEATURES))
    frame, rows = _rows()
    expected = regression.predict(frame, num_threads=1)
    for explain in (False, True):
        batch, single = _score(model, rows, explain)
        for scored in (batch, single):
            np.testing.assert_allclose([s.score for s in scored], expected, rtol=0, atol=1e-9)
            for s in scored:
                assert s.raw == pytest.approx(s.score, abs=1e-12)
                assert s.probability is None and s.decision is None and s.label is None and s.probabilities is None
        if explain:
            assert [s.explanation for s in batch] == [s.explanation for s in single]
    x = _matrix(model, rows)
    if method == "shap":
        contribs = batch_contributions(regression, x)
    else:
        paths = PathAttribution(regression)
        contribs = np.stack([paths.contributions(leaf) for leaf in batch_leaves(regression, x)])
    for i in range(len(x)):
        amount, baseline, prediction = amounts(contribs[i])
        assert prediction == pytest.approx(expected[i], abs=1e-9)
        assert baseline + amount.sum() == pytest.approx(prediction, abs=1e-9)
        explanation = batch[i].explanation
        assert explanation is not None and explanation["baseline"] == pytest.approx(baseline, abs=1e-6)
        items = explanation["contributions"]
        assert explanation["baseline"] + sum(c["amount"] for c in items) == pytest.approx(expected[i], abs=1e-5)
        for c in items:
            assert set(c) == {"feature", "value", "amount", "text"}
            assert " the predicted glucose in 30 min by " in c["text"] and c["text"].endswith(" mg/dL")


def test_regression_explanations_read_in_the_targets_unit(regression: lgb.Booster) -> None:
    model = _served(regression, GLUCOSE, top=2)
    row = {**INLINE, "visib": 9.5, "carrier": "DL"}
    explanation = model.score(model.encode([row], None), 0.5, True)[0].explanation
    assert explanation is not None
    first = explanation["contributions"][0]
    assert first["feature"] == "visib"  # the strongest effect in the synthetic target (5 per mile)
    assert first["text"].startswith("visibility 9.5 mi raised the predicted glucose in 30 min by ")
    plain = _served(regression, RegressionTask(unit="min")).score(model.encode([row], None), 0.5, True)[0]
    assert plain.explanation is not None
    assert " raised the prediction by " in plain.explanation["contributions"][0]["text"]


@pytest.mark.parametrize("objective", ["poisson", "huber"])
def test_regression_with_a_link_predicts_and_explains_in_the_targets_unit(objective: str) -> None:
    booster = _train(objective)
    frame, rows = _rows()
    expected = booster.predict(frame, num_threads=1)
    for method in METHODS:
        model = _served(booster, GLUCOSE, method)
        for explain in (False, True):
            for scored in _score(model, rows, explain):
                np.testing.assert_allclose([s.score for s in scored], expected, rtol=1e-12, atol=1e-12)
    contribs = batch_contributions(booster, _matrix(model, rows))
    link = "exp" if objective == "poisson" else "identity"
    assert model.link == link
    for i in range(len(rows)):
        amount, baseline, prediction = amounts(contribs[i], link)
        assert prediction == pytest.approx(expected[i], rel=1e-12)
        assert baseline == pytest.approx(math.exp(contribs[i][-1]) if link == "exp" else contribs[i][-1])
        assert baseline + amount.sum() == pytest.approx(prediction, abs=1e-9)
        assert np.all(np.sign(amount) == np.sign(contribs[i][:-1]))


def test_path_method_averages_a_random_forests_trees() -> None:
    booster = _train("regression", rounds=8, boosting="rf", bagging_fraction=0.6, bagging_freq=1)
    frame, rows = _rows()
    model = _served(booster, GLUCOSE, "path")
    scored = model.score(model.encode(rows, None), 0.5, True)
    np.testing.assert_allclose([s.score for s in scored], booster.predict(frame, num_threads=1), atol=1e-9)


# --- the model must fit the task -------------------------------------------------------------


def test_a_model_of_another_task_is_refused_naming_both(multiclass: lgb.Booster, regression: lgb.Booster) -> None:
    binary = train_booster(seed=0, rounds=5)
    cases = [
        (binary, THREE, "binary", "multiclass"),
        (multiclass, None, "multiclass", "binary"),  # the default task is binary
        (regression, BinaryTask(), "regression", "binary"),
        (binary, GLUCOSE, "binary", "regression"),
        (multiclass, GLUCOSE, "multiclass", "regression"),
    ]
    for booster, task, trained, wanted in cases:
        with pytest.raises(ModelTaskError) as err:
            _served(booster, task)
        assert isinstance(err.value, ValidationError)
        message = err.value.message
        assert f"a {trained} model" in message and f"the project's task is {wanted}" in message, message
        assert "model 4" in message or "model model version 4" in message
        assert err.value.fix and "model.task" in err.value.fix
    assert _served(binary, BinaryTask()).link == "sigmoid"


def test_a_multiclass_model_with_other_classes_is_refused(multiclass: lgb.Booster) -> None:
    with pytest.raises(ModelTaskError, match=r"has 3 classes .* lists 4 \(H, D, A, X\)"):
        _served(multiclass, MulticlassTask(classes=(*CLASSES, "X")))
    with pytest.raises(ModelTaskError, match="lists 2"):
        _served(multiclass, MulticlassTask(classes=("H", "A")))


def test_objectives_serving_cannot_convert_are_refused() -> None:
    def kind(text: str) -> tuple[str, str]:
        objective = objective_of(text)
        return objective.task, objective.link

    assert kind("binary sigmoid:1") == kind("cross_entropy") == ("binary", "sigmoid")
    assert kind("multiclass num_class:5") == ("multiclass", "softmax")
    assert kind("multiclassova num_class:3 sigmoid:1") == ("multiclass", "ova")
    assert objective_of("multiclass num_class:5").num_class == 5
    for name in ("regression", "regression_l1", "huber", "fair", "quantile alpha:0.9", "mape"):
        assert kind(name) == ("regression", "identity")
    for name in ("poisson", "gamma", "tweedie"):
        assert kind(name) == ("regression", "exp")
    assert kind("regression sqrt") == ("regression", "square")
    for text in ("lambdarank", "cross_entropy_lambda", "binary sigmoid:2", "poisson sqrt", ""):
        assert objective_of(text).task == "" and objective_of(text).problem
    ranker = lgb.train(
        {"objective": "lambdarank", "verbosity": -1, "num_threads": 1},
        lgb.Dataset(np.random.default_rng(0).normal(size=(60, 2)), np.arange(60) % 3, group=[20, 20, 20]),
        num_boost_round=2,
    )
    with pytest.raises(ModelTaskError, match="cannot be served: serving does not know the objective 'lambdarank'"):
        _served(ranker, BinaryTask())


def test_reg_sqrt_models_predict_the_square() -> None:
    booster = _train("regression", reg_sqrt=True)
    frame, rows = _rows()
    model = _served(booster, GLUCOSE, "path")
    expected = booster.predict(frame, num_threads=1)
    for explain in (False, True):
        for scored in _score(model, rows, explain):
            np.testing.assert_allclose([s.score for s in scored], expected, rtol=1e-12)
