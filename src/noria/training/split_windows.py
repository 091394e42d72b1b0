"""The time windows of a split: periods as half-open UTC windows, and where validation starts.

Periods are half-open windows in the time column's clock (UTC for the feature store's event
timestamps). ``"2013-06"`` as an end covers the whole of June, ``"2013-06-15"`` the whole
day; a ``datetime``/``Timestamp`` end is exclusive. With the project's windows
(:class:`noria.windows.Windows`) a period is ``from..to`` window labels instead.
:mod:`noria.training.split` splits the rows by these windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import numpy as np
import pandas as pd

from noria.errors import ConfigError
from noria.periods import is_month
from noria.windows import Windows, in_period, label_problem, ordered

PeriodBound = str | date | datetime | pd.Timestamp


class HasBounds(Protocol):
    """Anything with ``start`` and ``end``, such as ``noria.periods.Period``."""

    @property
    def start(self) -> PeriodBound: ...
    @property
    def end(self) -> PeriodBound: ...


PeriodLike = tuple[PeriodBound, PeriodBound] | Sequence[PeriodBound] | HasBounds


DEFAULT_VALID_FRACTION = 0.15


@dataclass(frozen=True)
class TimeWindow:
    """``start <= t < end``, both UTC."""

    start: pd.Timestamp
    end: pd.Timestamp
    label: str
    first: str = ""  # the first and last window labels, for periods of windows
    last: str = ""

    def contains(self, times: pd.Series) -> pd.Series:
        return (times >= self.start) & (times < self.end)

    def to_dict(self) -> dict[str, str]:
        return {"label": self.label, "start": self.start.isoformat(), "end_exclusive": self.end.isoformat()}


def time_window(period: PeriodLike, name: str = "period") -> TimeWindow:
    """Turn ``(from, to)`` (or an object with ``start``/``end``) into a half-open UTC window."""
    if hasattr(period, "start") and hasattr(period, "end"):
        bounds = (period.start, period.end)
    elif isinstance(period, Sequence) and not isinstance(period, str) and len(period) == 2:
        bounds = (period[0], period[1])
    else:
        raise ConfigError(
            f"{name} period {period!r} is not a (from, to) pair",
            fix=f"give {name} as e.g. ('2013-01', '2013-06') or {{from: 2013-01, to: 2013-06}}",
        )
    start = _bound(bounds[0], name, "from", is_end=False)
    end = _bound(bounds[1], name, "to", is_end=True)
    if start >= end:
        raise ConfigError(
            f"{name} period ends ({bounds[1]}) before it starts ({bounds[0]})",
            fix=f"swap {name}.from and {name}.to",
        )
    return TimeWindow(start, end, f"{bounds[0]}..{bounds[1]}")


def _bound(value: PeriodBound, name: str, key: str, *, is_end: bool) -> pd.Timestamp:
    if isinstance(value, str):
        text = value.strip()
        month = is_month(text)
        if month or label_problem("day", text) is None:  # the month and day rules of noria.periods / windows
            try:
                ts = pd.Timestamp(text + ("-01" if month else ""), tz="UTC")
            except ValueError:  # out of pandas' range (year 0001)
                ts = None
            if ts is not None:
                if is_end:
                    ts = ts + (pd.DateOffset(months=1) if month else pd.DateOffset(days=1))
                return pd.Timestamp(ts)
        raise ConfigError(
            f"{name}.{key} = {value!r} is not a month (YYYY-MM) or a day (YYYY-MM-DD)",
            fix=f"write {name}.{key} like 2013-06 or 2013-06-30",
        )
    ts = pd.Timestamp(value)
    if isinstance(value, date) and not isinstance(value, datetime) and is_end:
        ts = ts + pd.DateOffset(days=1)  # a date names a whole day, like "YYYY-MM-DD"
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def check_order(train: TimeWindow, test: TimeWindow) -> None:
    """The test period lies after the train period, without overlap, or a ConfigError."""
    if test.end <= train.start:
        raise ConfigError(
            f"the test period ({test.label}) lies before the train period ({train.label})",
            fix="hold out a period *after* training, e.g. train 2013-01..2013-06 and test 2013-07..2013-12",
        )
    if test.start < train.end:
        raise ConfigError(
            f"the test period ({test.label}) overlaps the train period ({train.label})",
            fix="start the test period after the train period ends",
        )


def labelled_window(
    period: PeriodLike, name: str, windows: Windows, times: pd.Series, labels: np.ndarray
) -> TimeWindow:
    """The windows ``from..to`` of a period as a TimeWindow: their bounds, or the data's extent."""
    first, last = _period_labels(period, name)
    windows.check(first, f"{name}.from")
    windows.check(last, f"{name}.to")
    if first > last:
        raise ConfigError(
            f"{name} period ends ({last}) before it starts ({first})", fix=f"swap {name}.from and {name}.to"
        )
    span = windows.span(first, last)
    if span is not None:
        start, end = pd.Timestamp(span[0]), pd.Timestamp(span[1])
    else:
        inside = times[in_period(labels, first, last)]
        start = inside.min() if len(inside) else pd.Timestamp(0, tz="UTC")
        end = inside.max() + pd.Timedelta(microseconds=1) if len(inside) else start
    return TimeWindow(start, end, f"{first}..{last}", first, last)


