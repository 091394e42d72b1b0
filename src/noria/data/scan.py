"""A partitioned table ingested in bounded memory, one month at a time.

The source file is read in chunks (:func:`noria.data.sources.open_table`). Each chunk's rows
of the months asked for, and every row whose month cannot be read (month 13, a timestamp
that does not parse), are spilled as text to a bucket per month in the staging folder; the
other rows are only counted. Then each bucket is validated on its own, its accepted rows
written as the month's partition and its quarantined rows kept beside it. Memory holds one
chunk or one month, whatever the size of the file.

Validating a month on its own is exact for every rule but the keys that must be unique
across the table (the primary key, ``unique_within`` checks) when their columns do not fix
the month: a repeat can then sit in another month. For those, each bucket's key hashes are
spilled too, DuckDB finds the hashes seen more than once (on disk, in bounded memory), the
rows behind them are compared by value, and the months holding a later repeat are validated
again with that reason added, so the result is the one validating the whole table gives:
the first row in file order is kept, every later one quarantined.
"""

from __future__ import annotations

import functools
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from noria import atomic
from noria.data.quality import TableStats
from noria.periods import month_of_key

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import TableSpec
    from noria.data.validate import ValidatedTable

ROW = "_row"  # the spilled rows' source row number (0-based data row)
INVALID = "invalid"  # the bucket of rows whose month cannot be read


@dataclass
class ScannedTable:
    """What streaming one partitioned table gave: the accounting and where the parts are."""

    file: Path
    ignored_columns: list[str]
    file_rows: int
    outside_range: int
    stats: TableStats
    months: list[str]  # months written into the target folder
    quarantine: list[Path] = field(default_factory=list)  # per-bucket quarantined rows (Parquet, text)


@dataclass
class _Group:
    """Columns whose values must not repeat across the table: the primary key or a check's."""

    check: str | None  # None: the primary key
    columns: list[str]


def scan_partitioned(
    name: str,
    spec: TableSpec,
    folder: Path,
    work: Path,
    target: Path,
    month_range: tuple[int | None, int | None],
    *,
    root: Path | None,
    chunk_rows: int,
    on_rows: Callable[[int], None] | None = None,
) -> ScannedTable:
    """Stream table ``name`` into month partitions under ``target``, spilling in ``work``.

    ``month_range``: the first and last ``year * 100 + month`` asked for (None: open).
    """
    from noria.data.sources import open_table

    reader = open_table(name, spec, folder, chunk_rows=chunk_rows)
    spill = work / "spill"
    outside = 0
    buckets: set[str] = set()
    for chunk_no, chunk in enumerate(reader.chunks(text=False)):  # spilled as text by pyarrow
        keys = _keys(chunk, spec)
        inside = keys.isna()
        lo, hi = month_range
        valid = keys.notna()
        in_range = valid.copy()
        if lo is not None:
            in_range &= keys >= lo
        if hi is not None:
            in_range &= keys <= hi
        outside += int((valid & ~in_range).sum())
        inside |= in_range
        kept = chunk[inside.to_numpy()]
        codes = keys[inside.to_numpy()].fillna(-1).astype("int64").to_numpy()  # -1: no month
        for code, rows in kept.groupby(codes, sort=False):
            label = _bucket(int(cast(int, code)))
            write_text(rows, spill / label / f"{chunk_no:06d}.parquet")
            buckets.add(label)
        if on_rows is not None:
            on_rows(reader.rows)
        del chunk, kept
        release_memory()

    groups = _global_groups(spec)
    parts: dict[str, TableStats] = {}

    def validate(bucket: str, with_groups: list[_Group], extra: dict[int, list[str]] | None = None) -> None:
        """Validate one bucket and write its month and quarantined rows (again, if re-validated)."""
        result, parts[bucket] = _validate_bucket(spec, spill / bucket, bucket, with_groups, work, root, extra)
        month = target / f"month={bucket}"
        if len(result.accepted) and bucket != INVALID:
            _write_month(result.accepted, spec, month / "part-0.parquet")
        else:
            shutil.rmtree(month, ignore_errors=True)
        kept = work / "quarantine" / f"{bucket}.parquet"
        if len(result.quarantined):
            write_text(result.quarantined, kept)
        else:
            kept.unlink(missing_ok=True)

    order = sorted(buckets, key=lambda b: (b == INVALID, b))
    for bucket in order:
        validate(bucket, groups)
        release_memory()
    if groups:
        for bucket, extra in sorted(_repeats(spec, groups, work, spill).items()):
            validate(bucket, [], extra)

    stats = TableStats()
    for bucket in order:
        stats = stats + parts[bucket]
    months = [b for b in order if b != INVALID and parts[b].accepted]
    quarantine = [q for b in order if (q := work / "quarantine" / f"{b}.parquet").is_file()]
    shutil.rmtree(spill, ignore_errors=True)
    return ScannedTable(
        file=reader.file,
        ignored_columns=reader.ignored_columns,
        file_rows=reader.rows,
        outside_range=outside,
        stats=stats,
        months=months,
        quarantine=quarantine,
    )


