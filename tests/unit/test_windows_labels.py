"""Window labels of many timestamps are formatted once per distinct window, and equal the reference:
pandas' ``strftime`` (month, day) and ISO calendar (week) of the local time, None for NaT."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from noria.windows import Windows, WindowsConfig


def reference(times: pd.DatetimeIndex, unit: str, timezone: str) -> list[str | None]:
    local = times.tz_convert(timezone)
    if unit == "week":
        iso = local.isocalendar()
        pairs = zip(iso["year"], iso["week"], strict=True)
        return [None if pd.isna(y) else f"{int(y):04d}-W{int(w):02d}" for y, w in pairs]
    text = local.strftime("%Y-%m" if unit == "month" else "%Y-%m-%d")
    return [None if pd.isna(t) else str(t) for t in text]


@pytest.mark.parametrize("unit", ["month", "day", "week"])
@pytest.mark.parametrize("timezone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_labels_equal_strftime_of_the_local_time(unit: str, timezone: str) -> None:
    seconds = np.random.default_rng(11).integers(-2 * 10**9, 4 * 10**9, 20_000)  # 1906 .. 2096
    times = pd.to_datetime(seconds, unit="s", utc=True)
    # Around a New York DST change and New Year in Kolkata; missing times.
    edges = pd.DatetimeIndex(["2013-03-10T06:59:59Z", "2013-03-10T07:00:00Z", "2012-12-31T18:29:59Z"], tz="UTC")
    times = times.append(edges).insert(0, pd.NaT).insert(7, pd.NaT)
    labels = Windows(WindowsConfig(unit=unit, timezone=timezone)).labels(times)
    assert labels.dtype == object and labels.tolist() == reference(times, unit, timezone)


def test_years_numpy_writes_differently_fall_back_to_strftime() -> None:
    times = pd.DatetimeIndex(["0999-05-01T00:00:00Z", "2013-05-01T00:00:00Z"], dtype="datetime64[s, UTC]")
    assert Windows(WindowsConfig(unit="month")).labels(times).tolist() == reference(times, "month", "UTC")
    assert Windows(WindowsConfig(unit="day")).labels(pd.DatetimeIndex([], tz="UTC")).tolist() == []
