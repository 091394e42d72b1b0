"""noria.periods: one month rule (YYYY-MM), asked by every place that reads a month, each naming its field."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError as PydanticValidationError

from noria import periods
from noria.data.ingest import _check_month
from noria.data.snapshots import month_dirs
from noria.errors import ConfigError
from noria.periods import MonthRange
from noria.training.split import time_window
from noria.windows import label_problem

MONTHS = ["2013-01", "2013-12", "1999-07", "0001-01"]
NOT_MONTHS = ["2013-13", "2013-00", "2013-1", "13-01", "2013/01", "2013-01-01", "2013-W01", "July", " 2013-01", ""]


@pytest.mark.parametrize("text", MONTHS)
def test_a_month_is_a_month_everywhere(text: str) -> None:
    assert periods.month_problem(text) is None and periods.is_month(text)
    assert label_problem("month", text) is None  # the month window unit
    assert MonthRange(start=text, end=text).start == text
    assert _check_month(text, "--from") == text


@pytest.mark.parametrize("text", NOT_MONTHS)
def test_a_non_month_is_refused_everywhere_naming_the_field(text: str) -> None:
    assert periods.month_problem(text) == f"expected a month as YYYY-MM, got {text!r}"
    assert not periods.is_month(text)
    assert label_problem("month", text) is not None
    with pytest.raises(PydanticValidationError) as caught:
        MonthRange.model_validate({"from": text, "to": "2099-01"})
    assert caught.value.errors()[0]["loc"] == ("from",)  # the field is named
    assert text == "" or "expected a month as YYYY-MM" in str(caught.value)  # '' is refused as empty first
    with pytest.raises(ConfigError, match=f"^--from {text!r} is not a month"):
        _check_month(text, "--from")


def test_non_text_is_no_month() -> None:
    assert periods.month_problem(201307) == "expected a month as YYYY-MM, got 201307"
    assert not periods.is_month(None)


def test_training_periods_take_months_and_days_by_the_same_rules() -> None:
    window = time_window(("2013-01", "2013-02"), "train")
    assert (window.start, window.end) == (pd.Timestamp("2013-01-01", tz="UTC"), pd.Timestamp("2013-03-01", tz="UTC"))
    window = time_window(("2013-01-30", "2013-01-31"), "test")
    assert window.end == pd.Timestamp("2013-02-01", tz="UTC")
    for bad in ("2013-13", "2013-02-30", "2013-1"):
        with pytest.raises(ConfigError, match=rf"^train\.to = {bad!r} is not a month \(YYYY-MM\) or a day"):
            time_window(("2013-01", bad), "train")


def test_partition_folders_are_months_by_the_same_rule(tmp_path: Path) -> None:
    for name in ("month=2013-07", "month=2013-13", "month=2013-7", "2013-08", "month=2013-09"):
        (tmp_path / "t" / name).mkdir(parents=True)
    (tmp_path / "t" / "month=2013-10").write_text("a file, not a partition")
    assert sorted(month_dirs(tmp_path, "t")) == ["2013-07", "2013-09"]


@pytest.mark.parametrize(("key", "month"), [(201307, "2013-07"), (199912, "1999-12"), (100, "0001-00")])
def test_a_partition_key_is_written_as_its_month(key: int, month: str) -> None:
    assert periods.month_of_key(key) == month
