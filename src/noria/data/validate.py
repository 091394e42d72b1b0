"""Type, check and de-duplicate a raw table; split it into accepted and quarantined rows.

Two passes, both vectorised:

1. *Types* (here): each column is converted from text to its declared type; a value that
   does not convert (``"abc"`` for an int) is a type failure for that row, kept with its
   original text.
2. *Rules* (pandera): nullability, min/max, allowed values, patterns and primary-key
   uniqueness, checked lazily so every failure of every row is reported at once.

A row with any failure goes to quarantine with every rule it broke; the others are
accepted. Row accounting always holds: ``read == accepted + quarantined``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from noria.config import ColumnSpec, TableSpec

# Columns added to quarantined rows (the original columns keep their raw text).
RULE_COLUMN = "_rule"
ROW_COLUMN = "_source_row"

_PANDAS_TYPES = {
    "int": "Int64",
    "float": "float64",
    "str": "object",
    "bool": "boolean",
    "timestamp": "datetime64[ns, UTC]",
}


@dataclass
class ValidatedTable:
    accepted: pd.DataFrame  # typed columns
    quarantined: pd.DataFrame  # raw text columns + _rule + _source_row
    rule_counts: dict[str, int] = field(default_factory=dict)

    @property
    def read(self) -> int:
        return len(self.accepted) + len(self.quarantined)


def schema_hash(spec: TableSpec) -> str:
    """A stable hash of a table's declared schema (what the rows were validated against)."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _coerce(raw: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, pd.Series]:
    """(typed column, boolean mask of values that were present but did not convert)."""
    present = raw.notna()
    if spec.type in ("int", "float"):
        numbers = pd.to_numeric(raw, errors="coerce")
        bad = present & numbers.isna()
        if spec.type == "int":
            fractional = numbers.notna() & (np.floor(numbers) != numbers)
            bad |= fractional
            numbers = numbers.where(~fractional)
            return numbers.astype("Int64"), bad
        return numbers.astype("float64"), bad
    if spec.type == "bool":
        lowered = raw.str.lower()
        mapped = lowered.map({"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False})
        bad = present & mapped.isna()
        return mapped.astype("boolean"), bad
    if spec.type == "timestamp":
        if spec.timezone is None or spec.timezone == "UTC":
            stamps = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
            return stamps, present & stamps.isna()
        # Values written without an offset are local times of the column's zone; a local time
        # that does not exist or is ambiguous (a DST change) does not convert.
        has_offset = raw.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True, na=False).astype(bool)
        aware = pd.to_datetime(raw.where(has_offset), errors="coerce", utc=True, format="ISO8601")
        naive = pd.to_datetime(raw.where(~has_offset), errors="coerce", format="ISO8601")
        if isinstance(naive.dtype, pd.DatetimeTZDtype):  # every value had an offset after all
            naive = naive.dt.tz_convert("UTC").dt.tz_localize(None)
        local = naive.dt.tz_localize(spec.timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
        stamps = aware.where(has_offset, local)
        return stamps, present & stamps.isna()
    return raw.astype(object), pd.Series(False, index=raw.index)


def coerce_column(raw: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Source text of one column converted to its declared type (missing where it does not convert)."""
    return _coerce(raw, spec)[0]


def _schema(spec: TableSpec) -> object:
    import pandera.pandas as pa

    columns = {}
    for name, col in spec.columns.items():
        checks = []
        if col.min is not None:
            checks.append(pa.Check.ge(col.min))
        if col.max is not None:
            checks.append(pa.Check.le(col.max))
        if col.allowed is not None:
            checks.append(pa.Check.isin(col.allowed))
        if col.pattern is not None:
            checks.append(pa.Check.str_matches(col.pattern))
        nullable = col.nullable and name not in spec.primary_key
        columns[name] = pa.Column(_PANDAS_TYPES[col.type], checks, nullable=nullable)
    return pa.DataFrameSchema(columns, unique=spec.primary_key, report_duplicates="exclude_first")


def _describe(check: str, column: object, value: object, spec: TableSpec) -> str:
    col = str(column)
    if check == "not_nullable":
        role = "primary-key" if col in spec.primary_key else "required"
        return f"missing {role} value in {col}"
    if check.startswith("greater_than_or_equal_to"):
        return f"{col}={value} is below the minimum {spec.columns[col].min:g}"
    if check.startswith("less_than_or_equal_to"):
        return f"{col}={value} is above the maximum {spec.columns[col].max:g}"
    if check.startswith("isin"):
        return f"{col}={value!r} is not one of the allowed values"
    if check.startswith("str_matches"):
        return f"{col}={value!r} does not match {spec.columns[col].pattern}"
    if "unique" in check or "duplicate" in check:
        return f"duplicate primary key ({', '.join(spec.primary_key)})"
    return f"{col}: {check} failed for {value!r}"


def validate_table(spec: TableSpec, raw: pd.DataFrame) -> ValidatedTable:
    """Split ``raw`` (text columns, index = source row number) into accepted and quarantined."""
    import pandera.errors

    reasons: dict[int, list[str]] = defaultdict(list)
    typed = {}
    type_failed: set[tuple[int, str]] = set()
    for name, col in spec.columns.items():
        values, bad = _coerce(raw[name], col)
        typed[name] = values
        for idx in bad[bad].index:
            reasons[int(idx)].append(f"{name}={raw.at[idx, name]!r} is not a valid {col.type}")
            type_failed.add((int(idx), name))
    frame = pd.DataFrame(typed, index=raw.index)

    try:
        _schema(spec).validate(frame, lazy=True)  # type: ignore[attr-defined]
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        for check, column, value, idx in zip(
            cases["check"].astype(str), cases["column"], cases["failure_case"], cases["index"], strict=True
        ):
            if idx is None or (isinstance(idx, float) and np.isnan(idx)):
                continue  # a table-level failure without a row: cannot happen with our checks
            row = int(idx)
            if (row, str(column)) in type_failed:
                continue  # already explained by the type failure
            reasons[row].append(_describe(check, column, value, spec))

    bad_rows = np.fromiter(sorted(reasons), dtype=np.int64, count=len(reasons))
    keep = ~raw.index.isin(bad_rows)
    accepted = frame[keep].reset_index(drop=True)
    quarantined = raw.loc[bad_rows].copy()
    quarantined[RULE_COLUMN] = ["; ".join(dict.fromkeys(reasons[int(i)])) for i in bad_rows]
    quarantined[ROW_COLUMN] = bad_rows + 2  # 1-based line in the file, after the header
    quarantined = quarantined.reset_index(drop=True)
    counts: dict[str, int] = defaultdict(int)
    for row in bad_rows:
        for reason in dict.fromkeys(reasons[int(row)]):
            counts[_rule_kind(reason)] += 1
    return ValidatedTable(accepted=accepted, quarantined=quarantined, rule_counts=dict(counts))


def _rule_kind(reason: str) -> str:
    """Group a row's reason into a short rule name for the summary (e.g. 'distance below minimum')."""
    for marker, kind in (
        (" is not a valid ", "wrong type"),
        ("below the minimum", "below minimum"),
        ("above the maximum", "above maximum"),
        ("not one of the allowed", "not allowed"),
        ("does not match", "bad format"),
        ("duplicate primary key", "duplicate key"),
        ("missing", "missing value"),
    ):
        if marker in reason:
            column = reason.split("=", 1)[0] if "=" in reason else reason.rsplit(" ", 1)[-1]
            return kind if kind == "duplicate key" else f"{column}: {kind}"
    return reason
