"""The test-side feature builder must itself be point-in-time correct, or every AUC it reports lies."""

from __future__ import annotations

import numpy as np
import pandas as pd
from training_flights_frame import ALL_FEATURES, LABEL, TIME, data_dir


def test_no_outcome_columns_are_features() -> None:
    outcomes = {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", LABEL}
    assert not outcomes & set(ALL_FEATURES)


def test_weather_is_taken_one_hour_before_departure(flights: pd.DataFrame) -> None:
    weather = pd.read_csv(data_dir() / "weather.csv")
    weather["obs"] = pd.to_datetime(weather["time_hour"], utc=True)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(flights), 25, replace=False):
        row = flights.iloc[i]
        seen = weather[(weather["origin"] == row["origin"]) & (weather["obs"] <= row[TIME] - pd.Timedelta(hours=1))]
        latest = seen.sort_values("obs").iloc[-1]
        assert np.isclose(latest["temp"], row["temp"], equal_nan=True)


def test_trailing_rates_use_only_earlier_known_labels(flights: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    for i in rng.choice(len(flights), 40, replace=False):
        row = flights.iloc[i]
        t = row[TIME]
        same = flights[(flights["carrier"] == row["carrier"]) & flights[LABEL].notna()]
        window = same[(same[TIME] > t - pd.Timedelta(days=7)) & (same[TIME] <= t - pd.Timedelta(hours=1))]
        expected = window[LABEL].mean() if len(window) else np.nan
        assert np.isclose(row["carrier_late_rate_7d"], expected, equal_nan=True), (i, row[TIME])
