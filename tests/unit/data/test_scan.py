"""Streaming ingest (noria.data.scan) gives exactly what validating the whole table gives.

A partitioned table is read in chunks, spilled by month and validated one month at a time;
keys that must be unique across the table are checked across months through hashed spills.
Whatever the chunk size, the accepted rows, the quarantined rows with their reasons and the
counts must equal those of one validation of the whole file's rows of the range.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from noria.config import TableSpec
from noria.data.scan import partition_keys, scan_partitioned
from noria.data.sources import read_table
from noria.data.validate import RULE_COLUMN, validate_table


def _spec(primary_key: list[str], partition: dict[str, str], extra_checks: list[dict[str, object]]) -> TableSpec:
    return TableSpec.model_validate(
        {
            "file": "t.csv",
            "primary_key": primary_key,
            "partition": partition,
            "columns": {
                "id": {"type": "int"},
                "year": {"type": "int"},
                "month": {"type": "int"},
                "team": {"type": "str"},
                "round": {"type": "int"},
                "value": {"type": "float", "nullable": True, "min": 0},
            },
            "checks": extra_checks,
        }
    )


ROWS = [  # id, year, month, team, round, value
    (1, 2013, 1, "a", 1, 1.0),
    (2, 2013, 1, "b", 1, 2.0),
    (3, 2013, 2, "a", 2, 3.0),
    (1, 2013, 2, "c", 3, 4.0),  # id 1 again, another month: a primary-key repeat across months
    (4, 2013, 3, "a", 1, 5.0),  # team a, round 1 again in another month: a unique_within repeat
    (5, 2013, 13, "d", 4, 6.0),  # month 13: no partition, quarantined by whoever reads the file
    (6, 2013, 3, "e", 5, -1.0),  # below the minimum
    (7, 2013, 3, "f", 6, None),
    (2, 2013, 3, "g", 7, 8.0),  # id 2 again, another month
    (8, 2012, 12, "h", 8, 9.0),  # outside the range asked for: counted, not read
    (9, 2013, 1, "i", 9, 10.0),
    (9, 2013, 1, "j", 10, 11.0),  # id 9 again in the same month
    (3, 2014, 1, "k", 11, 12.0),  # id 3 again, outside the range: not read, so no repeat
]


@pytest.mark.parametrize("chunk_rows", [2, 5, 1000])
def test_streamed_months_equal_one_validation_of_the_whole_table(tmp_path: Path, chunk_rows: int) -> None:
    spec = _spec(
        ["id"],
        {"year": "year", "month": "month"},
        [{"name": "one_match_per_round", "unique_within": ["team", "round"]}],
    )
    frame = pd.DataFrame(ROWS, columns=["id", "year", "month", "team", "round", "value"])
    frame.to_csv(tmp_path / "t.csv", index=False)
    scanned = scan_partitioned(
        "t", spec, tmp_path, tmp_path / "work", tmp_path / "out", (201301, 201303), root=None, chunk_rows=chunk_rows
    )

    raw = read_table("t", spec, tmp_path).frame
    keys = partition_keys(raw, spec, raw=True)
    inside = keys.isna() | keys.between(201301, 201303)
    whole = validate_table(spec, raw[inside])

    assert scanned.file_rows == len(ROWS) and scanned.outside_range == 2
    stats = scanned.stats
    assert (stats.read, stats.accepted, stats.quarantined) == (whole.read, len(whole.accepted), len(whole.quarantined))
    assert stats.read == stats.accepted + stats.quarantined == 11
    assert stats.rules == whole.rule_counts

    written = pd.concat(
        [pq.read_table(p).to_pandas() for p in sorted((tmp_path / "out").rglob("*.parquet"))], ignore_index=True
    )
    expected = whole.accepted.sort_values(["year", "month", "id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        written.sort_values(["year", "month", "id"]).reset_index(drop=True), expected, check_dtype=False
    )
    assert scanned.months == ["2013-01", "2013-02", "2013-03"]

    kept = pd.concat([pq.read_table(p).to_pandas() for p in scanned.quarantine], ignore_index=True)
    by_row = dict(zip(kept["_source_row"], kept[RULE_COLUMN], strict=True))
    assert by_row == dict(zip(whole.quarantined["_source_row"], whole.quarantined[RULE_COLUMN], strict=True))
    assert "duplicate primary key (id)" in by_row[5]  # line 5: id 1 of February repeats January's
    assert "team=a, round=1 repeats an earlier row (check one_match_per_round)" in by_row[6]
    assert "duplicate primary key (id)" in by_row[13]  # id 2 of March
    assert "not a month" in by_row[7]
    assert 15 not in by_row  # id 3 of 2014 was not read


def test_keys_that_fix_the_month_are_checked_month_by_month_only(tmp_path: Path) -> None:
    """A primary key holding the partition's columns cannot repeat across months: no hashes."""
    spec = _spec(["year", "month", "id"], {"year": "year", "month": "month"}, [])
    pd.DataFrame(ROWS, columns=["id", "year", "month", "team", "round", "value"]).to_csv(
        tmp_path / "t.csv", index=False
    )
    scanned = scan_partitioned(
        "t", spec, tmp_path, tmp_path / "work", tmp_path / "out", (None, None), root=None, chunk_rows=3
    )
    assert not (tmp_path / "work" / "hashes").exists()
    assert scanned.stats.read == len(ROWS) and scanned.outside_range == 0
    assert scanned.stats.rules == {"duplicate key": 1, "month: not a month": 1, "value: below minimum": 1}
