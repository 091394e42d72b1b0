"""Training, tuning, baselines, evaluation and the model card for multi-class and regression tasks."""

from __future__ import annotations

import base64
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from task_frames import (
    CATEGORICAL,
    CLASSES,
    FAST,
    FEATURES,
    LABEL,
    MULTICLASS,
    REGRESSION,
    TIME,
    multiclass_frame,
    regression_frame,
    split_of,
)

from noria.errors import ConfigError, DataError
from noria.monitoring import ReferenceProfile
from noria.periods import Period
from noria.training import (
    Split,
    TrainedModel,
    TrainingSettings,
    evaluate,
    feature_importance,
    fit_baselines,
    model_info,
    row_scores,
    run_training,
    train,
    tune,
    write_model_card,
)
from noria.training.config import BaselineFunction

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mc_split() -> Split:
    return split_of(multiclass_frame(), MULTICLASS)


@pytest.fixture(scope="module")
def reg_split() -> Split:
    return split_of(regression_frame(), REGRESSION)


@pytest.fixture(scope="module")
def mc_model(mc_split: Split) -> TrainedModel:
    return train(mc_split, FEATURES, CATEGORICAL, **FAST)


@pytest.fixture(scope="module")
def reg_model(reg_split: Split) -> TrainedModel:
    return train(reg_split, FEATURES, CATEGORICAL, **FAST)


# --- training -----------------------------------------------------------------------------


def test_multiclass_model_predicts_class_probabilities(mc_model: TrainedModel, mc_split: Split, tmp_path: Path) -> None:
    p = mc_model.predict(mc_split.test)
    assert p.shape == (len(mc_split.test), 3)
    assert np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()
    assert mc_model.params["objective"] == "multiclass" and mc_model.params["num_class"] == 3
    assert "objective=multiclass num_class:3" in mc_model.model_text()
    assert set(mc_model.valid_curve) == {"multi_logloss", "multi_error"}
    # early stopping on the first metric: the best iteration has the lowest validation log loss
    assert int(np.argmin(mc_model.valid_curve["multi_logloss"])) + 1 == mc_model.best_iteration
    assert mc_model.predict(mc_split.test.iloc[:0]).shape == (0, 3)
    assert np.array_equal(mc_model.scores(mc_split.test), p.max(axis=1))

    mc_model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    assert (meta["task"], meta["classes"], meta["objective"]) == ("multiclass", list(CLASSES), "multiclass")
    loaded = TrainedModel.load(tmp_path)
    assert loaded.task == MULTICLASS
    assert np.array_equal(loaded.predict(mc_split.test), p)


def test_regression_model_predicts_values(reg_model: TrainedModel, reg_split: Split, tmp_path: Path) -> None:
    v = reg_model.predict(reg_split.test)
    assert v.shape == (len(reg_split.test),)
    assert 100 < v.mean() < 180  # in the label's range, not a probability
    assert reg_model.params["objective"] == "regression" and "num_class" not in reg_model.params
    assert set(reg_model.valid_curve) == {"rmse", "l1"}
    assert int(np.argmin(reg_model.valid_curve["rmse"])) + 1 == reg_model.best_iteration
    assert np.array_equal(row_scores(REGRESSION, v), v)
    reg_model.save(tmp_path)
    loaded = TrainedModel.load(tmp_path)
    assert loaded.task == REGRESSION and loaded.task.unit == "mg/dL"
    assert np.array_equal(loaded.predict(reg_split.test), v)


def test_load_refuses_a_model_json_of_another_task(reg_model: TrainedModel, tmp_path: Path) -> None:
    reg_model.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps(meta | {"task": "binary"}))
    with pytest.raises(DataError, match="objective 'regression'"):
        TrainedModel.load(tmp_path)


def test_a_metric_of_another_task_is_refused(reg_split: Split) -> None:
    with pytest.raises(ConfigError, match="'auc' does not fit a regression model"):
        train(reg_split, FEATURES, CATEGORICAL, metric="auc", **FAST)
    with pytest.raises(ConfigError, match="multi_logloss"):
        tune(reg_split, FEATURES, CATEGORICAL, trials=1, metric="multi_logloss")


def test_early_stopping_on_another_metric_of_the_task(mc_split: Split) -> None:
    model = train(mc_split, FEATURES, CATEGORICAL, metric="multi_error", **FAST)
    assert model.params["metric"] == ["multi_error", "multi_logloss"]


