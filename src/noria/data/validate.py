"""Type, check and de-duplicate a raw table; split it into accepted and quarantined rows.

Two passes, both vectorised:

1. *Types* (here): each column is converted from text to its declared type; a value that
   does not convert (``"abc"`` for an int) is a type failure for that row, kept with its
   original text.
2. *Rules* (pandera): nullability, min/max, allowed values, patterns, primary-key
   uniqueness and the column-wise declared checks (``hhmm``), checked lazily so every
   failure of every row is reported at once; a year/month partition's month must be 1-12.
3. *Checks across columns* (``checks:`` of the table: ``date``, ``requires``, ``not_before``,
   ``unique_within``, project functions): one vectorised boolean mask per check. These are
   not pandera dataframe checks because pandera reports a failing row once per column of the
   frame it checks, and a check's detail is built here from the few columns it reads.

A row with any failure goes to quarantine with every rule it broke; the others are
accepted. Row accounting always holds: ``read == accepted + quarantined``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from noria.config import CheckSpec, ColumnSpec, TableSpec
from noria.errors import ConfigError

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
    # quality gates are policy, not schema: changing a threshold does not change what a row is
    # (and a table without checks hashes as it did before checks existed)
    exclude = {"quality"} | (set() if spec.checks else {"checks"})
    canonical = json.dumps(spec.model_dump(mode="json", exclude=exclude), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _coerce(raw: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, pd.Series]:
    """(typed column, boolean mask of values that were present but did not convert)."""
    present = raw.notna()
    if spec.type in ("int", "float"):
        numbers = parse_numbers(raw)
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


def parse_numbers(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")``, parsing each distinct text once.

    A column of millions of rows holds far fewer distinct texts (delays, clock times, years),
    and parsing text is the slow part of typing; hashing the texts to find the distinct ones
    costs a fraction of it. Same result, value for value and dtype."""
    if values.dtype.kind in "iufb" or not len(values):
        return pd.to_numeric(values, errors="coerce")
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = pd.to_numeric(pd.Series(np.asarray(uniques, dtype=object)), errors="coerce")
    missing = codes < 0
    if missing.any() or not len(parsed):
        taken = (
            parsed.astype("float64").to_numpy().take(np.maximum(codes, 0))
            if len(parsed)
            else np.full(len(codes), np.nan)
        )
        taken[missing] = np.nan
        return pd.Series(taken, index=values.index, dtype="float64", name=values.name)
    return pd.Series(parsed.to_numpy().take(codes), index=values.index, name=values.name)


def coerce_column(raw: pd.Series, spec: ColumnSpec) -> pd.Series:
    """Source text of one column converted to its declared type (missing where it does not convert)."""
    return _coerce(raw, spec)[0]


def _schema(spec: TableSpec) -> object:
    import pandera.pandas as pa

    hhmm: dict[str, list[str]] = defaultdict(list)
    for check in spec.checks:
        for name in check.hhmm or []:
            hhmm[name].append(check.name)
    month = spec.partition.month if spec.partition is not None else None
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
        if name in hhmm:
            checks.extend(pa.Check(_is_hhmm, name=f"{_CHECK_PREFIX}{check}") for check in hhmm[name])
        if name == month and not (col.min is not None and col.min >= 1 and col.max is not None and col.max <= 12):
            checks.append(pa.Check(lambda v: v.between(1, 12), name=_PARTITION_MONTH))
        nullable = col.nullable and name not in spec.primary_key
        columns[name] = pa.Column(_PANDAS_TYPES[col.type], checks, nullable=nullable)
    return pa.DataFrameSchema(columns, unique=spec.primary_key, report_duplicates="exclude_first")


_CHECK_PREFIX = "noria_check:"
_PARTITION_MONTH = "noria_partition_month"


def _is_hhmm(values: pd.Series) -> pd.Series:
    """HHMM clock times: hour 0-23, minute 0-59, or 2400 (midnight at the end of the day)."""
    hour, minute = values // 100, values % 100
    ok: pd.Series = ((values >= 0) & (hour <= 23) & (minute <= 59)) | (values == 2400)
    return ok


def _describe(check: str, column: object, value: object, spec: TableSpec) -> str:
    col = str(column)
    if check.startswith(_CHECK_PREFIX):
        found = _named_check(spec, check.removeprefix(_CHECK_PREFIX))
        return _with_name(found, f"{col}={_plain(value)} is not a clock time HHMM (hour 0-23, minute 0-59)")
    if check == _PARTITION_MONTH:
        return f"{col}={_plain(value)} is not a month (1-12): the row belongs to no partition"
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


def validate_table(
    spec: TableSpec, raw: pd.DataFrame, root: Path | None = None, extra: dict[int, list[str]] | None = None
) -> ValidatedTable:
    """Split ``raw`` (text columns, index = source row number) into accepted and quarantined.

    ``root``: the project folder, where the modules of ``function`` checks are imported from.
    ``extra``: reasons found outside ``raw`` by source row (a key that repeats a row of
    another month), added to the row's own.
    """
    import pandera.errors

    reasons: dict[int, list[str]] = defaultdict(list)
    for row, found in (extra or {}).items():
        reasons[row].extend(found)
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

    for check in spec.checks:
        if check.hhmm is None:
            for row, reason in _failures(check, frame, spec, root):
                reasons[row].append(reason)

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


def duplicate_reason(spec: TableSpec, check: str | None, values: dict[str, object]) -> str:
    """The reason of a row whose key repeats an earlier row's: the primary key (``check``
    None) or a ``unique_within`` check by name, with the row's values of its columns."""
    if check is None:
        return _describe("unique", None, None, spec)
    shown = ", ".join(f"{c}={_plain(v)}" for c, v in values.items())
    return _with_name(_named_check(spec, check), f"{shown} repeats an earlier row")


