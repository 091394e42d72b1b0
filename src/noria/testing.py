"""Sample rows for a project's own tests: every declared table, made from its config alone.

A project's functions (feature sources, request views, derived features, data checks, the
prediction time) are tested without its data: :func:`sample_table` builds rows that follow each
column's declared type and rules (``min``/``max``, ``allowed``, ``pattern``); nullable columns
are missing in the last row, as real data is. :class:`SampleSnapshot` hands them to feature
code where a data snapshot would. The tests ``noria init`` writes into a new project
(``tests/``) use these, so they keep working as the project's config grows.

    from noria.testing import sample_table, SampleSnapshot
    frame = sample_table(project, "events", rows=12)
"""

from __future__ import annotations

import importlib
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from noria.errors import ConfigError

if TYPE_CHECKING:
    from noria.config import ColumnSpec, Project

__all__ = ["SampleSnapshot", "raw_text", "sample_table", "sample_text"]

BASE_TIME = pd.Timestamp("2024-01-01T00:00:00Z")  # the first sample row's timestamps
_parser: Any = importlib.import_module("re._parser")  # the regex parser of the standard library


def sample_table(project: Project, table: str, rows: int = 12) -> pd.DataFrame:
    """``rows`` typed rows of a declared table: ints int64 (Int64 when nullable), floats, strings,
    timestamps (UTC, one day and one hour apart) and bools; nullable columns are missing in the last row."""
    tables = project.config.data.tables
    if table not in tables:
        raise ConfigError(f"no table {table!r} in data.tables", fix=f"use one of {', '.join(tables) or '(none)'}")
    if rows < 2:
        raise ConfigError(f"rows must be at least 2, got {rows}", fix="ask for 2 or more sample rows")
    out = {
        name: _column(name, spec, rows, f"data.tables.{table}.columns.{name}")
        for name, spec in tables[table].columns.items()
    }
    return pd.DataFrame(out)


