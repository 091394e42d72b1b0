"""The scale benchmark's data generator (benchmarks/scale_data.py): deterministic, calendar-valid,
keys unique, every row accounted for (N x base rows = rows written + rows dropped, by reason)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import scale_data  # noqa: E402


def _module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = _module(REPO / "examples" / "flights" / "flights_checks.py")


@pytest.fixture(scope="module")
def full() -> scale_data.Base:
    return scale_data.Base.load()


@pytest.fixture(scope="module")
def sample(full: scale_data.Base) -> scale_data.Base:
    """One row in 40 of the shipped flights and weather (deterministic)."""
    return scale_data.Base(full.flights.iloc[::40].reset_index(drop=True), full.weather.iloc[::40], full.folder)


def _read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    flights = pd.read_csv(folder / scale_data.FLIGHTS, keep_default_na=False, na_values=[""])
    weather = pd.read_csv(folder / scale_data.WEATHER, keep_default_na=False, na_values=[""])
    return flights, weather


def test_same_years_and_seed_give_the_same_bytes(sample: scale_data.Base, tmp_path: Path) -> None:
    a = scale_data.generate(2, tmp_path / "a", seed=7, base=sample)
    b = scale_data.generate(2, tmp_path / "b", seed=7, base=sample)
    other = scale_data.generate(2, tmp_path / "c", seed=8, base=sample)
    assert scale_data.digest(a.path) == scale_data.digest(b.path)
    assert scale_data.digest(a.path) != scale_data.digest(other.path)  # the seed moves the noise
    assert a.rows == b.rows and a.dropped == b.dropped
    # Year k depends on (seed, k) only: one year is the first year of two, byte for byte.
    one = scale_data.generate(1, tmp_path / "one", seed=7, base=sample)
    flights_one, _ = _read(one.path)
    flights_two, _ = _read(a.path)
    pd.testing.assert_frame_equal(flights_one, flights_two[flights_two["year"] == 2013].reset_index(drop=True))


def test_rows_are_calendar_valid_with_unique_keys_and_consistent_times(sample: scale_data.Base, tmp_path: Path) -> None:
    made = scale_data.generate(3, tmp_path / "data", base=sample)
    flights, weather = _read(made.path)
    assert sorted(flights["year"].unique()) == [2013, 2014, 2015]
    for frame in (flights, weather):
        pd.to_datetime(frame[["year", "month", "day"]], errors="raise")  # every date exists
    assert not flights.duplicated(scale_data.FLIGHT_KEY).any()
    assert not weather.duplicated(scale_data.WEATHER_KEY).any()
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
    assert checks.schedule_is_consistent(flights).all()  # the project's own rule: time_hour = local hour in UTC
    # Perturbed, not copied: the years differ in their delays, and dep_time still follows the delay.
    by_year = flights.set_index(["month", "day", "carrier", "flight", "origin", "sched_dep_time"])
    d13, d14 = by_year[by_year["year"] == 2013]["dep_delay"], by_year[by_year["year"] == 2014]["dep_delay"]
    assert (d13 != d14.reindex(d13.index)).mean() > 0.5
    departed = flights.dropna(subset=["dep_time", "dep_delay"])
    minutes = lambda hhmm: (hhmm // 100) * 60 + hhmm % 100  # noqa: E731
    gap = (minutes(departed["dep_time"]) - minutes(departed["sched_dep_time"]) - departed["dep_delay"]) % 1440
    assert (gap == 0).all()
    for column, (low, high) in {"dep_delay": scale_data.DELAY_RANGE, "temp": scale_data.TEMP_RANGE}.items():
        values = (flights if column in flights else weather)[column].dropna()
        assert values.between(low, high).all()


def test_every_row_is_accounted_for(sample: scale_data.Base, tmp_path: Path) -> None:
    made = scale_data.generate(4, tmp_path / "data", base=sample)
    flights, weather = _read(made.path)
    for name, frame in (("flights", flights), ("weather", weather)):
        dropped = sum(made.dropped[name].values())
        assert len(frame) == made.rows[name] == 4 * made.base_rows[name] - dropped
    for copied in scale_data.COPIED:
        assert (made.path / copied).read_bytes() == (sample.folder / copied).read_bytes()


def test_leap_days_and_clock_changes_are_dropped_or_kept_by_the_target_year(
    full: scale_data.Base, tmp_path: Path
) -> None:
    """A leap-year base: 29 February survives only into leap years. Weather around the clock changes:
    the spring hour that a later year skips is dropped, the repeated autumn hour keeps both readings
    only where the target year repeats it too."""
    flights = full.flights[(full.flights["month"] == 3) & (full.flights["day"] == 1)].head(5).copy()
    leap = flights.assign(month=2, day=29)
    flights = pd.concat([flights, leap], ignore_index=True).assign(year=2012)
    stamps = pd.to_datetime(flights[["year", "month", "day", "hour"]])
    flights["time_hour"] = scale_data._iso(scale_data._utc(stamps, ambiguous=True))
    weather = full.weather
    weather = weather[
        (weather["origin"] == "EWR")
        & (
            ((weather["month"] == 3) & (weather["day"] == 9) & weather["hour"].isin([1, 2]))
            | ((weather["month"] == 11) & (weather["day"] == 3) & (weather["hour"] == 1))
        )
    ]
    assert len(weather) == 4  # 9 March 1:00 and 2:00; 3 November 1:00 twice (daylight, then standard time)
    base = scale_data.Base(flights, weather.reset_index(drop=True), full.folder, year=2013)
    made = scale_data.generate(8, tmp_path / "weather", base=base)  # 2013 .. 2020
    _, out = _read(made.path)
    count = out.groupby("year").size().reindex(range(2013, 2021), fill_value=0)
    # 2014: 9 March is the spring change (2:00 does not exist); 3 November repeats nothing (one of two kept).
    assert count[2013] == 4 and count[2014] == 2
    # 2019 has the same clock changes as 2013 (10 March, 3 November): every row kept, both autumn readings.
    assert count[2019] == 4
    assert sum(made.dropped["weather"].values()) == 8 * 4 - len(out)
    autumn = out[(out["year"] == 2019) & (out["month"] == 11)]["time_hour"].tolist()
    assert autumn == ["2019-11-03T05:00:00Z", "2019-11-03T06:00:00Z"]

    leap_base = scale_data.Base(flights, base.weather.iloc[:0], full.folder, year=2012)
    made = scale_data.generate(5, tmp_path / "leap", base=leap_base)  # 2012 .. 2016
    out, _ = _read(made.path)
    feb29 = out[(out["month"] == 2) & (out["day"] == 29)]
    assert sorted(feb29["year"].unique()) == [2012, 2016]
    assert made.dropped["flights"]["date_not_in_year"] == 3 * 5  # 2013, 2014, 2015
    assert made.rows["flights"] == 5 * len(flights) - 15
