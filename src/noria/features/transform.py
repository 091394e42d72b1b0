"""The transformation code both paths share: request columns -> prediction time, join keys,
request-view features; looked-up values -> derived features; values -> typed columns.

Offline (a training set of 300k rows) and online (one request) call exactly these functions
with the same user functions, so a feature is computed one way only. Values travel as numpy
arrays: ints int64 (float64 with NaN where missing is possible), floats float64, strings
object (None = missing), timestamps datetime64[ns] in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from noria.errors import ValidationError
from noria.features.definitions import Definitions, FeatureDefinitionError, ServicePlan

Arrays = dict[str, np.ndarray]


class RequestColumns(Sequence[Mapping[str, Any]]):
    """The request rows of a few requests held as columns (one list of values per column), also
    readable as one mapping per request.

    The service maps its requests column by column (the project's mapping takes and returns
    arrays); handing those on as columns spares a dict per request and the step back to columns in
    :func:`request_arrays`. Code that takes request rows as records still can (``rows[i]``).
    """

    __slots__ = ("_n", "columns")

    def __init__(self, columns: Mapping[str, list[Any]], n: int) -> None:
        self.columns = dict(columns)
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            picked = {name: values[index] for name, values in self.columns.items()}
            return RequestColumns(picked, len(range(*index.indices(self._n))))
        if not -self._n <= index < self._n:
            raise IndexError(index)
        return {name: values[index] for name, values in self.columns.items()}


def request_arrays(defs: Definitions, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Arrays:
    """The request columns as typed arrays, from a DataFrame, :class:`RequestColumns` or records (dicts)."""
    columns: Mapping[str, list[Any]] | None = None
    if isinstance(rows, RequestColumns):
        missing = sorted(c for c in defs.request_types if c not in rows.columns) if len(rows) else []
        columns = rows.columns
        get = None
    elif isinstance(rows, pd.DataFrame):
        missing = [c for c in defs.request_types if c not in rows.columns]
        get = rows.__getitem__
    else:
        missing = sorted({c for c in defs.request_types for r in rows if c not in r})
        get = None
    if missing:
        raise ValidationError(
            f"the request lacks column(s) {', '.join(missing)}",
            fix=f"send every request column: {', '.join(defs.request_types)}",
        )
    out: Arrays = {}
    for col, (kind, nullable) in defs.request_types.items():
        if get is not None:
            out[col] = _column(col, get(col), kind, nullable)
        elif columns is not None:
            out[col] = _record_column(col, columns[col], kind, nullable)
        else:
            out[col] = _record_column(col, [r[col] for r in rows], kind, nullable)  # type: ignore[index]
    return out


def _record_column(col: str, values: list[Any], kind: str, nullable: bool) -> np.ndarray:
    """Like :func:`_column` for a few records (one request): plain Python, no pandas on the hot path."""
    try:
        if kind == "str":
            if not nullable and any(v is None for v in values):
                raise ValueError("missing value")
            return np.array([None if v is None else str(v) for v in values], dtype=object)
        if kind == "int" and not nullable:
            return np.array([int(v) for v in values], dtype=np.int64)
        if kind in ("int", "float"):
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        if kind == "timestamp":
            return np.array([_utc_ns(v) for v in values], dtype=np.int64).astype("datetime64[ns]")
        return np.array([bool(v) for v in values], dtype=bool)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"request column {col!r} must be {'a nullable ' if nullable else ''}{kind}: {exc}",
            fix=f"send {col} as {kind}" + ("" if nullable else " (it may not be missing)"),
        ) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_ns(value: Any) -> int:
    """Nanoseconds since the epoch of an ISO string or datetime (naive = UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if not isinstance(value, datetime):
        raise TypeError(f"expected an ISO 8601 timestamp, got {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if isinstance(value, pd.Timestamp):
        return int(value.value)  # keeps nanoseconds
    delta = value - _EPOCH
    return int((delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000)


def _column(col: str, values: pd.Series, kind: str, nullable: bool) -> np.ndarray:
    try:
        if kind == "timestamp":
            if values.dtype == object:
                values = pd.to_datetime(values, utc=True, format="ISO8601")
            elif not isinstance(values.dtype, pd.DatetimeTZDtype):
                values = values.dt.tz_localize("UTC")
            if values.isna().any():
                raise ValueError("missing timestamp")
            stamps: np.ndarray = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
            return stamps
        if kind == "str":
            if values.isna().any() and not nullable:
                raise ValueError("missing value")
            return _none_for_missing(values.to_numpy(dtype=object))
        if kind == "int" and not nullable:
            return values.to_numpy(dtype=np.int64)
        if kind in ("int", "float"):
            return pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.nan)
        return values.to_numpy(dtype=bool)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"request column {col!r} must be {'a nullable ' if nullable else ''}{kind}: {exc}",
            fix=f"send {col} as {kind}" + ("" if nullable else " (it may not be missing)"),
        ) from None


def prediction_times(defs: Definitions, cols: Arrays) -> np.ndarray:
    """The prediction time of each request (datetime64[ns], UTC)."""
    ref = defs.request.timestamp
    values = np.asarray(defs.functions[ref](cols))
    if values.dtype.kind != "M" or len(values) != _length(cols):
        raise FeatureDefinitionError(
            f"features.request.timestamp: {ref} returned {values.dtype} of length {len(values)}",
            fix="return a datetime64 array (UTC) with one value per request row",
        )
    return values.astype("datetime64[ns]")


def request_features(defs: Definitions, plan: ServicePlan, cols: Arrays) -> Arrays:
    """Request-view features (computed and passthrough) of the plan's request views."""
    n = _length(cols)
    out: Arrays = {}
    for name in plan.request_views:
        view = defs.config.request_views[name]
        for col in view.passthrough:
            out[col] = cols[col]
        if view.function is None:
            continue
        result = defs.functions[view.function]({c: cols[c] for c in view.inputs}, **view.params)
        for feature in view.features:
            if not isinstance(result, Mapping) or feature not in result:
                got = ", ".join(result) if isinstance(result, Mapping) else type(result).__name__
                raise FeatureDefinitionError(
                    f"request view {name!r}: {view.function} did not return feature {feature!r} (returned: {got})",
                    fix=f"return a dict with one array per declared feature of {name!r}",
                )
            out[feature] = _as_array(result[feature], n, f"request view {name!r}: feature {feature!r}")
    return out


def derived_features(defs: Definitions, plan: ServicePlan, values: Arrays) -> None:
    """Compute the plan's derived features in dependency order, adding them to ``values``."""
    n = len(next(iter(values.values()))) if values else 0
    for name in plan.derived:
        spec = defs.config.derived[name]
        result = defs.functions[spec.function]({c: values[c] for c in spec.inputs}, **spec.params)
        values[name] = _as_array(result, n, f"derived feature {name!r}")


def _as_array(value: Any, n: int, owner: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 0:
        array = np.full(n, array.item())
    if len(array) != n:
        raise FeatureDefinitionError(f"{owner}: got {len(array)} values for {n} rows", fix="return one value per row")
    return array


def _length(cols: Arrays) -> int:
    return len(next(iter(cols.values()))) if cols else 0


def numeric(values: np.ndarray) -> np.ndarray:
    """Lookup results as arrays derived features can use: numbers float64 (NaN = missing)."""
    return values.astype(np.float64) if values.dtype.kind in "iub" else values


def typed_columns(defs: Definitions, plan: ServicePlan, values: Arrays) -> dict[str, Any]:
    """The plan's output features with their declared types (Int64, float64, object, boolean)."""
    out: dict[str, Any] = {}
    for name in plan.features:
        kind = defs.features[name].type
        array = values[name]
        if kind == "int":
            out[name] = _nullable_int(array, name)
        elif kind == "float":
            out[name] = np.asarray(array, dtype=np.float64)
        elif kind == "bool":
            out[name] = pd.array(array, dtype="boolean")
        else:
            out[name] = _none_for_missing(np.asarray(array, dtype=object))
    return out


def _nullable_int(values: np.ndarray, name: str) -> Any:
    """A pandas Int64 array from int or float (NaN = missing) values, without per-value checks."""
    if values.dtype.kind in "iub":
        return pd.arrays.IntegerArray(values.astype(np.int64), np.zeros(len(values), dtype=bool))
    if values.dtype.kind == "f":
        mask = np.isnan(values)
        whole = np.where(mask, 0, values)
        if not np.array_equal(whole, np.round(whole)):
            raise FeatureDefinitionError(
                f"feature {name!r} is declared int but has fractional values", fix="declare it as type: float"
            )
        return pd.arrays.IntegerArray(whole.astype(np.int64), mask)
    return pd.array(values, dtype="Int64")


def _none_for_missing(values: np.ndarray) -> np.ndarray:
    """An object array with None wherever a value is missing (NaN, NA, None)."""
    out = values.copy()
    out[np.asarray(pd.isna(values), dtype=bool)] = None
    return out


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is missing (NaN, None, NaT)."""
    if values.dtype.kind == "f":
        nan: np.ndarray = np.isnan(values)
        return nan
    if values.dtype.kind in "iub":
        return np.zeros(len(values), dtype=bool)
    if values.dtype == object:
        return np.fromiter((v is None or v != v for v in values), dtype=bool, count=len(values))
    mask: np.ndarray = np.asarray(pd.isna(values), dtype=bool)
    return mask


__all__ = [
    "RequestColumns",
    "derived_features",
    "missing_mask",
    "numeric",
    "prediction_times",
    "request_arrays",
    "request_features",
    "typed_columns",
]
