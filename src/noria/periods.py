"""Month periods (``{from: 2013-01, to: 2013-06}``), shared by config sections."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class Period(BaseModel):
    """An inclusive range of months, written ``{from: YYYY-MM, to: YYYY-MM}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")

    @field_validator("start", "end")
    @classmethod
    def _is_month(cls, value: str) -> str:
        if not MONTH.match(value):
            raise ValueError(f"expected a month as YYYY-MM, got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.start > self.end:
            raise ValueError(f"'from' ({self.start}) is after 'to' ({self.end})")
        return self