# --- tuning -------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "metric"), [("multiclass", "multi_logloss"), ("regression", "rmse")])
def test_tuning_minimises_the_tasks_metric(which: str, metric: str, mc_split: Split, reg_split: Split) -> None:
    split = mc_split if which == "multiclass" else reg_split
    result = tune(split, FEATURES, CATEGORICAL, trials=2, seed=3, max_rounds=40, early_stopping_rounds=5)
    assert result.metric == metric and result.direction == "minimize" and result.n_trials == 2
    done = [t.value for t in result.trials if t.value is not None]
    assert result.best_value == min(done)
    model = train(split, FEATURES, CATEGORICAL, result.best_params, seed=3, max_rounds=40, early_stopping_rounds=5)
    assert model.best_iteration > 0


# --- baselines ----------------------------------------------------------------------------

PROJECT_BASELINES = textwrap.dedent(
    """\
    import numpy as np


    def persistence(frame):
        return 140.0 + 25.0 * frame["x1"].to_numpy()


    def favourites(frame):
        p = np.where(frame["x1"].to_numpy()[:, None] > 0, [0.6, 0.25, 0.15], [0.2, 0.3, 0.5])
        return p


    def wrong_shape(frame):
        return np.zeros((len(frame), 2))
    """
)


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    (tmp_path / "mine.py").write_text(PROJECT_BASELINES)
    return tmp_path


def test_multiclass_baselines(mc_split: Split, project_root: Path) -> None:
    kinds = ["class_prior", "logistic_regression", "context_lightgbm"]
    functions = [BaselineFunction(name="favourites", function="mine:favourites")]
    baselines = fit_baselines(
        mc_split, kinds, FEATURES, CATEGORICAL, context_features=["group"], functions=functions, root=project_root
    )
    assert [b.name for b in baselines] == [*kinds, "favourites"]
    test = mc_split.test
    for b in baselines:
        p = b.predict(test)
        assert p.shape == (len(test), 3) and np.allclose(p.sum(axis=1), 1.0), b.name
    train_labels = mc_split.train[LABEL].to_numpy()
    shares = np.bincount(train_labels, minlength=3) / len(train_labels)
    assert np.allclose(baselines[0].predict(test), shares)
    ev = evaluate(np.tile(shares, (len(test), 1)), test, LABEL, task=MULTICLASS, baselines=baselines)
    prior = ev.baselines[0].metrics
    # the prior's accuracy is that of always answering the training majority class
    assert prior["accuracy"] == pytest.approx(float((test[LABEL] == shares.argmax()).mean()))
    assert prior["log_loss"] == pytest.approx(log_loss(test[LABEL], np.tile(shares, (len(test), 1)), labels=[0, 1, 2]))
    logistic = ev.baselines[1].metrics
    assert logistic["log_loss"] is not None and logistic["log_loss"] < prior["log_loss"]  # features help


def test_regression_baselines(reg_split: Split, project_root: Path) -> None:
    functions = [BaselineFunction(name="persistence", function="mine:persistence", description="140 + 25 x1")]
    baselines = fit_baselines(
        reg_split,
        ["mean", "linear_regression", "context_lightgbm"],
        FEATURES,
        CATEGORICAL,
        context_features=["x1"],
        functions=functions,
        root=project_root,
    )
    test = reg_split.test
    mean = baselines[0].predict(test)
    assert np.allclose(mean, reg_split.train[LABEL].mean())
    ev = evaluate(mean, test, LABEL, task=REGRESSION, baselines=baselines)
    rmse = {b.name: b.metrics["rmse"] for b in ev.baselines}
    assert rmse["linear_regression"] < rmse["mean"] and rmse["context_lightgbm"] < rmse["mean"]
    expected = np.sqrt(mean_squared_error(test[LABEL], 140.0 + 25.0 * test["x1"]))
    assert rmse["persistence"] == pytest.approx(expected)
    assert ev.baselines[3].description == "140 + 25 x1"


def test_baseline_errors_name_the_problem(mc_split: Split, reg_split: Split, project_root: Path) -> None:
    with pytest.raises(ConfigError, match="'majority_rate' is not a multiclass baseline"):
        fit_baselines(mc_split, ["majority_rate"], FEATURES, CATEGORICAL)
    with pytest.raises(ConfigError, match="'mean' is not a binary baseline"):
        fit_baselines(Split(**{**mc_split.__dict__, "task": None}), ["mean"], FEATURES, CATEGORICAL)
    wrong = [BaselineFunction(name="odd", function="mine:wrong_shape")]
    [odd] = fit_baselines(mc_split, [], FEATURES, CATEGORICAL, functions=wrong, root=project_root)
    with pytest.raises(DataError, match=r"baseline odd \(mine:wrong_shape\) returned an array of shape \(\d+, 2\)"):
        evaluate(np.full((len(mc_split.test), 3), 1 / 3), mc_split.test, LABEL, task=MULTICLASS, baselines=[odd])
    [as_reg] = fit_baselines(reg_split, [], FEATURES, CATEGORICAL, functions=wrong, root=project_root)
    with pytest.raises(DataError, match="wrong_shape"):
        as_reg.predict(reg_split.test)
    missing = [BaselineFunction(name="gone", function="mine:nothing_here")]
    with pytest.raises(Exception, match="nothing_here"):
        fit_baselines(reg_split, [], FEATURES, CATEGORICAL, functions=missing, root=project_root)
    with pytest.raises(ConfigError, match="project folder"):
        fit_baselines(reg_split, [], FEATURES, CATEGORICAL, functions=missing)


