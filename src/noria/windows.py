"""Windows: the unit of time that training periods and monitoring windows are written in.

``windows:`` in noria.yaml declares it once for a project::

    windows:
      unit: month                 # day | week | month | function
      timezone: Europe/Berlin     # windows are cut in this zone (default UTC)
      # unit: function + function: football_features:season   (a project function)

Every event time (a prediction's, a training row's) falls into exactly one window, named by a
*label*: ``2013-07`` (month), ``2010-W14`` (ISO week), ``2013-07-14`` (day), or whatever a
project function returns for a timestamp (``1975-76`` for a football season). Labels sort
chronologically as strings, so a period ``{from: A, to: B}`` is every window ``A <= w <= B``,
whatever the unit. Built-in units also know each window's bounds (a half-open UTC interval);
a function's windows are known only through the data they label.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from noria.errors import ConfigError, DataError
from noria.periods import MONTH, MONTH_FORMAT

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Unit = Literal["day", "week", "month", "function"]
FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "month": (MONTH, MONTH_FORMAT),  # the one month pattern (noria.periods)
    "week": (re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$"), "an ISO week YYYY-Www, e.g. 2010-W14"),
    "day": (re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"), "YYYY-MM-DD, e.g. 2013-07-14"),
}
_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


class WindowsConfig(BaseModel):
    """The ``windows:`` section: the unit of training periods and monitoring windows."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # day, week (ISO, Monday to Sunday), month, or function (a project function names windows).
    unit: Unit = "month"
    # Windows are cut at midnight (and month/week starts) in this IANA time zone.
    timezone: str = "UTC"
    # unit: function -> module:function(times: datetime64[ns] UTC array) -> one label per time.
    function: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin or UTC)") from None
        return value

    @model_validator(mode="after")
    def _function_iff_unit(self) -> WindowsConfig:
        if self.unit == "function" and not self.function:
            raise ValueError("unit: function needs function: module:function (timestamps -> window labels)")
        if self.unit != "function" and self.function:
            raise ValueError(f"function is only used with unit: function (the unit is {self.unit})")
        if self.function and not _FUNCTION.match(self.function):
            raise ValueError(f"{self.function!r} is not a function reference: write module:function")
        return self


def label_problem(unit: str, label: Any) -> str | None:
    """Why ``label`` is not a window label of ``unit`` (None when it is one)."""
    if not isinstance(label, str) or not label.strip():
        return f"expected a window label, got {label!r}"
    if unit in FORMATS:
        pattern, shown = FORMATS[unit]
        if not pattern.match(label):
            return f"{label!r} is not a {unit} window: write {shown}"
        if unit == "day":
            try:
                date.fromisoformat(label)
            except ValueError:
                return f"{label!r} is not a calendar day"
        if unit == "week":
            try:
                date.fromisocalendar(int(label[:4]), int(label[6:]), 1)
            except ValueError:
                return f"{label!r} is not an ISO week of {label[:4]}"
    return None


