"""Train a LightGBM model and keep it in LightGBM's own text format (never pickle).

A saved model is a folder with two files: ``model.txt`` (``Booster.model_to_string()``; it
holds the trees, the feature names, the parameters, the objective and the category lists) and
``model.json`` (what Noria needs around it: the task and its classes, label, feature roles,
best iteration, the validation curve, and the SHA-256 of ``model.txt`` so a damaged file is
caught on load).

The task (:mod:`noria.tasks`, carried by the split) sets the objective: ``binary``,
``multiclass`` with ``num_class`` K, or ``regression``; :meth:`TrainedModel.predict` returns
P(positive) per row, an (n, K) matrix of class probabilities, or the predicted values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from noria import atomic
from noria.errors import ConfigError, DataError, NotFoundError
from noria.tasks import BinaryTask, Task, make_task
from noria.training.config import TUNE_METRICS
from noria.training.split import Split

MODEL_FILE = "model.txt"
META_FILE = "model.json"
FORMAT = "lightgbm-text/1"

# Fixed for reproducibility: the same inputs and seed give the same trees (and model text).
FIXED_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "verbosity": -1,
    "deterministic": True,
    "force_row_wise": True,
    "feature_pre_filter": False,  # lets tuning vary min_child_samples on one Dataset
    "bagging_freq": 1,
}
# Used when there is no tuning (trials = 0): sensible for tens of thousands of rows and up.
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_child_samples": 50,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "lambda_l2": 1.0,
}


def lgb_params(
    params: dict[str, Any] | None, *, seed: int, num_threads: int, metric: str, task: Task | None = None
) -> dict[str, Any]:
    """Full LightGBM parameters: fixed settings and the task's objective, then ``params`` (or the
    defaults), then seed/threads and the metrics (``metric`` first, for early stopping, then the
    task's other recorded ones)."""
    task = task or BinaryTask()
    check_metric(metric, task)
    metrics = [metric, *(m for m in TUNE_METRICS[task.name][:2] if m != metric)]
    merged = {**FIXED_PARAMS, **task.lgb_params(), **(DEFAULT_PARAMS if params is None else params)}
    merged |= {"seed": seed, "num_threads": num_threads, "metric": metrics}
    return merged


def check_metric(metric: str, task: Task) -> None:
    """Refuse a LightGBM metric that does not measure the task (e.g. ``auc`` for a regression)."""
    allowed = TUNE_METRICS[task.name]
    if metric not in allowed:
        raise ConfigError(f"metric {metric!r} does not fit a {task.name} model", fix=f"use one of {', '.join(allowed)}")


def model_objective(text: str) -> str:
    """The ``objective=`` line of a LightGBM model text, e.g. ``multiclass num_class:3``."""
    for line in text.splitlines():
        if line.startswith("objective="):
            return line.removeprefix("objective=").strip()
        if line.startswith("Tree="):
            break
    return ""


def row_scores(task: Task, predictions: np.ndarray) -> np.ndarray:
    """One number per row, as the service logs it as ``score``: a binary model's P(positive), a
    multi-class model's probability of its predicted class, a regression model's value."""
    values = np.asarray(predictions, dtype=np.float64)
    if task.name == "multiclass":
        return values.max(axis=1) if values.size else np.zeros(len(values), dtype=np.float64)
    return values.ravel()


def model_frame(frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """The feature columns as LightGBM wants them: numbers, and pandas categoricals for categories."""
    stray = [c for c in categorical if c not in features]
    if stray:
        raise ConfigError(
            f"categorical columns {stray} are not among the features",
            fix="list every categorical column in the features too, or drop it from categorical",
        )
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DataError(
            f"the frame lacks feature columns {missing}",
            fix="build the training/scoring frame with every feature the model was trained on",
        )
    out = frame.loc[:, list(features)].copy()
    cats = set(categorical)
    for col in features:
        values = out[col]
        if col in cats:
            if not isinstance(values.dtype, pd.CategoricalDtype):
                out[col] = values.astype("category")
        elif isinstance(values.dtype, pd.CategoricalDtype) or not (
            pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        ):
            raise DataError(
                f"feature {col!r} has dtype {values.dtype}: neither numeric nor declared categorical",
                fix=f"add {col!r} to the categorical features, or convert it to numbers",
            )
    return out


@dataclass
class Matrix:
    """Rows as LightGBM learns from them: one float64 array (rows x features, C order) and the labels.

    A categorical feature holds codes: code ``i`` is ``categories[feature][i]`` and NaN is missing
    (or a value outside the list), which is what LightGBM makes of a pandas categorical. The
    lists go into the model (``pandas_categorical``), so a model learnt from a matrix scores
    pandas frames as one learnt from frames does. A slice of rows (:meth:`rows`) is a view: no copy.
    """

    x: np.ndarray
    y: np.ndarray
    features: list[str]
    categories: dict[str, list[Any]]  # categorical feature -> its values, in code order

    def __len__(self) -> int:
        return len(self.y)

    @property
    def categorical(self) -> list[str]:
        return list(self.categories)

    def rows(self, which: slice | np.ndarray) -> Matrix:
        """Some of the rows: a view for a slice, a copy for an array of positions."""
        return Matrix(self.x[which], self.y[which], self.features, self.categories)

    def dataset(self, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        """A LightGBM Dataset of these rows (binned with ``reference``'s bins when given).

        LightGBM keeps no copy of the array (``free_raw_data``): the matrix is the only one.
        """
        data = lgb.Dataset(
            self.x,
            label=self.y,
            feature_name=self.features,
            categorical_feature=self.categorical or "auto",
            reference=reference,
            params={"verbosity": -1, "feature_pre_filter": False},
            free_raw_data=True,
        )
        if reference is None:
            data.pandas_categorical = [self.categories[c] for c in self.categorical]
        return data

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        label: str,
        features: Sequence[str],
        categorical: Sequence[str] = (),
        categories: dict[str, list[Any]] | None = None,
    ) -> Matrix:
        """The matrix of ``frame``: a categorical feature's codes index ``categories[feature]`` when
        given (other values become missing), else its own sorted values, as pandas orders a category."""
        table = model_frame(frame, features, categorical)
        x = np.empty((len(table), len(table.columns)), dtype=np.float64)
        found: dict[str, list[Any]] = {}
        cats = set(categorical)
        for j, col in enumerate(table.columns):
            values = table[col]
            if col in cats:
                if categories is not None:
                    values = values.cat.set_categories(categories[col])
                found[col] = values.cat.categories.tolist()
                codes = values.cat.codes.to_numpy()
                x[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                x[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return cls(x, frame[label].to_numpy(dtype=np.float64), list(table.columns), {c: found[c] for c in categorical})


@dataclass
class TrainedModel:
    """A LightGBM booster and what it was trained on."""

    booster: lgb.Booster
    label: str
    features: list[str]
    categorical: list[str]
    params: dict[str, Any]
    best_iteration: int
    # Per-iteration validation metrics, e.g. {"auc": [...], "binary_logloss": [...]}.
    valid_curve: dict[str, list[float]] = field(default_factory=dict)
    refit_on_train: bool = False
    task: Task = field(default_factory=BinaryTask)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's output for each row of ``frame``: binary, P(positive) (n,); multiclass, the
        class probabilities (n, K) in the order of ``task.classes``; regression, the values (n,)."""
        k = self.task.outputs
        if len(frame) == 0:
            return np.zeros((0, k) if self.task.name == "multiclass" else 0, dtype=np.float64)
        scores = np.asarray(self.booster.predict(model_frame(frame, self.features, self.categorical)), dtype=np.float64)
        return scores.reshape(len(frame), k) if self.task.name == "multiclass" else scores

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """One number per row (:func:`row_scores`): what the service logs as ``score``."""
        return row_scores(self.task, self.predict(frame))

    def model_text(self) -> str:
        return str(self.booster.model_to_string())

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "lightgbm_version": lgb.__version__,
            "task": self.task.name,
            "classes": list(self.task.classes),
            "target": {"name": self.task.label_name, "unit": self.task.unit},
            "objective": self.params.get("objective"),
            "label": self.label,
            "features": self.features,
            "categorical": self.categorical,
            "params": self.params,
            "best_iteration": self.best_iteration,
            "num_trees": int(self.booster.num_trees()),
            "refit_on_train": self.refit_on_train,
            "valid_curve": self.valid_curve,
        }

    def save(self, folder: Path | str) -> Path:
        """Write ``model.txt`` and ``model.json`` into ``folder``; returns the model file."""
        out = Path(folder)
        text = self.model_text()
        meta = self.metadata() | {"model_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        path = atomic.write_text(out / MODEL_FILE, text, mode=atomic.SHARED)
        atomic.write_text(out / META_FILE, json.dumps(meta, indent=2, sort_keys=True), mode=atomic.SHARED)
        return path

    @classmethod
    def load(cls, folder: Path | str) -> TrainedModel:
        """Read a folder written by :meth:`save`, checking the model file against its digest."""
        src = Path(folder)
        for name in (MODEL_FILE, META_FILE):
            if not (src / name).is_file():
                raise NotFoundError(
                    f"no {name} in {src}",
                    fix="point at a folder written by TrainedModel.save (it holds model.txt and model.json)",
                )
        meta = json.loads((src / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise DataError(
                f"{src / META_FILE} has format {meta.get('format')!r}; expected {FORMAT!r}",
                fix="save the model again with this version of Noria",
            )
        text = (src / MODEL_FILE).read_text(encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != meta.get("model_sha256"):
            raise DataError(
                f"{src / MODEL_FILE} does not match the digest recorded in {META_FILE} (damaged or edited)",
                fix="restore the model folder from the registry or retrain",
            )
        target = meta.get("target") or {}
        task = make_task(
            str(meta.get("task", "binary")),
            classes=meta.get("classes"),
            name=target.get("name"),
            unit=target.get("unit", ""),
        )
        objective = model_objective(text)
        if objective.split(" ")[0] != task.objective:
            raise DataError(
                f"{src / MODEL_FILE} was trained with objective {objective!r} but {META_FILE} says it is a "
                f"{task.name} model",
                fix="restore the model folder from the registry or retrain",
            )
        return cls(
            booster=lgb.Booster(model_str=text),
            label=meta["label"],
            features=list(meta["features"]),
            categorical=list(meta["categorical"]),
            params=dict(meta["params"]),
            best_iteration=int(meta["best_iteration"]),
            valid_curve={k: list(v) for k, v in meta.get("valid_curve", {}).items()},
            refit_on_train=bool(meta.get("refit_on_train", False)),
            task=task,
        )


def train(
    split: Split,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    params: dict[str, Any] | None = None,
    *,
    seed: int = 42,
    num_threads: int = 1,
    metric: str | None = None,
    max_rounds: int = 1000,
    early_stopping_rounds: int = 50,
    refit: bool = True,
) -> TrainedModel:
    """Fit on ``split.fit`` with early stopping on ``split.valid``, recording the validation curve.

    The task is the split's (binary when it has none); ``metric`` (early stopping) defaults to
    the task's: ``auc``, ``multi_logloss`` or ``rmse``. With ``refit`` the final model is then
    trained on the whole training period (fit + valid) for the best number of rounds found, so
    the most recent weeks are not left out.
    """
    features, categorical = list(features), list(categorical)
    fit = Matrix.from_frame(split.fit, split.label, features, categorical)
    valid = Matrix.from_frame(split.valid, split.label, features, categorical, fit.categories)
    return fit_model(
        fit,
        valid,
        (lambda: Matrix.from_frame(split.train, split.label, features, categorical)) if refit else None,
        label=split.label,
        task=split.task or BinaryTask(),
        params=params,
        seed=seed,
        num_threads=num_threads,
        metric=metric,
        max_rounds=max_rounds,
        early_stopping_rounds=early_stopping_rounds,
    )


def fit_model(
    fit: Matrix,
    valid: Matrix,
    whole: Matrix | Callable[[], Matrix] | None,
    *,
    label: str,
    task: Task,
    params: dict[str, Any] | None = None,
    seed: int = 42,
    num_threads: int = 1,
    metric: str | None = None,
    max_rounds: int = 1000,
    early_stopping_rounds: int = 50,
) -> TrainedModel:
    """What :func:`train` does, on matrices: early stopping on ``valid``, then (``whole``: the
    train rows, or a function giving them) the refit on every train row for the best rounds."""
    full = lgb_params(params, seed=seed, num_threads=num_threads, metric=metric or task.tune_metric, task=task)
    fit_ds = fit.dataset()
    record: dict[str, Any] = {}
    booster = lgb.train(
        full,
        fit_ds,
        num_boost_round=max_rounds,
        valid_sets=[valid.dataset(reference=fit_ds)],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(record),
        ],
    )
    best = int(booster.best_iteration) or int(booster.current_iteration())
    curve = {name: [float(v) for v in values] for name, values in record.get("valid", {}).items()}
    del fit_ds
    if whole is not None:
        rows = whole() if callable(whole) else whole
        booster = lgb.train(full, rows.dataset(), num_boost_round=best)
    # Rebuild from text so the model in memory is exactly the one that gets saved.
    final = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return TrainedModel(
        booster=final,
        label=label,
        features=list(fit.features),
        categorical=fit.categorical,
        params=full,
        best_iteration=best,
        valid_curve=curve,
        refit_on_train=whole is not None,
        task=task,
    )


def feature_importance(model: TrainedModel) -> pd.DataFrame:
    """Gain and split counts per feature, largest gain first; ``gain_share`` sums to 1."""
    gain = np.asarray(model.booster.feature_importance(importance_type="gain"), dtype=np.float64)
    splits = np.asarray(model.booster.feature_importance(importance_type="split"), dtype=np.int64)
    total = gain.sum()
    table = pd.DataFrame(
        {
            "feature": model.booster.feature_name(),
            "gain": gain,
            "gain_share": gain / total if total > 0 else np.zeros_like(gain),
            "splits": splits,
        }
    )
    table = table.sort_values(["gain", "feature"], ascending=[False, True], kind="mergesort")
    return table.reset_index(drop=True)