def _period_labels(period: PeriodLike, name: str) -> tuple[str, str]:
    if hasattr(period, "start") and hasattr(period, "end"):
        return str(period.start), str(period.end)
    if isinstance(period, Sequence) and not isinstance(period, str) and len(period) == 2:
        return str(period[0]), str(period[1])
    raise ConfigError(
        f"{name} period {period!r} is not a (from, to) pair",
        fix=f"give {name} as e.g. ('2013-01', '2013-06') or {{from: 2013-01, to: 2013-06}}",
    )


def fit_window(train: TimeWindow, valid: TimeWindow) -> TimeWindow:
    """The fit part of the train period: from its start to where validation starts."""
    start = train.label.split("..")[0]
    return TimeWindow(train.start, valid.start, f"{start}..{valid.start:%Y-%m-%d %H:%M}")


def valid_cut(
    times: pd.Series,
    window: TimeWindow,
    fraction: float | None,
    count: int | None,
    labels: np.ndarray | None = None,
) -> pd.Timestamp:
    """Where validation starts: the first row of the last ``count`` windows (of ``labels``, one per
    row of ``times``; months without labels), or of the last share of rows."""
    if count is not None:
        if count < 1:
            raise ConfigError(
                f"validation_windows = {count}; expected at least 1", fix="set validation_windows to 1 or more"
            )
        if labels is not None:
            distinct = ordered(labels)
            if count >= len(distinct):
                raise ConfigError(
                    f"validation_windows = {count} covers the whole train period {window.label} "
                    f"({len(distinct)} windows with data)",
                    fix="use fewer validation windows or a longer train period",
                )
            inside = in_period(labels, distinct[-count], distinct[-1])
            return pd.Timestamp(times[inside].min())
        cut = pd.Timestamp(window.end - pd.DateOffset(months=count))
        if cut <= window.start:
            raise ConfigError(
                f"validation_windows = {count} months covers the whole train period {window.label}",
                fix="use fewer validation windows or a longer train period",
            )
        return cut
    share = DEFAULT_VALID_FRACTION if fraction is None else fraction
    if not 0.0 < share < 0.5:
        raise ConfigError(f"valid_fraction = {share}; expected more than 0 and less than 0.5", fix="use e.g. 0.15")
    # All rows sharing the cut's timestamp go to validation, so no moment is split in two.
    position = min(len(times) - 1, int(np.floor(len(times) * (1.0 - share))))
    return pd.Timestamp(times.iloc[position])
