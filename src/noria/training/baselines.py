"""Plain baselines that put the model's numbers in perspective, per task.

=====================  =============================================================================
binary                 ``majority_rate``: every row gets the training positive rate (AUC 0.5; the
                       log loss and Brier score a model must beat to be worth anything);
                       ``logistic_regression``; ``context_lightgbm``
multiclass             ``class_prior``: every row gets the training class shares (its accuracy is
                       that of always answering the majority class); ``logistic_regression``
                       (multinomial); ``context_lightgbm``
regression             ``mean``: every row gets the training mean; ``linear_regression`` (ridge);
                       ``context_lightgbm``
=====================  =============================================================================

``logistic_regression`` and ``linear_regression`` use the model's features (numbers
median-imputed and standardised, categories one-hot with rare values pooled);
``context_lightgbm`` is LightGBM with default parameters on a subset of the features, to
show what the richer features add.

A project's own baseline is a function ``module:function(frame) -> predictions`` in the
project folder (``training.baselines: [{name: persistence, function: mod:fn}]``), called with
the holdout frame: binary, one probability per row; multi-class, an (n, K) array of class
probabilities (order of ``model.target.classes``); regression, one value per row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from noria.errors import ConfigError, DataError
from noria.tasks import BinaryTask, Task
from noria.training.config import TASK_BASELINES, BaselineFunction
from noria.training.model import model_frame, train
from noria.training.split import Split, sample_positions

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# A multi-class baseline's rows must sum to 1 within this.
ROW_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    predict: Callable[[pd.DataFrame], np.ndarray]


def _task(split: Split) -> Task:
    return split.task or BinaryTask()


def majority_rate(split: Split) -> Baseline:
    rate = float(split.train[split.label].mean())

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), rate, dtype=np.float64)

    return Baseline("majority_rate", f"constant training positive rate ({rate:.4f})", predict)


def class_prior(split: Split) -> Baseline:
    """The training class shares for every row (multi-class)."""
    task = _task(split)
    k = len(task.classes)
    counts = np.bincount(split.train[split.label].to_numpy().astype(np.int64), minlength=k)[:k]
    shares = counts / counts.sum()

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.tile(shares, (len(frame), 1)).astype(np.float64)

    described = ", ".join(f"{c} {s:.1%}" for c, s in zip(task.classes, shares, strict=True))
    return Baseline("class_prior", f"constant training class shares ({described})", predict)


def mean(split: Split) -> Baseline:
    """The training mean of the label for every row (regression)."""
    value = float(split.train[split.label].mean())
    unit = f" {_task(split).unit}" if _task(split).unit else ""

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), value, dtype=np.float64)

    return Baseline("mean", f"constant training mean ({value:.4g}{unit})", predict)


def _linear_pipeline(
    features: Sequence[str], categorical: Sequence[str], estimator: Any
) -> tuple[Pipeline, Callable[[pd.DataFrame], pd.DataFrame], str]:
    """Median-imputed, standardised numbers and one-hot categories (rare values pooled) before ``estimator``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [c for c in features if c in set(categorical)]
    nums = [c for c in features if c not in set(categorical)]
    steps = []
    if nums:
        steps.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums))
    if cats:
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=50)
        steps.append(("cat", encoder, cats))
    pipeline = Pipeline([("prep", ColumnTransformer(steps)), ("lr", estimator)])

    def as_input(frame: pd.DataFrame) -> pd.DataFrame:
        x = model_frame(frame, features, categorical)
        for c in cats:
            x[c] = x[c].astype("object").where(x[c].notna(), "(missing)").astype(str)
        return x

    return pipeline, as_input, f"{len(nums)} numeric + {len(cats)} one-hot categorical features"


