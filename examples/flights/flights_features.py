"""Feature transformations of the flights project, referenced from features.yaml by name.

Two kinds of function live here:

* source functions ``fn(tables, **params) -> DataFrame`` turn snapshot tables into feature
  tables (entity keys + ``event_timestamp`` = when the values became known + features);
  Noria runs them offline, and the online store is filled from their output;
* request functions ``fn(columns, **params)`` compute features from a request's own columns
  (numpy arrays: ints int64, nullable ints float64 with NaN, strings object, timestamps
  datetime64[ns] UTC). The very same call runs on a whole training set and on one request.

Leakage rule for everything computed from flights: a flight's outcome (``dep_delay``) is known
at ``max(actual departure, scheduled departure)``; it counts in rates only from the first whole
hour after that (see ``delay_rates``). Cancelled flights (no ``dep_delay``) never count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def route_of(origin: Any, dest: Any) -> Any:
    """``EWR-IAH``: the route key, computed the same way for rates and for requests."""
    return origin + "-" + dest


# --- request-time features ---------------------------------------------------------------


def prediction_time(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The scheduled departure in UTC: ``time_hour`` (the scheduled hour, UTC) plus the minute."""
    minutes = (columns["sched_dep_time"] % 100).astype("timedelta64[m]")
    return columns["time_hour"] + minutes


_MONTH_OFFSETS = np.array([0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4])


def flight_context(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Schedule and route of the flight, all known when the flight is booked."""
    year, month, day = columns["year"], columns["month"], columns["day"]
    # Sakamoto's method in integer arithmetic (cheap on one request as on a year of flights).
    shifted = year - (month < 3)
    offsets = _MONTH_OFFSETS[month - 1]
    sunday_first = (shifted + shifted // 4 - shifted // 100 + shifted // 400 + offsets + day) % 7
    day_of_week = (sunday_first + 6) % 7  # Monday = 0
    return {
        "sched_hour": columns["sched_dep_time"] // 100,
        "day_of_week": day_of_week,
        "route": route_of(columns["origin"], columns["dest"]),
    }


def plane_age(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Age of the plane in the year of the flight (missing when the build year is unknown)."""
    return columns["year"] - columns["plane_year"]


def dewpoint_spread(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Temperature minus dew point: near zero means saturated air (fog, low ceilings)."""
    return columns["temp"] - columns["dewp"]


# --- source tables -----------------------------------------------------------------------


def weather_observations(tables: Mapping[str, pd.DataFrame], lag_hours: int = 1) -> pd.DataFrame:
    """Hourly weather by origin, usable ``lag_hours`` after the observation hour.

    ``event_timestamp = time_hour + lag``: the as-of join then picks, for a flight, the latest
    observation at least ``lag_hours`` before its scheduled departure.
    """
    weather = tables["weather"]
    out = weather.drop(columns=["time_hour"]).copy()
    out["event_timestamp"] = weather["time_hour"] + pd.Timedelta(hours=lag_hours)
    return out


def plane_registry(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Plane metadata by tail number. Registry data with no date: treated as known all along."""
    planes = tables["planes"]
    return pd.DataFrame(
        {
            "tailnum": planes["tailnum"],
            "event_timestamp": pd.Timestamp("1970-01-01", tz="UTC"),
            "plane_year": planes["year"],
            "plane_seats": planes["seats"],
            "plane_engines": planes["engines"],
            "plane_type": planes["type"],
        }
    )


def delay_rates(
    tables: Mapping[str, pd.DataFrame], key: str, windows_days: list[int], threshold: float = 15.0
) -> pd.DataFrame:
    """Trailing-window departure delay rates per ``key`` (carrier, origin or route).

    A row at hour boundary ``H`` holds, for each window ``W``, the number of departed flights
    with ``H - W <= known_at < H`` and the share of them with ``dep_delay > threshold``, where
    ``known_at = max(actual departure, scheduled departure)``. A row is emitted at every hour
    where a value changes, stamped ``H``: for a prediction at t the as-of join uses the row
    of ``floor_hour(t)``, so only flights known strictly before t count, never the flight itself.
    """
    flights = tables["flights"]
    flights = flights[flights["dep_delay"].notna()]
    hour = np.timedelta64(1, "h")
    sched = flights["time_hour"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]") + (
        flights["sched_dep_time"].to_numpy(dtype=np.int64) % 100
    ).astype("timedelta64[m]")
    delay = flights["dep_delay"].to_numpy(dtype=np.float64)
    actual = sched + (delay * 60).astype(np.int64).astype("timedelta64[s]")
    known = np.maximum(actual, sched)
    enter = known.astype("datetime64[h]").astype("datetime64[ns]") + hour
    late = (delay > threshold).astype(np.int64)
    group = (route_of(flights["origin"], flights["dest"]) if key == "route" else flights[key]).to_numpy(dtype=object)

    # One entering event per flight, one leaving event per flight and window.
    parts = []
    zeros = np.zeros(len(flights), dtype=np.int64)
    enter_cols: dict[str, np.ndarray] = {"key": group, "ts": enter}
    for w in windows_days:
        enter_cols |= {f"n{w}": np.ones_like(zeros), f"l{w}": late}
    parts.append(pd.DataFrame(enter_cols))
    for w in windows_days:
        cols: dict[str, np.ndarray] = {"key": group, "ts": enter + np.timedelta64(w, "D")}
        for v in windows_days:
            cols |= {f"n{v}": -np.ones_like(zeros) if v == w else zeros, f"l{v}": -late if v == w else zeros}
        parts.append(pd.DataFrame(cols))
    events = pd.concat(parts, ignore_index=True).groupby(["key", "ts"], sort=True).sum()
    totals = events.groupby(level="key").cumsum()

    out = pd.DataFrame(
        {
            key: totals.index.get_level_values("key"),
            "event_timestamp": totals.index.get_level_values("ts").tz_localize("UTC"),
        }
    )
    for w in windows_days:
        n = totals[f"n{w}"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(n > 0, totals[f"l{w}"].to_numpy() / np.maximum(n, 1), np.nan)
        out[f"{key}_flights_{w}d"] = n
        out[f"{key}_late_rate_{w}d"] = rate
    return out
