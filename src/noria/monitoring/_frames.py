"""Turning DataFrame columns into the arrays the drift kernels read.

Numeric features become float64 with NaN for missing (``inf`` counts as missing too);
categorical features become integer codes with a ``str`` label per code, so that a category
is the same whether it was read from Parquet, CSV or a JSON profile.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from noria.errors import DataError
from noria.monitoring._kernels import FloatArray, IntArray

Kind = Literal["numeric", "categorical"]


def column_kinds(frame: pd.DataFrame, categorical: set[str]) -> dict[str, Kind]:
    """Numeric dtypes are numeric features; strings, categories and booleans are categorical."""
    unknown = sorted(categorical - set(map(str, frame.columns)))
    if unknown:
        raise DataError(
            f"categorical names {', '.join(map(repr, unknown))}, which are not columns of the frame",
            fix="list only columns of the frame under categorical",
        )
    kinds: dict[str, Kind] = {}
    for name in frame.columns:
        dtype = frame[name].dtype
        if not isinstance(name, str):
            raise DataError(f"column name {name!r} is not a string", fix="give every column a string name")
        if name in categorical or ptypes.is_bool_dtype(dtype):
            kinds[name] = "categorical"
        elif ptypes.is_numeric_dtype(dtype):
            kinds[name] = "numeric"
        elif ptypes.is_object_dtype(dtype) or ptypes.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            kinds[name] = "categorical"
        else:
            raise DataError(
                f"column {name!r} has dtype {dtype}, which drift checks cannot profile",
                fix="drop the column or convert it (e.g. a timestamp to its hour or month) before profiling",
            )
    return kinds


def numbers_of(series: pd.Series[Any]) -> FloatArray:
    """A float64 copy of a numeric column, NaN where the value is missing or infinite."""
    if ptypes.is_object_dtype(series.dtype) and series.isna().all():
        # no value at all (e.g. a feature the online store had for none of the window's rows):
        # the log's column has no type to carry, yet it is the numeric feature, all missing
        return np.full(len(series), np.nan, dtype=np.float64)
    if not ptypes.is_numeric_dtype(series.dtype) or ptypes.is_bool_dtype(series.dtype):
        raise DataError(
            f"column {series.name!r} has dtype {series.dtype}, but the reference profile says it is numeric",
            fix="pass the column with the type it had at training time",
        )
    values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def numbers_matrix(frame: pd.DataFrame, names: Iterable[str], last: FloatArray | None = None) -> FloatArray:
    """Numeric columns stacked as rows of one C-contiguous (columns x rows) array; ``last``, if
    given, as one more row after them (filled in place, not stacked on afterwards: no copy)."""
    names = list(names)
    out = np.empty((len(names) + (last is not None), frame.shape[0]), dtype=np.float64)
    for i, name in enumerate(names):  # one vectorised conversion per column, whatever its dtype
        out[i] = numbers_of(frame[name])
    if last is not None:
        out[-1] = last
    return out


def factorize(series: pd.Series[Any]) -> tuple[IntArray, list[str]]:
    """Codes (-1 where missing) and the label of each code, as ``str``.

    Values that differ but print the same (``1`` and ``"1"``) get the same label; callers that
    count by label must merge them.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes: IntArray = np.asarray(series.cat.codes, dtype=np.int64)
        uniques: Any = series.cat.categories
    else:
        raw, uniques = pd.factorize(series.to_numpy())
        codes = np.asarray(raw, dtype=np.int64)
    return codes, [u if isinstance(u, str) else str(u) for u in uniques]