# --- evaluation ---------------------------------------------------------------------------


def test_multiclass_evaluation_matches_scikit_learn(mc_model: TrainedModel, mc_split: Split) -> None:
    test = mc_split.test
    ev = evaluate(mc_model, test, LABEL, slices={"group": "group"}, min_slice_rows=100)
    p, y = mc_model.predict(test), test[LABEL].to_numpy()
    assert ev.task == "multiclass" and ev.classes == list(CLASSES) and ev.primary_metric == "log_loss"
    assert ev.metrics["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2]))
    assert ev.metrics["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(axis=1)))
    assert ev.metrics["macro_f1"] == pytest.approx(f1_score(y, p.argmax(axis=1), average="macro"))
    assert ev.confusion is not None
    assert ev.confusion["counts"] == confusion_matrix(y, p.argmax(axis=1), labels=[0, 1, 2]).tolist()
    assert ev.calibration is not None and sum(b.rows for b in ev.calibration.bins) == len(test)
    assert ev.roc is None and ev.threshold is None and ev.residuals is None
    for s in ev.slices:
        rows = (test["group"] == s.value).to_numpy()
        assert s.status == "ok" and s.positives is None and s.metrics is not None
        assert s.metrics["log_loss"] == pytest.approx(log_loss(y[rows], p[rows], labels=[0, 1, 2]))

    flat = ev.flat_metrics()
    assert flat["test_log_loss"] == ev.metrics["log_loss"] and "test_accuracy" in flat and "test_macro_f1" in flat
    assert "test_roc_auc" not in flat and "test_rows" not in flat and "test_calibration_ece" not in flat
    assert flat["test_slice_group_a_log_loss"] == pytest.approx(ev.slices[0].metrics["log_loss"])  # type: ignore[index]
    payload = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert payload["task"] == "multiclass" and payload["confusion"]["classes"] == list(CLASSES)


def test_regression_evaluation_matches_scikit_learn(reg_model: TrainedModel, reg_split: Split) -> None:
    test = reg_split.test
    ev = evaluate(reg_model, test, LABEL, slices={"group": "group"}, min_slice_rows=150)
    v, y = reg_model.predict(test), test[LABEL].to_numpy()
    assert (ev.primary_metric, ev.higher_is_better, ev.unit) == ("rmse", False, "mg/dL")
    assert ev.metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, v)))
    assert ev.metrics["mae"] == pytest.approx(mean_absolute_error(y, v))
    assert ev.metrics["r2"] == pytest.approx(r2_score(y, v))
    assert ev.metrics["bias"] == pytest.approx(float(np.mean(v - y)))
    r = ev.residuals
    assert r is not None and ev.calibration is None and ev.confusion is None
    assert r["error_quantiles"]["q50"] == pytest.approx(float(np.median(v - y)))
    assert r["abs_error_quantiles"]["q90"] == pytest.approx(float(np.quantile(np.abs(v - y), 0.9)))
    deciles = r["by_label_decile"]
    assert len(deciles) == 10 and sum(d["rows"] for d in deciles) == len(y)
    assert [d["low"] for d in deciles] == sorted(d["low"] for d in deciles)
    assert len(r["points"]["actual"]) == len(y)  # fewer than 2,000 rows: all of them
    for s in ev.slices:
        rows = (test["group"] == s.value).to_numpy()
        assert s.metrics is not None
        assert s.metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y[rows], v[rows])))
    flat = ev.flat_metrics()
    assert {"test_rmse", "test_mae", "test_r2", "test_bias", "test_mean_label"} <= set(flat)
    assert "test_slice_group_b_rmse" in flat


def test_small_slices_are_skipped_with_a_reason(reg_model: TrainedModel, reg_split: Split) -> None:
    ev = evaluate(reg_model, reg_split.test, LABEL, slices={"group": "group"}, min_slice_rows=10_000)
    assert {s.status for s in ev.slices} == {"skipped"}
    assert all("fewer than 10000 rows" in s.reason for s in ev.slices)
    assert not [k for k in ev.flat_metrics() if "slice_" in k]


