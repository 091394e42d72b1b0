"""From an API flight to the request columns the feature definitions read.

The API takes a flight as a person states it (carrier, number, airports, tail number, the
scheduled departure with its UTC offset, distance). The feature code reads the columns of the
flights table: the local date and ``sched_dep_time`` (HHMM, local), ``time_hour`` (the
scheduled hour in UTC), and the flight's fields. Local means the configured
``serving.local_timezone`` (the flights' New York time), whatever offset the client used.
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from noria.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from noria.serving.schemas import Flight

API_COLUMNS = ("carrier", "flight", "origin", "dest", "tailnum", "scheduled_departure", "distance")


def request_row(flight: Flight, tz: ZoneInfo) -> dict[str, Any]:
    """The flights-table columns of one API flight."""
    when = flight.scheduled_departure
    local = when.astimezone(tz)
    utc = when.astimezone(UTC)
    return {
        "year": local.year,
        "month": local.month,
        "day": local.day,
        "hour": local.hour,
        "minute": local.minute,
        "sched_dep_time": local.hour * 100 + local.minute,
        "time_hour": utc.replace(minute=0, second=0, microsecond=0),
        "carrier": flight.carrier,
        "flight": flight.flight,
        "tailnum": flight.tailnum,
        "origin": flight.origin,
        "dest": flight.dest,
        "distance": flight.distance,
    }


def request_frame(frame: pd.DataFrame, tz: ZoneInfo) -> pd.DataFrame:
    """A batch file's rows as flights-table columns.

    A file in the API's shape (``scheduled_departure`` with offsets, or UTC timestamps) gets the
    local date, ``sched_dep_time`` and ``time_hour`` computed; a file that already has the
    flights table's columns (e.g. a data snapshot) is used as it is.
    """
    import pandas as pd

    if "scheduled_departure" not in frame.columns:
        return frame
    missing = [c for c in ("carrier", "origin", "dest", "distance") if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"the input lacks column(s) {', '.join(missing)}",
            fix=f"give every flight column: {', '.join(API_COLUMNS)}",
        )
    raw = frame["scheduled_departure"]
    try:
        if isinstance(raw.dtype, pd.DatetimeTZDtype):
            when = raw.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(raw):
            raise ValueError("timestamps without a time zone")
        else:
            when = pd.to_datetime(raw, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            f"column scheduled_departure: {exc}",
            fix="store it as ISO 8601 text with an offset (2013-07-01T05:15:00-04:00) or a tz-aware timestamp",
        ) from None
    local = when.dt.tz_convert(tz)
    out = frame.copy()
    out["year"] = local.dt.year.astype("int64")
    out["month"] = local.dt.month.astype("int64")
    out["day"] = local.dt.day.astype("int64")
    out["hour"] = local.dt.hour.astype("int64")
    out["minute"] = local.dt.minute.astype("int64")
    out["sched_dep_time"] = out["hour"] * 100 + out["minute"]
    out["time_hour"] = when.dt.floor("h")
    if "tailnum" not in out.columns:
        out["tailnum"] = None
    return out


__all__ = ["API_COLUMNS", "request_frame", "request_row"]
