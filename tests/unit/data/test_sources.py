"""Malformed sources fail with an error naming the file and the problem."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from noria.config import TableSpec
from noria.data.sources import read_table
from noria.errors import SourceError

SPEC = TableSpec.model_validate(
    {
        "file": "t.csv",
        "primary_key": ["k"],
        "columns": {"k": {"type": "int"}, "v": {"type": "str", "nullable": True}},
    }
)


def _spec(file: str) -> TableSpec:
    return SPEC.model_copy(update={"file": file})


def test_reads_all_values_as_text_with_missing_markers(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("k,v,extra\n1,NA,x\n2,,y\n03,hello,z\n")
    raw = read_table("t", SPEC, tmp_path)
    assert list(raw.frame.columns) == ["k", "v"]
    assert raw.ignored_columns == ["extra"]
    assert raw.frame["k"].tolist() == ["1", "2", "03"]  # text kept as written
    assert raw.frame["v"].tolist() == [None, None, "hello"]


def test_zip_and_parquet_sources(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "t.csv.zip", "w") as zf:
        zf.writestr("t.csv", "k,v\n1,a\n")
    assert read_table("t", _spec("t.csv.zip"), tmp_path).frame["v"].tolist() == ["a"]
    import pandas as pd

    pd.DataFrame({"k": [1, 2], "v": ["a", None]}).to_parquet(tmp_path / "t.parquet")
    assert read_table("t", _spec("t.parquet"), tmp_path).frame["k"].tolist() == ["1", "2"]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("t.csv", None, "does not exist"),
        ("t.csv", b"", "is empty (0 bytes)"),
        ("t.csv", b"k,v\n", "has no data rows"),
        ("t.csv", b"k,x\n1,2\n", "lacks declared column(s) v"),
        ("t.csv.zip", b"this is not a zip file", "cannot read"),
        ("t.parquet", b"PAR1garbage", "cannot read"),
        ("t.csv", b'k,v\n1,"unterminated\n', "cannot read"),
    ],
)
def test_malformed_sources(tmp_path: Path, name: str, content: bytes | None, needle: str) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceError) as err:
        read_table("t", _spec(name), tmp_path)
    assert needle in str(err.value)
    assert "table 't'" in str(err.value) and name in str(err.value)
    assert err.value.fix