def release_memory() -> None:
    """Hand freed memory back to the system: Arrow's pool, then glibc's heap (``malloc_trim``).

    Each month is validated in pandas and written by Arrow, and the freed blocks of one month do
    not fit the next one's exactly: without this the resident memory crept up month after month
    (the 10-year ingest: about 70 MB over 120 months, peak 445 MB; with it flat, peak 411 MB).
    The same held for the chunks read before validation: 40 MB more per 100,000-row chunk of the
    weather table (peak 430 MB at N=10); released after each chunk, the peak is 355-398 MB.
    Python has no portable call for it, hence ctypes; elsewhere than glibc it does nothing.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None elsewhere (musl, macOS): nothing to trim by hand there."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _keys(chunk: pd.DataFrame, spec: TableSpec) -> pd.Series:
    return partition_keys(chunk, spec, raw=True)


def _bucket(key: int) -> str:
    return INVALID if key < 0 else month_of_key(key)


def write_text(frame: pd.DataFrame, path: Path) -> None:
    """Rows as text (the index, the source row, as :data:`ROW`), every column a string."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from noria.data.validate import ROW_COLUMN

    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame.reset_index(names=ROW) if ROW not in frame.columns and ROW_COLUMN not in frame.columns else frame
    schema = pa.schema(
        [(str(c), pa.int64() if c in (ROW, ROW_COLUMN) else pa.string()) for c in out.columns],
    )
    # Uncompressed: spills are read back once, and compressing them costs more than the disk.
    pq.write_table(pa.Table.from_pandas(out, schema=schema, preserve_index=False), path, compression="none")


def _read_text(folder: Path) -> pd.DataFrame:
    """A bucket's spilled rows, in file order, indexed by source row, as text (None missing)."""
    import pyarrow.parquet as pq

    files = sorted(folder.glob("*.parquet"))
    frame: pd.DataFrame = pq.read_table(files if len(files) > 1 else files[0]).to_pandas()
    rows = frame.pop(ROW).to_numpy()
    frame.index = rows
    return frame  # Arrow's strings come as str and None already: as_text's form


def _validate_bucket(
    spec: TableSpec,
    folder: Path,
    bucket: str,
    groups: list[_Group],
    work: Path,
    root: Path | None,
    extra: dict[int, list[str]] | None = None,
) -> tuple[ValidatedTable, TableStats]:
    from noria.data.validate import validate_table

    raw = _read_text(folder)
    result = validate_table(spec, raw, root, extra)
    for index, group in enumerate(groups):
        _write_hashes(raw, spec, group, work / "hashes" / str(index) / f"{bucket}.parquet")
    month = None if bucket == INVALID else int(bucket[:4]) * 100 + int(bucket[5:])
    if month is not None and len(result.accepted):
        written = partition_keys(result.accepted, spec)
        if not bool((written == month).all()):  # the typed month must be the bucket's
            raise AssertionError(f"rows of bucket {bucket} have another month once typed")
    return result, TableStats.of(result, month)


def _global_groups(spec: TableSpec) -> list[_Group]:
    """The unique keys a month cannot check alone: their columns do not fix the partition."""
    part = spec.partition
    assert part is not None

    def local(columns: list[str]) -> bool:
        if part.timestamp is not None:
            return part.timestamp in columns
        return str(part.year) in columns and str(part.month) in columns

    groups = [_Group(None, list(spec.primary_key))] if spec.primary_key else []
    groups += [_Group(c.name, list(c.unique_within)) for c in spec.checks if c.unique_within is not None]
    return [g for g in groups if not local(g.columns)]


def _typed(raw: pd.DataFrame, spec: TableSpec, columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    from noria.data.validate import coerce_column

    return pd.DataFrame({c: coerce_column(raw[c], spec.columns[c]) for c in columns}, index=raw.index)


def _write_hashes(raw: pd.DataFrame, spec: TableSpec, group: _Group, path: Path) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    hashes = pd.util.hash_pandas_object(_typed(raw, spec, group.columns), index=False).to_numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"h": pa.array(hashes, pa.uint64()), "row": pa.array(raw.index.to_numpy(), pa.int64())})
    pq.write_table(table, path)


