"""Row rules of the flights table that no built-in check expresses (``checks:`` in noria.yaml).

A check function gets the table's typed columns (one row per source row) and returns a boolean
Series: True where the row passes. Rows it cannot judge (a part missing) pass; whether a column
may be missing is that column's own rule.
"""

from __future__ import annotations

import pandas as pd


def schedule_is_consistent(frame: pd.DataFrame) -> pd.Series:
    """``hour`` and ``minute`` repeat ``sched_dep_time`` (HHMM), and ``time_hour`` is that
    local New York hour in UTC: the three ways the data writes one scheduled departure agree."""
    parts_agree = (frame["sched_dep_time"] // 100 == frame["hour"]) & (frame["sched_dep_time"] % 100 == frame["minute"])
    # as floats: a missing part (NA in an Int64 column) becomes NaT instead of stopping the check
    parts = {part: frame[part].astype("float64") for part in ("year", "month", "day", "hour")}
    local = pd.to_datetime(parts, errors="coerce")
    # ambiguous=True: the repeated autumn hour is read as daylight time, as the source writes it
    expected = local.dt.tz_localize("America/New_York", ambiguous=True, nonexistent="NaT").dt.tz_convert("UTC")
    unknown = expected.isna() | frame["time_hour"].isna()
    result: pd.Series = parts_agree & (unknown | (frame["time_hour"] == expected))
    return result
