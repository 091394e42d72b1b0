"""Fixtures: a small point-in-time flights frame and a split of it, built once per session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from training_flights_frame import LABEL, TIME, build_flights_frame

from noria.training import Split, split_by_time


@pytest.fixture(scope="session")
def flights() -> pd.DataFrame:
    """4,000 random 2013 flights with features; cancelled ones keep a missing label."""
    return build_flights_frame(sample=4000, seed=7, keep_cancelled=True)


@pytest.fixture(scope="session")
def split(flights: pd.DataFrame) -> Split:
    return split_by_time(flights, TIME, LABEL, train=("2013-01", "2013-06"), test=("2013-07", "2013-12"))


@pytest.fixture
def toy() -> pd.DataFrame:
    """A tiny synthetic frame: one row per day of 2013, label driven by x."""
    rng = np.random.default_rng(0)
    n = 365
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2013-01-01", periods=n, freq="D", tz="UTC"),
            "x": x,
            "group": rng.choice(["a", "b"], size=n),
            "y": (x + rng.normal(scale=0.8, size=n) > 0.7).astype(float),
        }
    )