def logistic_regression(
    split: Split, features: Sequence[str], categorical: Sequence[str] = (), *, seed: int = 42
) -> Baseline:
    """Logistic regression: P(positive) for a binary task, multinomial class probabilities for a multi-class one."""
    from sklearn.linear_model import LogisticRegression

    task = _task(split)
    pipeline, as_input, described = _linear_pipeline(
        features, categorical, LogisticRegression(max_iter=500, random_state=seed)
    )
    pipeline.fit(as_input(split.train), split.train[split.label].to_numpy())

    if task.name == "multiclass":
        seen = np.asarray(pipeline.classes_, dtype=np.int64)
        k = len(task.classes)

        def predict(frame: pd.DataFrame) -> np.ndarray:
            # A class absent from training gets probability 0 (scikit-learn knows only the ones it saw).
            out = np.zeros((len(frame), k), dtype=np.float64)
            out[:, seen] = pipeline.predict_proba(as_input(frame))
            return out

        return Baseline("logistic_regression", f"multinomial logistic regression on {described}", predict)

    def predict_positive(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(pipeline.predict_proba(as_input(frame))[:, 1], dtype=np.float64)

    return Baseline("logistic_regression", f"logistic regression on {described}", predict_positive)


def linear_regression(
    split: Split, features: Sequence[str], categorical: Sequence[str] = (), *, alpha: float = 1.0
) -> Baseline:
    """Ridge regression (``alpha``) on the same preprocessing as :func:`logistic_regression`."""
    from sklearn.linear_model import Ridge

    pipeline, as_input, described = _linear_pipeline(features, categorical, Ridge(alpha=alpha))
    pipeline.fit(as_input(split.train), split.train[split.label].to_numpy(dtype=np.float64))

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(pipeline.predict(as_input(frame)), dtype=np.float64)

    return Baseline("linear_regression", f"ridge regression (alpha {alpha:g}) on {described}", predict)


def context_lightgbm(
    split: Split,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    *,
    seed: int = 42,
    num_threads: int = 1,
) -> Baseline:
    cats = [c for c in categorical if c in set(features)]
    model = train(split, features, cats, params=None, seed=seed, num_threads=num_threads)
    names = ", ".join(features)
    return Baseline("context_lightgbm", f"LightGBM, default parameters, on {names}", model.predict)


def function_baseline(spec: BaselineFunction, task: Task, root: Path) -> Baseline:
    """A project's own baseline: ``spec.function`` from the project folder, called with the holdout frame."""
    from noria.features.definitions import resolve_function

    function = resolve_function(root, spec.function, f"training.baselines {spec.name}")
    who = f"baseline {spec.name} ({spec.function})"

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return check_predictions(function(frame.copy()), task, len(frame), who)

    return Baseline(spec.name, spec.description or f"project function {spec.function}", predict)


def check_predictions(values: Any, task: Task, rows: int, who: str) -> np.ndarray:
    """``values`` as the task's predictions for ``rows`` rows, or a DataError naming ``who``."""
    expected = {
        "binary": f"{rows} probabilities",
        "multiclass": f"an array of {rows} x {len(task.classes)} class probabilities",
        "regression": f"{rows} numbers",
    }[task.name]
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        problem = f"{who} returned {type(values).__name__}, not numbers ({exc})"
        raise DataError(problem, fix=f"return {expected}") from None
    shape = (rows, len(task.classes)) if task.name == "multiclass" else (rows,)
    if out.ndim == 2 and out.shape[1] == 1 and task.name != "multiclass":
        out = out[:, 0]
    if out.shape != shape:
        raise DataError(
            f"{who} returned an array of shape {out.shape} for {rows} rows; expected {shape}",
            fix=f"return {expected}, one per row of the frame it is given",
        )
    if not np.isfinite(out).all():
        raise DataError(f"{who} returned NaN or infinite values", fix=f"return {expected} (no missing values)")
    if task.name != "regression" and (out.min(initial=0.0) < 0.0 or out.max(initial=0.0) > 1.0):
        raise DataError(f"{who} returned values outside [0, 1]", fix=f"return {expected}, not scores or logits")
    if task.name == "multiclass" and rows:
        worst = float(np.abs(out.sum(axis=1) - 1.0).max())
        if worst > ROW_SUM_TOLERANCE:
            raise DataError(
                f"{who} returned class probabilities whose rows do not sum to 1 (off by up to {worst:.3g})",
                fix="normalise each row (divide by its sum)",
            )
    return out


def sample_split(split: Split, rows: int | None, seed: int = 42) -> Split:
    """``split`` with its train rows cut to a seeded sample of at most ``rows`` (None: all), in
    their order; the sampled rows before the validation slice are the fit part, the others the
    validation part (``train`` is ``fit`` then ``valid``, as :func:`split_by_time` makes it)."""
    if rows is None or len(split.train) <= rows:
        return split
    positions = sample_positions(len(split.train), rows, seed)
    train = split.train.iloc[positions]
    fit_rows = int(np.searchsorted(positions, len(split.fit)))
    return replace(split, train=train, fit=train.iloc[:fit_rows], valid=train.iloc[fit_rows:])


def fit_baselines(
    split: Split,
    kinds: Sequence[str],
    features: Sequence[str],
    categorical: Sequence[str] = (),
    *,
    context_features: Sequence[str] | None = None,
    seed: int = 42,
    num_threads: int = 1,
    functions: Sequence[BaselineFunction] = (),
    root: Path | str | None = None,
) -> list[Baseline]:
    """Fit the named built-in baselines of the split's task on ``split.train``, then add the
    project's baseline ``functions`` (resolved in the project folder ``root``).

    ``context_lightgbm`` needs ``context_features``.
    """
    task = _task(split)
    allowed = TASK_BASELINES[task.name]
    out: list[Baseline] = []
    for kind in kinds:
        if kind not in allowed:
            raise ConfigError(
                f"{kind!r} is not a {task.name} baseline", fix=f"use some of {', '.join(allowed)}, or a function"
            )
        if kind == "majority_rate":
            out.append(majority_rate(split))
        elif kind == "class_prior":
            out.append(class_prior(split))
        elif kind == "mean":
            out.append(mean(split))
        elif kind == "logistic_regression":
            out.append(logistic_regression(split, features, categorical, seed=seed))
        elif kind == "linear_regression":
            out.append(linear_regression(split, features, categorical))
        else:  # context_lightgbm
            if not context_features:
                raise ConfigError(
                    "the context_lightgbm baseline needs its feature list (context_features)",
                    fix="set baseline_features in the training settings, or remove context_lightgbm",
                )
            out.append(context_lightgbm(split, context_features, categorical, seed=seed, num_threads=num_threads))
    if functions and root is None:
        raise ConfigError(
            f"baseline functions ({', '.join(f.function for f in functions)}) need the project folder",
            fix="pass root= (the folder of noria.yaml)",
        )
    names = [b.name for b in out]
    for spec in functions:
        if spec.name in names:
            raise ConfigError(f"two baselines are named {spec.name!r}", fix="give each baseline its own name")
        names.append(spec.name)
        out.append(function_baseline(spec, task, Path(str(root))))
    return out
