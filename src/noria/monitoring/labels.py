"""Delayed labels: the outcome of flights that have departed, read from a file someone hands over.

A labels file (Parquet or CSV) names each flight by its key (carrier, flight, origin,
scheduled departure as time-zone aware ISO text or UTC timestamps) and gives either ``late``
(true/false, 1/0) or ``dep_delay`` in minutes (``late = dep_delay > threshold``; an empty
delay is a cancelled flight, which has no label). Whole-file problems (unreadable, a column
missing) raise; bad rows (a key that cannot be read, ``late`` that is not a boolean, one
flight with two different outcomes) go to a quarantine Parquet file with a ``reason`` per
row. Nothing is dropped without being counted: the returned frame's ``attrs`` say how many
rows were read, rejected, unlabelled (cancelled) or exact duplicates, and where the
quarantine file is.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import SourceError, ValidationError
from noria.monitoring.flights import KEY

if TYPE_CHECKING:
    import pandas as pd

LABEL_COLUMNS = ("late", "dep_delay")
REASON = "reason"
_TRUE = frozenset({"true", "t", "yes", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "0", "0.0"})
_OFFSET = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"  # an ISO 8601 UTC offset at the end of the text


def load_labels(path: Path | str, *, threshold: float, quarantine_dir: Path | str) -> tuple[pd.DataFrame, int]:
    """Read a labels file; return (labels, rejected count).

    Labels have one row per flight: ``carrier``, ``flight`` (int), ``origin``,
    ``scheduled_departure`` (UTC), ``late`` (bool) and ``dep_delay`` (float, NaN when the file
    gave only ``late``). Rejected rows are written to ``quarantine_dir`` with their reason.
    """
    import pandas as pd

    path = Path(path)
    raw = _read(path)
    _check_columns(raw, path)
    n = len(raw)
    reasons = _Reasons(n)

    carrier = _text(raw["carrier"])
    origin = _text(raw["origin"])
    reasons.add(carrier.isna(), "carrier is missing")
    reasons.add(origin.isna(), "origin is missing")
    flight = pd.to_numeric(raw["flight"], errors="coerce")
    bad_flight = flight.isna() | (flight <= 0) | (flight % 1 != 0)
    reasons.add(bad_flight, "flight={} is not a positive whole number", raw["flight"])
    departs = _departures(raw["scheduled_departure"], path, reasons)
    late, delay = _late(raw, threshold, reasons)

    ok = reasons.ok()
    labelled = ok & late.notna().to_numpy()
    labels = pd.DataFrame(
        {
            "carrier": carrier.astype(object),
            "flight": flight.fillna(0).astype("int64"),
            "origin": origin.astype(object),
            "scheduled_departure": departs,
            "late": late.astype("boolean"),
            "dep_delay": delay,
        }
    )[labelled]
    # one flight, two different outcomes: neither can be trusted; the same outcome twice is kept once
    repeated = labels[labels.duplicated(KEY, keep=False)]
    duplicates = 0
    if len(repeated):
        per_key = repeated.groupby(KEY, sort=False)["late"]
        conflict = per_key.transform("nunique") > 1
        times = per_key.transform("size")[conflict]
        count = pd.Series(0, index=raw.index)
        count[times.index] = times
        reasons.add(raw.index.isin(times.index), "the flight appears {} times with different labels", count)
        labels = labels.drop(index=times.index)
        again = labels.duplicated(KEY, keep="first")
        duplicates = int(again.sum())
        labels = labels[~again]
    labels = labels.reset_index(drop=True)
    labels["late"] = labels["late"].astype(bool)

    bad = ~reasons.ok()
    quarantine = _quarantine(raw[bad], reasons.text[bad], Path(quarantine_dir), path) if bad.any() else None
    labels.attrs.update(
        source=str(path),
        rows_read=n,
        rejected=int(bad.sum()),
        unlabelled=int((ok & late.isna().to_numpy()).sum()),
        duplicates=duplicates,
        quarantine_path=None if quarantine is None else str(quarantine),
    )
    return labels, int(bad.sum())


class _Reasons:
    """Why each row is rejected ("" while it is not); messages are built for the rejected rows only."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.text = np.full(n, "", dtype=object)

    def add(self, mask: Any, message: str, values: pd.Series | None = None) -> None:
        """Reject rows where ``mask`` holds; ``{}`` in ``message`` shows the row's value from ``values``."""
        import numpy as np

        hit = np.flatnonzero(np.asarray(mask.fillna(False) if hasattr(mask, "fillna") else mask, dtype=bool))
        if not hit.size:
            return
        if values is None:
            why: Any = message
        else:
            prefix, _, suffix = message.partition("{}")
            why = prefix + values.iloc[hit].astype(str).to_numpy(dtype=object) + suffix
        now = self.text[hit]
        self.text[hit] = np.where(now == "", why, now + "; " + why)

    def ok(self) -> Any:
        return self.text == ""


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise SourceError(f"labels file {path} does not exist", fix="pass the path of a Parquet or CSV labels file")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            frame = pd.read_parquet(path)
        elif ".csv" in suffixes or ".txt" in suffixes:
            # every value as text, so a bad one is quarantined as it was written
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            raise ValidationError(
                f"labels file {path} is neither Parquet nor CSV (suffix {path.suffix!r})",
                fix="give a .parquet or .csv file",
            )
    except (OSError, ValueError, pd.errors.ParserError, ImportError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise SourceError(
            f"cannot read labels file {path}: {exc}", fix="check that it is a valid Parquet or CSV file"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise SourceError(f"labels file {path} has no rows", fix="pass a file with at least one labelled flight")
    return frame


def _check_columns(raw: pd.DataFrame, path: Path) -> None:
    missing = [c for c in KEY if c not in raw.columns]
    if missing:
        raise ValidationError(
            f"labels file {path} has no column {', '.join(map(repr, missing))}; expected the flight key "
            f"{', '.join(KEY)} and late or dep_delay (found: {', '.join(map(str, raw.columns))})",
            fix="add the missing column(s); scheduled_departure is ISO 8601 with an offset, "
            "e.g. 2013-07-01T05:15:00-04:00",
        )
    if not any(c in raw.columns for c in LABEL_COLUMNS):
        raise ValidationError(
            f"labels file {path} has neither a 'late' nor a 'dep_delay' column "
            f"(found: {', '.join(map(str, raw.columns))})",
            fix="add late (true/false or 1/0) or dep_delay (minutes; late = dep_delay > the target threshold)",
        )


def _text(values: pd.Series) -> pd.Series:
    """Stripped text, NA where missing or blank."""

    # Arrow-backed text: strip, compare and match run in C++ over the column, not per value in Python
    text: pd.Series = values.astype("string").astype("string[pyarrow]").str.strip()
    blank: pd.Series = text.mask(text.eq(""))
    return blank


def _departures(values: pd.Series, path: Path, reasons: _Reasons) -> pd.Series:
    """Scheduled departures in UTC (microseconds); NaT, with a reason, where they cannot be read."""
    import pandas as pd
    from pandas.api import types as ptypes

    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out: pd.Series = values.dt.tz_convert("UTC").dt.as_unit("us")
        reasons.add(out.isna(), "scheduled_departure is missing")
        return out
    if ptypes.is_datetime64_dtype(values.dtype) or ptypes.is_numeric_dtype(values.dtype):
        raise ValidationError(
            f"scheduled_departure in {path} holds {values.dtype} values without a time zone",
            fix="store UTC timestamps (time-zone aware) or ISO 8601 text with an offset, e.g. 2013-07-01T09:15:00Z",
        )
    text = _text(values)
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).astype(bool)
    reasons.add(text.isna(), "scheduled_departure is missing")
    reasons.add(text.notna() & parsed.isna(), "scheduled_departure={} is not an ISO 8601 time", text)
    reasons.add(parsed.notna() & ~has_offset, "scheduled_departure={} has no UTC offset (add Z or e.g. -04:00)", text)
    return parsed.where(has_offset).dt.as_unit("us")


def _late(raw: pd.DataFrame, threshold: float, reasons: _Reasons) -> tuple[pd.Series, pd.Series]:
    """``late`` as nullable boolean (from the ``late`` column, else ``dep_delay > threshold``) and the delay."""
    import pandas as pd

    late = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    delay = pd.Series(float("nan"), index=raw.index, dtype="float64")
    if "dep_delay" in raw.columns:
        delay = pd.to_numeric(raw["dep_delay"], errors="coerce").astype("float64")
        given = _text(raw["dep_delay"]).notna()
        reasons.add(given & delay.isna(), "dep_delay={} is not a number of minutes", raw["dep_delay"])
        late = (delay > threshold).astype("boolean").mask(delay.isna())
    if "late" in raw.columns:
        values = raw["late"]
        if pd.api.types.is_bool_dtype(values.dtype):
            stated = values.astype("boolean")
        else:
            text = _text(values).str.lower()
            stated = pd.Series(pd.NA, index=raw.index, dtype="boolean")
            stated[text.isin(_TRUE).to_numpy(dtype=bool)] = True
            stated[text.isin(_FALSE).to_numpy(dtype=bool)] = False
            reasons.add(text.notna() & stated.isna(), "late={} is not true/false or 1/0", values)
        disagree = stated.notna() & late.notna() & (stated != late)
        if disagree.any():
            why = "late disagrees with dep_delay={}" + f" (late means > {threshold:g} min)"
            reasons.add(disagree, why, raw["dep_delay"])
        late = stated.where(stated.notna(), late)
    return late, delay


def _quarantine(rows: pd.DataFrame, reasons: Any, folder: Path, source: Path) -> Path:
    """Write rejected rows (as text, with their 1-based row number and reason) atomically."""
    import pandas as pd

    text = rows.astype("string").astype(object)
    out = text.mask(text.isna(), None)
    out.insert(0, "row", (rows.index.to_numpy() + 1).astype("int64"))
    out[REASON] = reasons
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"labels-{source.name.split('.')[0]}-{stamp}.parquet"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pd.DataFrame(out).to_parquet(tmp, index=False)
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


__all__ = ["LABEL_COLUMNS", "load_labels"]