def test_predictions_of_the_wrong_shape_are_refused(mc_split: Split) -> None:
    with pytest.raises(DataError, match="expected"):
        evaluate(np.full(len(mc_split.test), 0.5), mc_split.test, LABEL, task=MULTICLASS)


def test_reference_profile_takes_the_predicted_class_probability(mc_model: TrainedModel, mc_split: Split) -> None:
    p = mc_model.predict(mc_split.train)
    profile = ReferenceProfile.build(mc_split.train[FEATURES], scores=p, categorical=CATEGORICAL)
    same = ReferenceProfile.build(mc_split.train[FEATURES], scores=p.max(axis=1), categorical=CATEGORICAL)
    assert profile.score is not None and profile.score.to_dict() == same.score.to_dict()  # type: ignore[union-attr]


# --- model card ---------------------------------------------------------------------------


def card(model: TrainedModel, split: Split, tmp_path: Path, **kwargs: object) -> tuple[str, str]:
    ev = evaluate(model, split.test, LABEL, slices={"group": "group"}, min_slice_rows=100, **kwargs)  # type: ignore[arg-type]
    info = model_info(model, split, name="m", version=2)
    md, page = write_model_card(tmp_path, info, ev, feature_importance(model), {"data snapshot": "s1"})
    html = page.read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert all(base64.b64decode(data).startswith(PNG) for data in images)
    return md.read_text(), html


def linked(text: str) -> set[str]:
    return set(re.findall(r"!\[[^\]]*\]\(model_card_files/([a-z]+)\.png\)", text))


def test_multiclass_card(mc_model: TrainedModel, mc_split: Split, tmp_path: Path) -> None:
    baselines = fit_baselines(mc_split, ["class_prior"], FEATURES, CATEGORICAL)
    text, html = card(mc_model, mc_split, tmp_path, baselines=baselines)
    assert linked(text) == {"importance", "confusion", "calibration", "slices"}
    assert html.count("<img ") == 4
    assert "Predicts the probability of each class of label (H, D, A; they sum to 1)" in text
    assert "Holdout log loss" in text and "lower is better" in text and "class_prior" in text
    assert "## Confusion matrix" in text and "share H" in text and "Class shares moved" in text
    assert "positive rate" not in text.lower() and "cancellation" not in text.lower()


def test_regression_card(reg_model: TrainedModel, reg_split: Split, tmp_path: Path) -> None:
    baselines = fit_baselines(reg_split, ["mean"], FEATURES, CATEGORICAL)
    text, html = card(reg_model, reg_split, tmp_path, baselines=baselines)
    assert linked(text) == {"importance", "predicted", "residuals", "slices"}
    assert html.count("<img ") == 4
    assert "Predicts glucose in 30 min, in mg/dL. Holdout RMSE" in text
    assert "## Residuals" in text and "The label's mean went from 150.998 to 150.358 mg/dL" in text
    assert "positive rate" not in text.lower() and "calibration" not in text.lower()


def test_run_training_for_a_regression(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "mine.py").write_text(PROJECT_BASELINES)
    settings = TrainingSettings(
        train=Period(start="2013-01", end="2013-08"),
        test=Period(start="2013-09", end="2013-12"),
        time_column=TIME,
        trials=2,
        max_boost_rounds=40,
        early_stopping_rounds=5,
        slices=["group"],
        min_slice_rows=50,
        baselines=["mean", BaselineFunction(name="persistence", function="mine:persistence")],
    )
    out = run_training(
        regression_frame(), label=LABEL, features=FEATURES, categorical=CATEGORICAL, settings=settings,
        out_dir=tmp_path / "out", task=REGRESSION, root=tmp_path / "proj",
    )  # fmt: skip
    summary = out.summary()
    assert summary["task"] == "regression" and summary["primary_metric"] == "rmse"
    assert set(summary["baselines"]) == {"mean", "persistence"}
    assert out.tuning is not None and out.tuning.metric == "rmse"
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert saved["metrics"]["rmse"] == pytest.approx(out.evaluation.metrics["rmse"])
    assert (tmp_path / "out" / "model_card_files" / "residuals.png").is_file()
    # the card reads the project's pages from `root`: this folder has none, and the card says so
    assert "docs/goals.md is not written yet" in (tmp_path / "out" / "model_card.md").read_text()


def test_labels_of_a_frame_with_strings_are_refused() -> None:
    frame = multiclass_frame().assign(**{LABEL: "H"})
    with pytest.raises(DataError, match="class indexes"):
        split_of(frame, MULTICLASS)
    assert isinstance(pd.Timestamp("2013-01-01", tz="UTC"), pd.Timestamp)
