"""Every quarantine rule, on small frames built here, and row accounting."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noria.config import TableSpec
from noria.data.validate import ROW_COLUMN, RULE_COLUMN, schema_hash, validate_table

SPEC = TableSpec.model_validate(
    {
        "file": "f.csv",
        "primary_key": ["carrier", "flight"],
        "columns": {
            "carrier": {"type": "str", "pattern": "^[A-Z0-9]{2}$"},
            "flight": {"type": "int", "min": 1},
            "origin": {"type": "str", "allowed": ["EWR", "JFK", "LGA"]},
            "distance": {"type": "float", "min": 1},
            "dep_delay": {"type": "float", "nullable": True},
            "time_hour": {"type": "timestamp"},
        },
    }
)

GOOD = {
    "carrier": "UA",
    "flight": "1",
    "origin": "EWR",
    "distance": "100",
    "dep_delay": "5",
    "time_hour": "2013-01-01T10:00:00Z",
}


def _frame(*overrides: dict[str, str | None]) -> pd.DataFrame:
    rows = [GOOD | {"flight": str(i + 1)} | o for i, o in enumerate(overrides)]
    return pd.DataFrame(rows, dtype=object)


def _reasons(raw: pd.DataFrame) -> list[str]:
    return list(validate_table(SPEC, raw).quarantined[RULE_COLUMN])


def test_clean_rows_are_accepted_and_typed() -> None:
    result = validate_table(SPEC, _frame({}, {"dep_delay": None}))
    assert len(result.accepted) == 2 and result.quarantined.empty
    assert str(result.accepted["flight"].dtype) == "Int64"
    assert str(result.accepted["time_hour"].dtype) == "datetime64[ns, UTC]"
    assert result.accepted["dep_delay"].isna().sum() == 1


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"flight": "abc"}, "flight='abc' is not a valid int"),
        ({"flight": "1.5"}, "flight='1.5' is not a valid int"),
        ({"distance": "far"}, "distance='far' is not a valid float"),
        ({"time_hour": "yesterday"}, "time_hour='yesterday' is not a valid timestamp"),
        ({"distance": "-5"}, "distance=-5.0 is below the minimum 1"),
        ({"carrier": None}, "missing primary-key value in carrier"),
        ({"origin": None}, "missing required value in origin"),
        ({"origin": "SFO"}, "origin='SFO' is not one of the allowed values"),
        ({"carrier": "United"}, "carrier='United' does not match ^[A-Z0-9]{2}$"),
    ],
)
def test_each_rule_quarantines_with_its_reason(override: dict[str, str | None], expected: str) -> None:
    result = validate_table(SPEC, _frame({}, override))
    assert len(result.accepted) == 1
    assert list(result.quarantined[RULE_COLUMN]) == [expected]
    # the quarantined row keeps its original text and its line in the source file
    assert result.quarantined.loc[0, ROW_COLUMN] == 3
    for column, value in override.items():
        assert result.quarantined.loc[0, column] == value


def test_duplicate_primary_key_keeps_the_first() -> None:
    raw = pd.DataFrame([GOOD, GOOD | {"distance": "200"}, GOOD | {"flight": "2"}], dtype=object)
    result = validate_table(SPEC, raw)
    assert len(result.accepted) == 2
    assert _reasons(raw) == ["duplicate primary key (carrier, flight)"]
    assert result.quarantined.loc[0, "distance"] == "200"


def test_a_row_breaking_several_rules_lists_them_all() -> None:
    reasons = _reasons(_frame({"distance": "0", "origin": "XXX", "flight": "nope"}))
    assert set(reasons[0].split("; ")) == {
        "flight='nope' is not a valid int",
        "origin='XXX' is not one of the allowed values",
        "distance=0.0 is below the minimum 1",
    }


def test_rule_counts_summarise_by_rule() -> None:
    result = validate_table(SPEC, _frame({"distance": "-1"}, {"distance": "-2"}, {"flight": "x"}))
    assert result.rule_counts == {"distance: below minimum": 2, "flight: wrong type": 1}


def test_schema_hash_changes_with_the_schema() -> None:
    changed = SPEC.model_copy(deep=True)
    changed.columns["distance"].min = 0
    assert schema_hash(SPEC) != schema_hash(changed)
    assert schema_hash(SPEC) == schema_hash(SPEC.model_copy(deep=True))


cell = st.one_of(st.none(), st.sampled_from(["", "1", "-4", "x", "2.5", "EWR", "UA", "2013-01-01T10:00:00Z", "999"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries(dict.fromkeys(SPEC.columns, cell)), min_size=1, max_size=25))
def test_row_accounting_always_holds(rows: list[dict[str, str | None]]) -> None:
    raw = pd.DataFrame(rows, dtype=object, columns=list(SPEC.columns))
    raw = raw.where(raw.notna() & (raw != ""), None)
    result = validate_table(SPEC, raw)
    assert len(result.accepted) + len(result.quarantined) == len(raw)
    assert result.read == len(raw)
    assert result.quarantined[RULE_COLUMN].str.len().gt(0).all()
    # nothing accepted breaks a rule: re-validating the accepted rows quarantines none
    if len(result.accepted):
        again = result.accepted.astype(object).where(result.accepted.notna(), None)
        again = again.apply(
            lambda s: s.map(lambda v: v if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v)))
        )
        assert validate_table(SPEC, again).quarantined.empty


@pytest.mark.parametrize(
    "values",
    [
        ["1", "2", "1", None, "abc", " 12", "1e3", "-0", "2.5", "2.5"],
        ["7", "7", "9007199254740993"],  # no missing value: int64 kept, exactly
        [None, None],
        ["x", None],
        [],
    ],
)
def test_parse_numbers_equals_to_numeric(values: list[str | None]) -> None:
    """Typing parses each distinct text once; the result must be pandas' own, value and dtype."""
    from noria.data.validate import parse_numbers

    raw = pd.Series(values, dtype=object)
    pd.testing.assert_series_equal(parse_numbers(raw), pd.to_numeric(raw, errors="coerce"))