def _repeats(spec: TableSpec, groups: list[_Group], work: Path, spill: Path) -> dict[str, dict[int, list[str]]]:
    """Rows whose unique key repeats an earlier row of another month: bucket -> row -> reasons."""
    import duckdb

    found: dict[str, dict[int, list[str]]] = {}
    con = duckdb.connect()
    try:
        # Bounded memory: DuckDB spills its aggregation to disk beyond the limit. One thread: the
        # hashes are 16 bytes a row, and with 512 MB and a thread per core this check was the
        # ingest's highest point on 30 years of weather (464 MB); it is not any more.
        con.execute("SET memory_limit = '256MB'")
        con.execute("SET threads = 1")
        spill_dir = str(work / "duckdb").replace("'", "''")
        con.execute(f"SET temp_directory = '{spill_dir}'")
        for index, group in enumerate(groups):
            pattern = str(work / "hashes" / str(index) / "*.parquet")
            rows = con.execute(
                "WITH t AS (SELECT h, row, regexp_extract(filename, '([^/]+)\\.parquet$', 1) AS bucket "
                "FROM read_parquet(?, filename = true)) "
                "SELECT h, row, bucket FROM t "
                "WHERE h IN (SELECT h FROM t GROUP BY h HAVING count(DISTINCT bucket) > 1) "
                "ORDER BY h, row",
                [pattern],
            ).fetchall()
            for (bucket, row), reason in _confirmed(spec, group, rows, spill):
                found.setdefault(bucket, {}).setdefault(row, []).append(reason)
    finally:
        con.close()
    return found


def _confirmed(
    spec: TableSpec, group: _Group, rows: list[tuple[int, int, str]], spill: Path
) -> Iterator[tuple[tuple[str, int], str]]:
    """Of rows sharing a hash, each one whose key values equal an earlier row's (in another
    month), with its reason: hashes can collide, values cannot."""
    from noria.data.validate import duplicate_reason

    if not rows:
        return
    wanted: dict[str, set[int]] = {}
    for _, row, bucket in rows:
        wanted.setdefault(bucket, set()).add(row)
    values: dict[int, tuple[Any, ...]] = {}
    for bucket, numbers in wanted.items():
        raw = _read_text(spill / bucket)
        typed = _typed(raw.loc[raw.index.isin(list(numbers))], spec, group.columns)
        for row, key in zip(typed.index, typed.itertuples(index=False, name=None), strict=True):
            values[int(row)] = tuple(None if v is None or v != v else v for v in key)  # NaN/NA compare equal
    seen: dict[tuple[Any, ...], str] = {}  # key -> the bucket of its first row
    for _, row, bucket in rows:  # by hash, then source row: the first row of a key comes first
        key = values[row]
        first = seen.setdefault(key, bucket)
        if first != bucket:  # a repeat in the first row's own month is that month's validation's
            yield (bucket, row), duplicate_reason(spec, group.check, dict(zip(group.columns, key, strict=True)))


def _write_month(accepted: pd.DataFrame, spec: TableSpec, path: Path) -> None:
    write_parquet(accepted.sort_values(spec.primary_key, kind="stable").reset_index(drop=True), path)


def new_work_dir(parent: Path, name: str) -> Path:
    path = parent / f".scan-{name}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


def parquet_batches(files: list[str] | list[Path], columns: list[str] | None, size: int) -> Iterator[Any]:
    """Record batches of at most ``size`` rows of Parquet ``files``, file by file in the order given.

    Each file is read by ``ParquetFile.iter_batches`` without pre-buffering, through a 1 MiB
    buffered stream: memory stays flat whatever the row groups' size. A ``pyarrow.dataset``
    scan (or a pre-buffered ``ParquetFile``) reads and decodes whole row groups, with
    read-ahead: on 3.4 million rows x 30 float columns in 1 Mi-row groups, scanning every batch
    peaked at 1.58 GB (dataset) and 1.13 GB (pre-buffered) against 0.34 GB this way.
    """
    import pyarrow.parquet as pq

    for name in files:
        parquet = pq.ParquetFile(str(name), pre_buffer=False, buffer_size=1 << 20)
        try:
            yield from parquet.iter_batches(batch_size=size, columns=columns)
        finally:
            parquet.close()


def partition_keys(frame: pd.DataFrame, spec: TableSpec, *, raw: bool = False) -> pd.Series:
    """Each row's partition month as ``year * 100 + month`` (NaN where it cannot be read).

    ``raw``: the frame still holds the source text (before validation). A timestamp partition
    is the UTC month of the timestamp.
    """

    part = spec.partition
    assert part is not None
    if part.timestamp is not None:
        values = frame[part.timestamp]
        if raw:
            from noria.data.validate import coerce_column

            values = coerce_column(values, spec.columns[part.timestamp])
        stamps = values.dt.tz_convert("UTC")
        keys: pd.Series = (stamps.dt.year * 100 + stamps.dt.month).astype("float64")
        return keys
    from noria.data.validate import parse_numbers

    year = parse_numbers(frame[str(part.year)])
    month = parse_numbers(frame[str(part.month)])
    month = month.where(month.between(1, 12) & (month % 1 == 0))  # month 13 is no partition
    return (year * 100 + month).astype("float64")


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Atomic, deterministic Parquet (same rows -> same bytes -> same DVC hash)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    with atomic.temp_path(path) as tmp:
        # Microseconds: Spark and other engines reject nanosecond Parquet timestamps.
        pq.write_table(table, tmp, compression="zstd", coerce_timestamps="us", allow_truncated_timestamps=False)
