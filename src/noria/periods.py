"""Periods (``{from: A, to: B}``), shared by config sections.

A :class:`Period` is an inclusive range of window labels (``noria.windows``): months such as
``2013-01``, ISO weeks, days, or a project's own labels such as football seasons. Whether its
labels fit the project's window unit is checked when the whole configuration is loaded, since
the unit is declared in another section. A :class:`MonthRange` always holds months (data
partitions, e.g. ``data.default_range``).

Months (``YYYY-MM``) are recognised in one place: :data:`MONTH` and :func:`month_problem` (the
month unit of ``noria.windows``, ``MonthRange``, ``noria data ingest --from/--to``, training
periods and the ``month=YYYY-MM`` partition folders all ask it), and written from a partition
key (``year * 100 + month``) by :func:`month_of_key`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")  # the one month pattern: YYYY-MM, month 01-12
MONTH_FORMAT = "YYYY-MM, e.g. 2013-07"


def month_problem(value: object) -> str | None:
    """Why ``value`` is not a month ``YYYY-MM`` ("expected a month as YYYY-MM, got '2013-13'"), or None.

    Callers put the field in front (``data.default_range.from``, ``--from``, ``train.to``).
    """
    if isinstance(value, str) and MONTH.match(value):
        return None
    return f"expected a month as YYYY-MM, got {value!r}"


def is_month(value: object) -> bool:
    """Whether ``value`` is a month ``YYYY-MM`` (:func:`month_problem` finds nothing)."""
    return month_problem(value) is None


def month_of_key(key: int) -> str:
    """The month ``YYYY-MM`` of a partition key ``year * 100 + month`` (201307 -> "2013-07")."""
    return f"{key // 100:04d}-{key % 100:02d}"


class Period(BaseModel):
    """An inclusive range of windows, written ``{from: A, to: B}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    # The first window (included).
    start: str = Field(alias="from", min_length=1)
    # The last window (included).
    end: str = Field(alias="to", min_length=1)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        # YAML reads 1999 or 2013-07-01 as a number or a date: keep the label as written
        return str(value) if value is not None and not isinstance(value, str) else value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.start > self.end:
            raise ValueError(f"'from' ({self.start}) is after 'to' ({self.end})")
        return self

    def label(self) -> str:
        return f"{self.start}..{self.end}"


class MonthRange(Period):
    """An inclusive range of months, written ``{from: YYYY-MM, to: YYYY-MM}``."""

    @field_validator("start", "end")
    @classmethod
    def _is_month(cls, value: str) -> str:
        problem = month_problem(value)
        if problem:
            raise ValueError(problem)
        return value