def _rule_kind(reason: str) -> str:
    """Group a row's reason into a short rule name for the summary (e.g. 'distance below minimum')."""
    if reason.endswith(")") and "(check " in reason:
        return "check " + reason.rsplit("(check ", 1)[1].split(":", 1)[0].rstrip(")")
    if "belongs to no partition" in reason:
        return f"{reason.split('=', 1)[0]}: not a month"
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


# --- checks across columns -------------------------------------------------------------------


def _named_check(spec: TableSpec, name: str) -> CheckSpec:
    return next(c for c in spec.checks if c.name == name)


def _with_name(check: CheckSpec, detail: str) -> str:
    """A quarantine reason: what is wrong with the row, then the check (and its reason, if given)."""
    return f"{detail} (check {check.name}: {check.reason})" if check.reason else f"{detail} (check {check.name})"


def _plain(value: object) -> str:
    """A value as the file wrote it: 1560, not 1560.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _failures(check: CheckSpec, frame: pd.DataFrame, spec: TableSpec, root: Path | None) -> list[tuple[int, str]]:
    """(row, reason) for every row of ``frame`` that fails ``check``."""
    if check.date is not None:
        failed = ~_date_exists(check, frame)
        parts = check.date
        cols = parts.columns

        def detail(row: pd.Series) -> str:
            text = f"{_plain(row[parts.year])}-{_plain(row[parts.month])}-{_plain(row[parts.day])}"
            if parts.time is not None:
                text += f" {_plain(row[parts.time])}"
                if parts.timezone is not None:
                    text += f" in {parts.timezone}"
            return f"{text} ({', '.join(cols)}) is not a date and time that exists"

    elif check.requires is not None:
        present = frame[check.requires].notna()
        if check.when is not None:
            failed = frame[check.when].notna() & ~present.all(axis=1)
        else:
            failed = present.any(axis=1) & ~present.all(axis=1)
        cols = [*([check.when] if check.when else []), *check.requires]

        def detail(row: pd.Series) -> str:
            missing = [c for c in check.requires or [] if pd.isna(row[c])]
            given = [c for c in cols if c not in missing]
            return f"{', '.join(missing)} missing while {', '.join(given)} present"

    elif check.not_before is not None:
        column, other = str(check.column), check.not_before
        a, b = frame[column], frame[other]
        failed = (a < b).fillna(False).astype(bool)
        cols = [column, other]

        def detail(row: pd.Series) -> str:
            return f"{column}={_plain(row[column])} is before {other}={_plain(row[other])}"

    elif check.unique_within is not None:
        cols = check.unique_within
        failed = frame.duplicated(cols, keep="first")

        def detail(row: pd.Series) -> str:
            shown = ", ".join(f"{c}={_plain(row[c])}" for c in cols)
            return f"{shown} repeats an earlier row"

    else:
        failed = _function_mask(check, frame, root)
        cols = []

        def detail(row: pd.Series) -> str:
            return "the row fails the project's function"

    failed = pd.Series(np.asarray(failed, dtype=bool), index=frame.index)
    rows = frame.loc[failed, cols] if cols else frame.loc[failed, []]
    # Python per failing row only (a detail message each); passing rows stay vectorised.
    return [(int(cast(int, idx)), _with_name(check, detail(row))) for idx, row in rows.iterrows()]


def _date_exists(check: CheckSpec, frame: pd.DataFrame) -> pd.Series:
    """True where the composed date (and time) exists, or a part is missing."""
    parts = check.date
    assert parts is not None
    values = {
        k: pd.to_numeric(frame[c], errors="coerce").astype("float64")
        for k, c in (("year", parts.year), ("month", parts.month), ("day", parts.day))
    }
    missing = pd.concat(values, axis=1).isna().any(axis=1)
    stamps = pd.to_datetime(pd.DataFrame(values).fillna(1), errors="coerce")
    if parts.time is not None:
        hhmm = pd.to_numeric(frame[parts.time], errors="coerce").astype("float64")
        missing |= hhmm.isna()
        clock = hhmm.fillna(0)
        valid_clock = _is_hhmm(clock)
        minutes = (clock // 100) * 60 + clock % 100
        stamps = stamps + pd.to_timedelta(minutes.where(valid_clock), unit="min")
        if parts.timezone is not None:
            ambiguous = np.ones(len(stamps), dtype=bool)  # a repeated hour exists (twice)
            stamps = stamps.dt.tz_localize(parts.timezone, ambiguous=ambiguous, nonexistent="NaT")
    ok: pd.Series = missing | stamps.notna()
    return ok


def _function_mask(check: CheckSpec, frame: pd.DataFrame, root: Path | None) -> pd.Series:
    from noria.project_code import resolve_function

    owner = f"checks {check.name!r}"
    if root is None:
        raise ConfigError(f"{owner}: a function check needs the project folder", fix="pass root= to validate_table")
    fn = resolve_function(root, str(check.function), owner)
    try:
        result = fn(frame.copy())
    except Exception as exc:
        raise ConfigError(
            f"{owner}: {check.function} raised {type(exc).__name__}: {exc}",
            fix=f"fix {check.function} (it gets the typed columns of the table, one row per source row)",
        ) from exc
    if not isinstance(result, pd.Series) or len(result) != len(frame) or not (pd.api.types.is_bool_dtype(result.dtype)):
        got = type(result).__name__
        if isinstance(result, pd.Series):
            got = f"a {result.dtype} Series of {len(result)} rows"
        raise ConfigError(
            f"{owner}: {check.function} returned {got}, not a boolean Series of {len(frame)} rows",
            fix="return frame-aligned booleans: True where the row passes",
        )
    return ~result.fillna(True).astype(bool).set_axis(frame.index)  # missing: no verdict, passes