def raw_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A typed sample as a source file reads before validation: text, None where missing."""
    out = {}
    for name in frame.columns:
        values = frame[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            text = values.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            text = values.astype(object).map(lambda v: None if v is None or v is pd.NA or _nan(v) else str(v))
        out[name] = text.astype(object).where(values.notna(), None)
    return pd.DataFrame(out, index=frame.index)


class SampleSnapshot:
    """Sample tables where feature code expects a data snapshot (``read(table, columns)``)."""

    id = "sample"

    def __init__(self, project: Project, rows: int = 12) -> None:
        self.project = project
        self.rows = rows

    def read(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        frame = sample_table(self.project, table, self.rows)
        return frame[columns] if columns is not None else frame


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _column(name: str, spec: ColumnSpec, rows: int, owner: str) -> pd.Series:
    n = np.arange(rows)
    if spec.type == "timestamp":
        values: pd.Series = pd.Series(BASE_TIME + pd.to_timedelta(n * 25, unit="h"))
    elif spec.type == "bool":
        values = pd.Series(n % 2 == 0, dtype="boolean" if spec.nullable else bool)
    elif spec.type in ("int", "float"):
        low = spec.min if spec.min is not None else 0.0
        high = spec.max if spec.max is not None else low + 100.0
        if spec.type == "int":
            low, high = math.ceil(low), math.floor(high)
            span = max(high - low + 1, 1)
            values = pd.Series(low + n % span, dtype="Int64" if spec.nullable else "int64")
        else:
            values = pd.Series(low + (high - low) * ((n % 7) + 1) / 8.0, dtype="float64")
    elif spec.allowed:
        values = pd.Series([spec.allowed[i % len(spec.allowed)] for i in n], dtype=object)
    elif spec.pattern:
        values = pd.Series([sample_text(spec.pattern, int(i), owner) for i in n], dtype=object)
    else:
        values = pd.Series([f"{name}-{i}" for i in n], dtype=object)
    if spec.nullable:
        values = values.astype(object) if spec.type in ("str",) else values
        values.iloc[-1] = None if spec.type == "str" else pd.NA if spec.type in ("int", "bool") else np.nan
        if spec.type == "timestamp":
            values = values.astype("datetime64[ns, UTC]")
    return values


def sample_text(pattern: str, i: int = 0, owner: str = "pattern") -> str:
    """A string ``re.search(pattern, ...)`` matches; ``i`` varies it (row ``i`` of a sample)."""
    try:
        text = _render(_parser.parse(pattern), i)
    except (re.error, _UnsupportedError) as exc:
        raise ConfigError(
            f"{owner}: cannot make a sample value for pattern {pattern!r}: {exc}",
            fix="simplify the pattern, or build that column's test rows by hand",
        ) from None
    if not re.search(pattern, text):
        raise ConfigError(
            f"{owner}: the sample value {text!r} does not match pattern {pattern!r}",
            fix="simplify the pattern, or build that column's test rows by hand",
        )
    return text


class _UnsupportedError(Exception):
    pass


def _render(parsed: Any, i: int) -> str:
    c = _parser  # opcode names live in re._constants, re-exported by the parser
    out = []
    for op, av in parsed:
        if op is c.LITERAL:
            out.append(chr(av))
        elif op is c.NOT_LITERAL:
            out.append("a" if av != ord("a") else "b")
        elif op is c.ANY:
            out.append("a")
        elif op is c.IN:
            out.append(_one_of(av, i))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", object())):
            low, high, sub = av
            count = low if low > 0 else (1 if high != 0 else 0)
            if 0 < count < 2 <= high:
                count = 2  # two characters where allowed: enough distinct values for a sample
            chars = _chars(sub)
            if chars:  # one character repeated: row i written in base len(chars), so rows differ
                out.extend(chars[(i // len(chars) ** (count - 1 - k)) % len(chars)] for k in range(count))
            else:
                out.extend(_render(sub, i + k) for k in range(count))
        elif op is c.SUBPATTERN:
            out.append(_render(av[-1], i))
        elif op is c.BRANCH:
            alternatives = av[1]
            out.append(_render(alternatives[i % len(alternatives)], i))
        elif op is c.AT:
            continue
        elif op is c.CATEGORY:
            out.append(_category(av, i))
        else:
            raise _UnsupportedError(f"{op} is not supported")
    return "".join(out)


def _chars(parsed: Any) -> str:
    """The characters one parsed item can be (a literal or a set without negation), "" otherwise."""
    c = _parser
    items = list(parsed)
    if len(items) != 1:
        return ""
    op, av = items[0]
    if op is c.LITERAL:
        return chr(av)
    if op is not c.IN or any(o is c.NEGATE for o, _ in av):
        return ""
    out = []
    for o, a in av:
        if o is c.LITERAL:
            out.append(chr(a))
        elif o is c.RANGE:
            out.extend(chr(x) for x in range(a[0], min(a[1], a[0] + 35) + 1))
        elif o is c.CATEGORY:
            out.extend(_category(a, k) for k in range(10))
        else:
            return ""
    return "".join(dict.fromkeys(out))


def _one_of(items: list[tuple[Any, Any]], i: int) -> str:
    c = _parser
    if items and items[0][0] is c.NEGATE:
        banned = _render([(c.IN, items[1:])], 0) if len(items) > 1 else ""
        return next(ch for ch in "aZ0_-" if not re.match(f"[{re.escape(banned)}]", ch)) if banned else "a"
    op, av = items[i % len(items)]
    if op is c.LITERAL:
        return chr(av)
    if op is c.RANGE:
        low, high = av
        return chr(low + i % (high - low + 1))
    if op is c.CATEGORY:
        return _category(av, i)
    raise _UnsupportedError(f"{op} in a character set is not supported")


def _category(category: Any, i: int) -> str:
    name = str(category)
    if "DIGIT" in name and "NOT" not in name:
        return str(i % 10)
    if "SPACE" in name and "NOT" not in name:
        return " "
    return "abcdefghij"[i % 10]
