"""Training sets larger than memory: a build's intermediate files, and Parquet read and written in chunks.

A build stages its entity rows as Parquet, lets the join engine (DuckDB or Spark) write each
view's joined rows to Parquet itself, sorted by entity row, then walks all of them front to back
one chunk at a time and writes the training set row group by row group: outside the engine its
memory is bounded by ``features.build_chunk_rows``, not by the number of rows.

The intermediate files live in a folder of their own under ``features.repo_dir/build``, removed
when the build ends; a folder a killed build left behind is removed by the next build on the
same machine (its name holds the host and the process id). Nothing there is ever read again.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from noria.errors import ExternalToolError
from noria.features.definitions import Definitions

STAGING = "build"


@contextmanager
def staging_dir(defs: Definitions) -> Iterator[Path]:
    """A new, empty folder for one build's intermediate files, removed afterwards."""
    root = defs.repo_dir / STAGING
    root.mkdir(parents=True, exist_ok=True)
    _remove_orphans(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{_owner()}-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _remove_orphans(root: Path) -> None:
    """Remove the folders of builds on this machine whose process is gone (killed, crashed)."""
    pattern = re.compile(rf"{re.escape(socket.gethostname())}-(\d+)-.+")
    for child in root.iterdir():
        match = pattern.fullmatch(child.name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FrameWriter:
    """pandas frames appended to one Parquet file, a row group each, all with the first frame's schema.

    The file holds what ``frame.to_parquet(path, index=False)`` of all frames concatenated would
    hold; a column with no value at all in the first frame (Arrow's null type) is written as text,
    the only type a column that pandas holds as objects can take here.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self._schema is None:
            schema = pa.Schema.from_pandas(frame, preserve_index=False)
            for i, field in enumerate(schema):
                if pa.types.is_null(field.type):
                    schema = schema.set(i, field.with_type(pa.string()))
            self._schema = schema
            self._writer = pq.ParquetWriter(self.path, schema)
        assert self._writer is not None
        self._writer.write_table(pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False))
        self.rows += len(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def frames(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """A Parquet file written by :class:`FrameWriter`, back as frames of at most ``rows`` rows."""
    from noria.data.scan import parquet_batches

    for batch in parquet_batches([path], None, rows):
        yield batch.to_pandas()


def joined_batches(path: Path, rows: int) -> Iterator[pa.RecordBatch]:
    """A joined view's rows in entity-row order, at most ``rows`` per batch.

    ``path`` is one Parquet file sorted by ``noria_row`` (as DuckDB writes it), or a folder of part
    files each sorted by ``noria_row`` (as Spark writes it: one per task, no global sort), merged
    here: entity rows ``a .. a + rows`` are the leading rows of every part below ``a + rows``, so
    each step holds about one chunk of rows, whatever the number of rows or parts.
    """
    from noria.data.scan import parquet_batches

    if not path.is_dir():
        yield from parquet_batches([path], None, rows)
        return
    parts = sorted(path.glob("*.parquet"))
    step = max(rows // max(len(parts), 1), 1024)
    sources = [parquet_batches([part], None, step) for part in parts]
    pending: list[pa.Table | None] = [pa.table({}) for _ in parts]  # None: the part is read to its end
    bound = 0
    while any(p is not None for p in pending):
        bound += rows
        taken = []
        for i, source in enumerate(sources):
            table = pending[i]
            while table is not None and (table.num_rows == 0 or _last_row(table) < bound):
                batch = next(source, None)
                if batch is None:
                    taken.append(table)
                    table = None
                    break
                table = pa.concat_tables([table, pa.Table.from_batches([batch])]) if table.num_rows else _table(batch)
            if table is not None:
                cut = int(np.searchsorted(table.column("noria_row").to_numpy(), bound))
                taken.append(table.slice(0, cut))
                table = table.slice(cut)
            pending[i] = table
        merged = pa.concat_tables([t for t in taken if t.num_rows]) if any(t.num_rows for t in taken) else None
        if merged is not None:
            merged = merged.take(pc.sort_indices(merged, sort_keys=[("noria_row", "ascending")]))
            yield from merged.to_batches(max_chunksize=rows)


def _last_row(table: pa.Table) -> int:
    return int(table.column("noria_row")[-1].as_py())


def _table(batch: pa.RecordBatch) -> pa.Table:
    return pa.Table.from_batches([batch])


def joined_rows(path: Path) -> pa.Table:
    """A joined view's rows, read whole (held in memory: for small joins only)."""
    return pa.Table.from_batches(list(joined_batches(path, 1 << 20)))


def joined_count_error(view: str, got: int, wanted: int) -> ExternalToolError:
    """The error when a join engine did not give exactly one row per entity row."""
    return ExternalToolError(
        f"feature view {view!r}: the join returned {got} rows for {wanted} entity rows",
        fix="report this as a Noria bug (with the engine, its version and the feature view)",
    )


class JoinedRows:
    """A joined view's rows (``noria_row`` first) read front to back, ``take(n)`` rows at a time.

    Every row taken is checked to be the next entity row (``noria_row`` 0, 1, 2, ... of ``total``),
    so a join that lost, repeated or reordered a row stops the build instead of shifting values.
    """

    def __init__(self, view: str, path: Path, total: int, batch_rows: int) -> None:
        self.view, self.total = view, total
        self._batches = joined_batches(path, batch_rows)
        self._pending: list[pa.RecordBatch] = []
        self._have = 0
        self._next = 0

    def take(self, n: int) -> pa.Table:
        while self._have < n:
            batch = next(self._batches, None)
            if batch is None:
                raise joined_count_error(self.view, self._next + self._have, self.total)
            if batch.num_rows:
                self._pending.append(batch)
                self._have += batch.num_rows
        table = pa.Table.from_batches(self._pending)
        taken, rest = table.slice(0, n), table.slice(n)
        self._pending, self._have = rest.to_batches(), rest.num_rows
        rows = taken.column("noria_row").to_numpy()
        expected = np.arange(self._next, self._next + n, dtype=np.int64)
        if not np.array_equal(rows, expected):
            wrong = int(np.flatnonzero(rows != expected)[0])
            raise ExternalToolError(
                f"feature view {self.view!r}: the join's row {self._next + wrong} is entity row {rows[wrong]}"
                " (rows must come back one per entity row, in order)",
                fix="report this as a Noria bug (with the engine, its version and the feature view)",
            )
        self._next += n
        return taken

    def finish(self) -> None:
        """Check that no row is left over."""
        left = self._have + sum(batch.num_rows for batch in self._batches)
        if left:
            raise joined_count_error(self.view, self._next + left, self.total)
