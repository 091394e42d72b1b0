"""Read raw source tables as text, so that no value is lost before validation decides.

Every column is read as strings (``NA`` and empty cells become missing); typing happens in
:mod:`noria.data.validate`, where a value that does not fit its type is quarantined with
its original text rather than silently turned into NaN.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import zipfile
from collections.abc import Iterator
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
    if source.kind == "s3":
        return s3_source_copy(source.path, project.path(S3_SOURCE_CACHE))
    return project.path(source.path)


S3_SOURCE_CACHE = ".noria/source-s3"  # where an s3 source's objects are copied (one folder per bucket)


def s3_source_copy(url: str, cache: Path) -> Path:
    """The objects under ``url`` (an S3 prefix, or one archive's key) as local files, copied now.

    Each object is copied once (same key, same size and ETag as the copy's record: kept), to a
    hidden temporary name first (``noria.atomic``), so a killed copy leaves nothing a later run
    would trust. Returns the local folder (or file, for an archive) standing for ``url``.
    """
    import json

    from noria import atomic, s3

    bucket, prefix = s3.parse_url(url, "data.source.path", example="s3://raw-data/flights")
    endpoint = s3.endpoint_url()
    store = s3.Store(url=url, bucket=bucket, prefix=prefix, endpoint=endpoint, what="the data source",
                     key="data.source.path", access="read")  # fmt: skip
    client = s3.client(endpoint, purpose=f"reading the data source {url}")
    local = cache / bucket / prefix if prefix else cache / bucket
    records_file = cache / bucket / ".objects.json"
    try:
        records: dict[str, str] = json.loads(records_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = {}
    found = 0
    with s3.errors(store, "list and copy the source files"):
        start = f"{prefix}/" if prefix and not prefix.lower().endswith(ARCHIVES) else prefix
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue
                found += 1
                target = cache / bucket / key
                stamp = f"{item['Size']}:{item.get('ETag', '')}"
                if records.get(key) == stamp and target.is_file():
                    continue
                with atomic.temp_path(target) as tmp:
                    client.download_file(bucket, key, str(tmp))
                records[key] = stamp
                atomic.write_json(records_file, records, indent=1)
    if not found:
        raise SourceError(
            f"no source file under {url} (endpoint {endpoint or 'AWS'})",
            fix="upload the raw files there, or fix data.source.path in noria.yaml",
        )
    return local


def is_archive(location: Path) -> bool:
    return location.is_file() and location.name.lower().endswith(ARCHIVES)


@dataclass
class TableReader:
    """A source table opened for reading in chunks: its file, the columns it ignores, and
    :meth:`chunks`, each a frame of the declared columns as text whose index is the 0-based
    data row number in the file (continuing across chunks)."""

    name: str
    file: Path
    ignored_columns: list[str]
    _frames: Iterator[pd.DataFrame]
    _renames: dict[str, str]
    _closers: list[Any]
    rows: int = 0  # data rows read so far

    def chunks(self, *, text: bool = True) -> Iterator[pd.DataFrame]:
        """The chunks in file order; ``text=False`` leaves missing values as the reader gives
        them (NaN or NA, not None), for a caller that converts only the rows it keeps."""
        try:
            for raw in self._frames:
                frame = raw[list(self._renames)].rename(columns=self._renames)
                if text:
                    frame = as_text(frame)
                frame.index = pd.RangeIndex(self.rows, self.rows + len(frame))
                self.rows += len(frame)
                if len(frame):
                    yield frame
        except _READ_ERRORS as exc:
            raise _unreadable(self.name, self.file, exc) from None
        finally:
            for closer in reversed(self._closers):
                closer.close()
        if not self.rows:
            raise SourceError(
                f"table {self.name!r}: source file {self.file} has no data rows", fix="re-export the source file"
            )


_READ_ERRORS: tuple[type[BaseException], ...] = (
    pd.errors.ParserError,
    pd.errors.EmptyDataError,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    OSError,
    ValueError,  # pyarrow.ArrowInvalid is a ValueError
    EOFError,
)


def _unreadable(name: str, file: Path, exc: BaseException) -> SourceError:
    problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SourceError(
        f"table {name!r}: cannot read {file}: {problem}",
        fix="check the file is a valid CSV (optionally .zip/.gz/.bz2/.xz) or Parquet file",
    )


def open_table(name: str, spec: TableSpec, folder: Path, *, chunk_rows: int = 100_000) -> TableReader:
    """Open one source table for reading ``chunk_rows`` rows at a time, checking it is there,
    non-empty and has its declared columns.

    ``folder`` is a folder holding the table's file, or an archive holding it as a member.
    Columns declared with ``source_column`` are renamed to their declared names. Memory is
    one chunk at a time whatever the file's size (a Parquet member of an archive, which needs
    random access, is read into memory).
    """
    file = folder / spec.file  # shown in messages and lineage (archive/member for an archive)
    closers: list[Any] = []
    try:
        frames = _open_frames(name, spec, folder, file, chunk_rows, closers)
        first = next(frames)
    except SourceError:
        _close(closers)
        raise
    except StopIteration:
        _close(closers)
        raise SourceError(
            f"table {name!r}: source file {file} has no data rows", fix="re-export the source file"
        ) from None
    except _READ_ERRORS as exc:
        _close(closers)
        raise _unreadable(name, file, exc) from None
    names = [str(c) for c in first.columns]
    wanted = {spec.file_column(c): c for c in spec.columns}
    missing = [f for f in wanted if f not in names]
    if missing:
        _close(closers)
        raise SourceError(
            f"table {name!r}: {file.name} lacks declared column(s) {', '.join(missing)} (it has: {', '.join(names)})",
            fix=f"fix the source file or the columns (source_column) under data.tables.{name} in noria.yaml",
        )
    ignored = [n for n in names if n not in wanted]
    return TableReader(name, file, ignored, itertools.chain([first], frames), wanted, closers)


def read_table(name: str, spec: TableSpec, folder: Path) -> RawTable:
    """Read one whole source table (see :func:`open_table`; for tables read in one piece)."""
    reader = open_table(name, spec, folder)
    chunks = list(reader.chunks())
    frame = pd.concat(chunks) if len(chunks) > 1 else chunks[0]
    return RawTable(name=name, file=reader.file, frame=frame, ignored_columns=reader.ignored_columns)


def _close(closers: list[Any]) -> None:
    for closer in reversed(closers):
        closer.close()


def _open_frames(
    name: str, spec: TableSpec, folder: Path, file: Path, chunk_rows: int, closers: list[Any]
) -> Iterator[pd.DataFrame]:
    """Frames of text columns, ``chunk_rows`` rows each: a CSV through pandas' chunked C
    reader, a Parquet file batch by batch through pyarrow.

    CSV stays with pandas, read in chunks rather than whole: pyarrow's CSV reader is faster
    but takes an unterminated quote as a value running to the end of the file, silently
    swallowing every row after it, where pandas stops with an error."""
    if is_archive(folder):
        raw, size = _open_member(folder, spec.file, closers)
        if size == 0:
            raise SourceError(f"table {name!r}: {spec.file} in {folder} is empty (0 bytes)", fix="check the archive")
        suffix = Path(spec.file).suffix.lower()
    else:
        if not file.is_file():
            raise SourceError(
                f"table {name!r}: source file {file} does not exist",
                fix=f"put the file there or fix data.tables.{name}.file / data.source in noria.yaml",
            )
        if file.stat().st_size == 0:
            raise SourceError(f"table {name!r}: source file {file} is empty (0 bytes)", fix="re-export the source file")
        raw, suffix = None, file.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(pa.BufferReader(raw.read()) if raw is not None else str(file))
        closers.append(parquet)
        return (batch.to_pandas().astype("string") for batch in parquet.iter_batches(batch_size=chunk_rows))
    compression: Any = {".gz": "gzip", ".zip": "zip", ".bz2": "bz2", ".xz": "xz"}.get(suffix)
    reader = pd.read_csv(
        raw if raw is not None else file,
        dtype=str,
        keep_default_na=False,
        na_values=NA_VALUES,
        compression=compression if raw is not None else "infer",
        chunksize=chunk_rows,
    )
    closers.append(reader)
    return iter(reader)


def _open_member(archive: Path, member: str, closers: list[Any]) -> tuple[Any, int]:
    """A streaming handle on one member of a zip or tar archive, and the member's size."""
    import tarfile

    try:
        if archive.name.lower().endswith(".zip"):
            zf = zipfile.ZipFile(archive)
            closers.append(zf)
            size = zf.getinfo(member).file_size
            handle: Any = zf.open(member)
        else:
            tf = tarfile.open(archive)  # noqa: SIM115 - closed with the reader (closers)
            closers.append(tf)
            info = tf.getmember(member)
            handle = tf.extractfile(info)
            if handle is None:
                raise KeyError(member)
            size = info.size
    except KeyError:
        raise SourceError(
            f"archive {archive} has no member {member!r}",
            fix="fix the table's file: (a path inside the archive) in noria.yaml",
        ) from None
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise SourceError(f"cannot read archive {archive}: {exc}", fix="check the archive is complete") from None
    closers.append(handle)
    return handle, size
