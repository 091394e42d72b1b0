"""Small synthetic training frames for the multi-class and regression tasks (fast, deterministic).

One row per 6 hours of 2013 (1,460 rows): two numeric features, one categorical, and a label
driven by them, so a model has something to learn and a baseline something to lose to.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from noria.tasks import MulticlassTask, RegressionTask
from noria.training import Split, split_by_time

TIME = "event_timestamp"
LABEL = "label"
FEATURES = ["x1", "x2", "group"]
CATEGORICAL = ["group"]
CLASSES = ("H", "D", "A")
MULTICLASS = MulticlassTask(label_name="result", classes=CLASSES)
REGRESSION = RegressionTask(label_name="glucose in 30 min", unit="mg/dL")
FAST = {"max_rounds": 60, "early_stopping_rounds": 10}


def base_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 1460
    frame = pd.DataFrame(
        {
            TIME: pd.date_range("2013-01-01", periods=n, freq="6h", tz="UTC"),
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "group": rng.choice(["a", "b", "c"], size=n),
        }
    )
    frame.loc[rng.random(n) < 0.03, "x2"] = np.nan
    return frame


def multiclass_frame(seed: int = 0) -> pd.DataFrame:
    """Labels 0/1/2 (H/D/A) from a softmax of the features; a few rows unlabelled."""
    rng = np.random.default_rng(seed + 1)
    frame = base_frame(seed)
    g = frame["group"].map({"a": 0.6, "b": 0.0, "c": -0.6}).to_numpy()
    x2 = frame["x2"].fillna(0.0).to_numpy()
    logits = np.column_stack([1.4 * frame["x1"] + g, 0.3 + 0.0 * g, -1.4 * frame["x1"] + 0.8 * x2])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    label = np.array([rng.choice(3, p=row) for row in p], dtype=np.float64)
    label[rng.random(len(label)) < 0.02] = np.nan
    return frame.assign(**{LABEL: label})


def regression_frame(seed: int = 0) -> pd.DataFrame:
    """A glucose-like value (around 140 mg/dL) linear in the features plus noise."""
    rng = np.random.default_rng(seed + 2)
    frame = base_frame(seed)
    g = frame["group"].map({"a": 15.0, "b": 0.0, "c": -10.0}).to_numpy()
    value = 140 + 25 * frame["x1"] + 10 * frame["x2"].fillna(0.0) ** 2 + g + rng.normal(scale=8.0, size=len(frame))
    value[rng.random(len(frame)) < 0.02] = np.nan
    return frame.assign(**{LABEL: value})


def split_of(frame: pd.DataFrame, task: MulticlassTask | RegressionTask) -> Split:
    return split_by_time(frame, TIME, LABEL, train=("2013-01", "2013-08"), test=("2013-09", "2013-12"), task=task)
