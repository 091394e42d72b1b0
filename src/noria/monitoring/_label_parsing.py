"""The values of a labels file, one column at a time: ids parsed by their declared type, labels
encoded as the training set holds them; a value that cannot be used gives its row a reason
(:class:`Reasons`) instead of failing the file. :mod:`.labels` reads the file with these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from noria.errors import DataError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from noria.tasks import Task


def parse_id(values: pd.Series, kind: str, col: str, reasons: Reasons) -> pd.Series:
    """One id column of a labels file, parsed by the id's declared type; bad values get a reason."""
    import pandas as pd

    if kind == "timestamp":
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out: pd.Series = values.dt.tz_convert("UTC")
            reasons.add(out.isna(), f"{col} is missing")
            return out
        if pd.api.types.is_datetime64_dtype(values.dtype):
            raise ValidationError(
                f"{col} holds timestamps without a time zone",
                fix="store UTC timestamps (time-zone aware) or ISO 8601 text with an offset, e.g. 2013-07-01T09:15:00Z",
            )
        text = _text(values)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        has_offset = text.str.contains(_OFFSET, regex=True).fillna(False).astype(bool)
        reasons.add(text.isna(), f"{col} is missing")
        reasons.add(text.notna() & parsed.isna(), f"{col}={{}} is not an ISO 8601 time", text)
        reasons.add(parsed.notna() & ~has_offset, f"{col}={{}} has no UTC offset (add Z or e.g. -04:00)", text)
        return parsed.where(has_offset)
    given = _present(values)
    reasons.add(~given, f"{col} is missing")
    if kind in ("int", "float"):
        numbers = pd.to_numeric(_text(values) if _textual(values) else values, errors="coerce").astype("float64")
        wrong = numbers.isna() | ~np.isfinite(numbers) | ((numbers % 1 != 0) if kind == "int" else False)
        reasons.add(given & wrong, f"{col}={{}} is not {'a whole number' if kind == 'int' else 'a number'}", values)
        return numbers
    if kind == "bool":
        text = _text(values).str.lower()
        flags = text.map(_BOOLS).astype("object")
        reasons.add(given & flags.isna(), f"{col}={{}} is not true/false or 1/0", values)
        return flags.astype("string")
    return _text(values)


_BOOLS = {"true": "True", "t": "True", "1": "True", "1.0": "True"} | {
    "false": "False",
    "f": "False",
    "0": "False",
    "0.0": "False",
}
_OFFSET = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"  # an ISO 8601 UTC offset at the end of the text


def _textual(values: pd.Series) -> bool:
    import pandas as pd

    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def _present(values: pd.Series) -> pd.Series:
    """Where a value is given (not missing, not blank text)."""
    if _textual(values):
        return _text(values).notna().astype(bool)
    return values.notna()


def encode(task: Task, values: pd.Series, threshold: float | None, col: str, reasons: Reasons) -> pd.Series:
    """Labels encoded as the training set holds them (float64, NaN where not given); a value the
    task cannot use gets a reason instead of failing the file. Column-wise: numbers are checked
    in one step; categorical labels (few distinct values) are encoded once per distinct value
    only when the column as a whole does not encode."""
    import pandas as pd

    given = _present(values)
    clean = _text(values).astype(object) if _textual(values) else values
    clean = clean.where(given)
    if threshold is not None or task.name == "regression":
        numbers = pd.to_numeric(clean, errors="coerce").astype("float64")
        reasons.add(given & numbers.isna(), f"{col}={{}} is not a number", values)
        infinite = pd.Series(np.isinf(numbers.to_numpy()), index=values.index)
        reasons.add(infinite, f"{col}={{}} is infinite", values)
        usable = numbers.where(~infinite)
        encoded = task.encode_labels(usable, threshold=threshold, where=col)
        return pd.Series(encoded.to_numpy(dtype="float64"), index=values.index)
    try:  # the usual case: the whole column at once
        encoded = task.encode_labels(clean, threshold=None, where=col)
        return pd.Series(encoded.to_numpy(dtype="float64"), index=values.index)
    except DataError:
        pass
    codes, uniques = pd.factorize(clean, use_na_sentinel=True)
    mapped = np.full(len(uniques), np.nan)
    for j, value in enumerate(uniques):
        try:
            mapped[j] = float(task.encode_labels(pd.Series([value]), threshold=None, where=col).iloc[0])
        except DataError:
            continue
    out = np.where(codes >= 0, mapped[np.maximum(codes, 0)], np.nan)
    wrong = (codes >= 0) & np.isnan(out)
    expected = (
        "true/false or 1/0" if task.name == "binary" else f"one of model.target.classes ({', '.join(task.classes)})"
    )
    reasons.add(wrong, f"{col}={{}} is not {expected}", values)
    return pd.Series(out, index=values.index, dtype="float64")


class Reasons:
    """Why each row is rejected ("" while it is not); messages are built for the rejected rows only."""

    def __init__(self, n: int) -> None:
        self.text = np.full(n, "", dtype=object)

    def add(self, mask: Any, message: str, values: pd.Series | None = None) -> None:
        """Reject rows where ``mask`` holds; ``{}`` in ``message`` shows the row's value from ``values``."""
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


def _text(values: pd.Series) -> pd.Series:
    """Stripped text, NA where missing or blank."""
    # Arrow-backed text: strip, compare and match run in C++ over the column, not per value in Python
    text: pd.Series = values.astype("string").astype("string[pyarrow]").str.strip()
    blank: pd.Series = text.mask(text.eq(""))
    return blank


__all__ = ["Reasons", "encode", "parse_id"]