class Windows:
    """The windows of one project: labels for event times, bounds and neighbours of labels."""

    def __init__(
        self,
        config: WindowsConfig | None = None,
        *,
        function: Callable[..., Any] | None = None,
        root: Path | None = None,
    ) -> None:
        self.config = config or WindowsConfig()
        self.unit = self.config.unit
        self.timezone = self.config.timezone
        self._function = function
        self._root = root

    @classmethod
    def of(cls, project: Any) -> Windows:
        """The windows declared by a loaded project (``noria.config.Project``)."""
        return cls(project.config.windows, root=project.root)

    @property
    def builtin(self) -> bool:
        return self.unit != "function"

    def describe(self) -> str:
        if self.unit == "function":
            return f"windows from {self.config.function}"
        return f"{self.unit}s" + ("" if self.timezone == "UTC" else f" ({self.timezone})")

    # --- labels ------------------------------------------------------------------------------

    def check(self, label: str, what: str = "window") -> str:
        """``label`` if it is a label of this unit, else a clear error."""
        problem = label_problem(self.unit, label)
        if problem:
            shown = FORMATS[self.unit][1] if self.unit in FORMATS else "a label the window function returns"
            raise ConfigError(f"{what}: {problem}", fix=f"windows are {self.describe()}: write {shown}")
        return label

    def labels(self, times: Any) -> np.ndarray:
        """One label per timestamp (datetime64 UTC array, Series or DatetimeIndex; NaT -> None)."""
        import numpy as np

        index = _utc_index(times)
        if self.unit == "function":
            values = np.asarray(self._call(index), dtype=object)
            if values.shape != (len(index),):
                raise DataError(
                    f"window function {self.config.function} returned {values.shape} for {len(index)} timestamps",
                    fix="return one label (a string) per timestamp",
                )
            out = np.array([None if v is None or v != v else str(v) for v in values], dtype=object)
            return out
        local = index if self.timezone == "UTC" else index.tz_convert(self.timezone)
        missing = np.asarray(local.isna())
        if self.unit in ("month", "day"):
            out = _calendar_labels(local, "M" if self.unit == "month" else "D")
        else:
            iso = local.isocalendar()
            years = iso["year"].to_numpy(dtype="float64", na_value=np.nan)
            weeks = iso["week"].to_numpy(dtype="float64", na_value=np.nan)
            codes = np.where(np.isnan(years), -1, np.nan_to_num(years) * 100 + np.nan_to_num(weeks)).astype(np.int64)
            uniques, inverse = np.unique(codes, return_inverse=True)
            text = np.array([None if c < 0 else f"{c // 100:04d}-W{c % 100:02d}" for c in uniques], dtype=object)
            out = text[inverse.reshape(-1)] if len(codes) else np.array([], dtype=object)
        out[missing] = None
        return out

    def _call(self, index: pd.DatetimeIndex) -> Any:
        if self._function is None:
            from noria.project_code import resolve_function

            assert self.config.function is not None
            root = self._root or Path.cwd()
            self._function = resolve_function(root, self.config.function, "windows.function")
        naive = index.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")
        return self._function(naive)

    # --- bounds (built-in units) -----------------------------------------------------------------

    def bounds(self, label: str) -> tuple[datetime, datetime] | None:
        """The half-open UTC interval ``[start, end)`` of a window; None for function windows."""
        if self.unit == "function":
            return None
        self.check(label)
        if self.unit == "month":
            year, month = int(label[:4]), int(label[5:7])
            start_day = date(year, month, 1)
            end_day = date(year + month // 12, month % 12 + 1, 1)
        elif self.unit == "day":
            start_day = date.fromisoformat(label)
            end_day = start_day + timedelta(days=1)
        else:
            start_day = date.fromisocalendar(int(label[:4]), int(label[6:]), 1)
            end_day = start_day + timedelta(days=7)
        return self._utc(start_day), self._utc(end_day)

    def span(self, first: str, last: str) -> tuple[datetime, datetime] | None:
        """``[start of first, end of last)`` in UTC; None for function windows."""
        a, b = self.bounds(first), self.bounds(last)
        return None if a is None or b is None else (a[0], b[1])

    def _utc(self, day: date) -> datetime:
        from zoneinfo import ZoneInfo

        local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(self.timezone))
        return local.astimezone(UTC)

    def shift(self, label: str, n: int) -> str:
        """The label ``n`` windows after ``label`` (before when negative); built-in units only."""
        self.check(label)
        if self.unit == "month":
            index = int(label[:4]) * 12 + int(label[5:7]) - 1 + n
            return f"{index // 12:04d}-{index % 12 + 1:02d}"
        if self.unit == "day":
            return (date.fromisoformat(label) + timedelta(days=n)).isoformat()
        if self.unit == "week":
            monday = date.fromisocalendar(int(label[:4]), int(label[6:]), 1) + timedelta(weeks=n)
            year, week, _ = monday.isocalendar()
            return f"{year:04d}-W{week:02d}"
        raise ConfigError(
            "function windows have no arithmetic: their order is the data's", fix="use the labels found in the data"
        )

    def months(self, first: str, last: str) -> list[str] | None:
        """UTC months (data partitions) that can hold events of windows ``first..last``; None: any."""
        span = self.span(first, last)
        if span is None:
            return None
        import pandas as pd

        start = pd.Timestamp(span[0]).tz_convert(None) - pd.Timedelta(days=1)
        end = pd.Timestamp(span[1]).tz_convert(None) + pd.Timedelta(days=1)
        return [str(p) for p in pd.period_range(start, end, freq="M")]


def _calendar_labels(local: pd.DatetimeIndex, unit: Literal["M", "D"]) -> np.ndarray:
    """``strftime("%Y-%m")`` (unit ``M``) or ``("%Y-%m-%d")`` (``D``) of wall-clock times, formatted once per
    distinct month or day instead of once per timestamp (a million rows: milliseconds, not seconds)."""
    import numpy as np

    wall = (local.tz_localize(None) if local.tz is not None else local).to_numpy()  # keeps the index's unit
    uniques, inverse = np.unique(wall.astype(f"datetime64[{unit}]"), return_inverse=True)
    known = uniques[~np.isnat(uniques)]
    years = known.astype("datetime64[Y]").astype(np.int64) + 1970
    if len(years) and (years.min() < 1000 or years.max() > 9999):
        # numpy pads and signs such years unlike strftime, which stays the reference.
        return np.asarray(local.strftime("%Y-%m" if unit == "M" else "%Y-%m-%d"), dtype=object)
    text = np.datetime_as_string(uniques, unit=unit).astype(object)
    out: np.ndarray = text[inverse.reshape(-1)] if len(wall) else np.array([], dtype=object)
    return out


def _utc_index(times: Any) -> pd.DatetimeIndex:
    import pandas as pd

    index = pd.DatetimeIndex(times)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def in_period(labels: Any, first: str, last: str) -> np.ndarray:
    """True where a label lies in ``first..last`` (inclusive; labels sort chronologically)."""
    import numpy as np

    values = np.asarray(labels, dtype=object)
    present = np.array([v is not None for v in values], dtype=bool)
    out = np.zeros(len(values), dtype=bool)
    if present.any():
        text = values[present].astype(str)
        out[present] = (text >= first) & (text <= last)
    return out


def ordered(labels: Any) -> list[str]:
    """The distinct labels, in chronological (string) order, missing ones left out."""
    return sorted({str(v) for v in labels if v is not None and v == v})


__all__ = ["FORMATS", "Windows", "WindowsConfig", "in_period", "label_problem", "ordered"]
