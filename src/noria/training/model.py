"""Train a LightGBM model and keep it in LightGBM's own text format (never pickle).

A saved model is a folder with two files: ``model.txt`` (``Booster.model_to_string()``; it
holds the trees, the feature names, the parameters and the category lists) and
``model.json`` (what Noria needs around it: label, feature roles, best iteration, the
validation curve, and the SHA-256 of ``model.txt`` so a damaged file is caught on load).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from noria.errors import ConfigError, DataError, NotFoundError
from noria.training._io import write_text_atomic
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


def lgb_params(params: dict[str, Any] | None, *, seed: int, num_threads: int, metric: str) -> dict[str, Any]:
    """Full LightGBM parameters: fixed settings, then ``params`` (or the defaults), then seed/threads."""
    metrics = [metric, *(m for m in ("auc", "binary_logloss") if m != metric)]
    merged = {**FIXED_PARAMS, **(DEFAULT_PARAMS if params is None else params)}
    merged |= {"seed": seed, "num_threads": num_threads, "metric": metrics}
    return merged


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


def make_dataset(
    frame: pd.DataFrame,
    label: str,
    features: Sequence[str],
    categorical: Sequence[str],
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    return lgb.Dataset(
        model_frame(frame, features, categorical),
        label=frame[label].to_numpy(),
        categorical_feature=list(categorical) or "auto",
        reference=reference,
        params={"verbosity": -1, "feature_pre_filter": False},
        free_raw_data=False,
    )


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

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class for each row of ``frame``."""
        if len(frame) == 0:
            return np.zeros(0, dtype=np.float64)
        scores = self.booster.predict(model_frame(frame, self.features, self.categorical))
        return np.asarray(scores, dtype=np.float64)

    def model_text(self) -> str:
        return str(self.booster.model_to_string())

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "lightgbm_version": lgb.__version__,
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
        path = write_text_atomic(out / MODEL_FILE, text)
        write_text_atomic(out / META_FILE, json.dumps(meta, indent=2, sort_keys=True))
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
        return cls(
            booster=lgb.Booster(model_str=text),
            label=meta["label"],
            features=list(meta["features"]),
            categorical=list(meta["categorical"]),
            params=dict(meta["params"]),
            best_iteration=int(meta["best_iteration"]),
            valid_curve={k: list(v) for k, v in meta.get("valid_curve", {}).items()},
            refit_on_train=bool(meta.get("refit_on_train", False)),
        )


def train(
    split: Split,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    params: dict[str, Any] | None = None,
    *,
    seed: int = 42,
    num_threads: int = 1,
    metric: str = "auc",
    max_rounds: int = 1000,
    early_stopping_rounds: int = 50,
    refit: bool = True,
) -> TrainedModel:
    """Fit on ``split.fit`` with early stopping on ``split.valid``, recording the validation curve.

    With ``refit`` the final model is then trained on the whole training period (fit + valid)
    for the best number of rounds found, so the most recent weeks are not left out.
    """
    features, categorical = list(features), list(categorical)
    full = lgb_params(params, seed=seed, num_threads=num_threads, metric=metric)
    fit_ds = make_dataset(split.fit, split.label, features, categorical)
    valid_ds = make_dataset(split.valid, split.label, features, categorical, reference=fit_ds)
    record: dict[str, Any] = {}
    booster = lgb.train(
        full,
        fit_ds,
        num_boost_round=max_rounds,
        valid_sets=[valid_ds],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(record),
        ],
    )
    best = int(booster.best_iteration) or int(booster.current_iteration())
    curve = {name: [float(v) for v in values] for name, values in record.get("valid", {}).items()}
    if refit:
        train_ds = make_dataset(split.train, split.label, features, categorical)
        booster = lgb.train(full, train_ds, num_boost_round=best)
    # Rebuild from text so the model in memory is exactly the one that gets saved.
    final = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return TrainedModel(
        booster=final,
        label=split.label,
        features=features,
        categorical=categorical,
        params=full,
        best_iteration=best,
        valid_curve=curve,
        refit_on_train=refit,
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
