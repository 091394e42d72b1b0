"""Plain baselines that put the model's numbers in perspective.

- ``majority_rate``: every flight gets the training late rate (AUC 0.5; the log-loss and
  Brier score a model must beat to be worth anything).
- ``logistic_regression``: scikit-learn logistic regression on the model's features
  (numbers median-imputed and standardised, categories one-hot with rare values pooled).
- ``context_lightgbm``: LightGBM with default parameters on a subset of features (for the
  flights project, the schedule context only), to show what the richer features add.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from noria.errors import ConfigError
from noria.training.model import model_frame, train
from noria.training.settings import BASELINE_KINDS
from noria.training.split import Split


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    predict: Callable[[pd.DataFrame], np.ndarray]


def majority_rate(split: Split) -> Baseline:
    rate = float(split.train[split.label].mean())

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), rate, dtype=np.float64)

    return Baseline("majority_rate", f"constant training late rate ({rate:.4f})", predict)


def logistic_regression(
    split: Split, features: Sequence[str], categorical: Sequence[str] = (), *, seed: int = 42
) -> Baseline:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
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
    pipeline = Pipeline(
        [("prep", ColumnTransformer(steps)), ("lr", LogisticRegression(max_iter=500, random_state=seed))]
    )

    def as_input(frame: pd.DataFrame) -> pd.DataFrame:
        x = model_frame(frame, features, categorical)
        for c in cats:
            x[c] = x[c].astype("object").where(x[c].notna(), "(missing)").astype(str)
        return x

    pipeline.fit(as_input(split.train), split.train[split.label].to_numpy())

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(pipeline.predict_proba(as_input(frame))[:, 1], dtype=np.float64)

    described = f"{len(nums)} numeric + {len(cats)} one-hot categorical features"
    return Baseline("logistic_regression", f"logistic regression on {described}", predict)


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


def fit_baselines(
    split: Split,
    kinds: Sequence[str],
    features: Sequence[str],
    categorical: Sequence[str] = (),
    *,
    context_features: Sequence[str] | None = None,
    seed: int = 42,
    num_threads: int = 1,
) -> list[Baseline]:
    """Fit the named baselines on ``split.train``; ``context_lightgbm`` needs ``context_features``."""
    out: list[Baseline] = []
    for kind in kinds:
        if kind == "majority_rate":
            out.append(majority_rate(split))
        elif kind == "logistic_regression":
            out.append(logistic_regression(split, features, categorical, seed=seed))
        elif kind == "context_lightgbm":
            if not context_features:
                raise ConfigError(
                    "the context_lightgbm baseline needs its feature list (context_features)",
                    fix="set baseline_features in the training settings, or remove context_lightgbm",
                )
            out.append(context_lightgbm(split, context_features, categorical, seed=seed, num_threads=num_threads))
        else:
            raise ConfigError(f"unknown baseline {kind!r}", fix=f"use some of {', '.join(BASELINE_KINDS)}")
    return out
