"""Training sets built chunk by chunk (bounded memory) hold exactly what an in-memory build gives.

``build_training_set`` stages the entity rows as Parquet, lets the engine write each view's join
to Parquet and writes the training set row group by row group. The reference here is the
training set assembled in memory from the same public pieces (``entity_rows``, ``label_rows``,
``historical_features``), the way builds worked before they went chunk by chunk; chunk sizes
that cut the rows anywhere (one row per chunk up to all rows in one) must give the same file:
same rows in the same order, same columns, same Parquet types, values bit for bit. Data: the
reference project on ten days of the real flights (~9,000 rows), from an in-memory snapshot and
from one stored as Parquet files, read batch by batch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.snapshot_support import FrameSnapshot

from noria.config import Project, load_project
from noria.errors import ExternalToolError
from noria.features.definitions import load_definitions
from noria.features.offline import historical_features
from noria.features.sources import prepare_sources
from noria.features.staged import JoinedRows, staging_dir
from noria.features.training_set import (
    LABEL,
    TIME,
    WINDOW,
    _label_column,
    build_training_set,
    entity_rows,
    label_rows,
)

Built = tuple[Project, FrameSnapshot]


class FileSnapshot:
    """A snapshot stored as Noria stores one: ``table/month=YYYY-MM/part-NN.parquet`` (flights: one file
    per day), read back through ``table_paths`` like :class:`noria.data.snapshots.Snapshot`."""

    def __init__(self, frames: FrameSnapshot, root: Path) -> None:
        self.id = frames.id
        self.root = root
        for name, frame in frames.tables.items():
            if name != "flights":
                (root / name).mkdir(parents=True)
                frame.to_parquet(root / name / "part-00.parquet", index=False)
                continue
            for (year, month, day), part in frame.groupby(["year", "month", "day"], sort=True):
                folder = root / name / f"month={year}-{month:02d}"
                folder.mkdir(parents=True, exist_ok=True)
                part.to_parquet(folder / f"part-{day:02d}.parquet", index=False)

    def table_paths(self, table: str, months: list[str] | None = None) -> list[Path]:
        paths = sorted((self.root / table).rglob("*.parquet"))
        if months is None:
            return paths
        return [p for p in paths if p.parent.name.partition("=")[2] in months]

    def read(self, table: str, columns: list[str] | None = None, months: list[str] | None = None) -> pd.DataFrame:
        frames = [pq.read_table(p, columns=columns).to_pandas() for p in self.table_paths(table, months)]
        return pd.concat(frames, ignore_index=True)


def in_memory_build(project: Project, snap: Any, start: str, end: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The training set assembled in memory, as builds did before they went chunk by chunk."""
    defs = load_definitions(project)
    rows = entity_rows(defs, snap, start, end)
    labels = label_rows(defs, snap, rows)
    request_rows = rows.drop(columns=[TIME, WINDOW])
    retrieval = historical_features(defs, defs.service(), request_rows, prepare_sources(defs, snap).paths)
    target = project.config.model.require_target()
    keep = [c for c in request_rows.columns if c != target.column or c in defs.request.columns]
    features = retrieval.frame.drop(columns=[c for c in retrieval.frame.columns if c in request_rows.columns])
    label = pd.DataFrame({LABEL: _label_column(labels.values, labels.info["task"])})
    return pd.concat([request_rows[keep], label, features], axis=1), retrieval.matched


def with_chunks(project: Project, rows: int) -> Project:
    return load_project(project.root, environ={"NORIA_FEATURES__BUILD_CHUNK_ROWS": str(rows)})


def same_file(path: Path, expected: pd.DataFrame, tmp_path: Path) -> None:
    """``path`` holds what ``expected.to_parquet`` writes: Arrow types and values, bit for bit."""
    reference = tmp_path / "reference.parquet"
    expected.to_parquet(reference, index=False)
    assert pq.read_schema(path).equals(pq.read_schema(reference), check_metadata=False)
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(reference), check_exact=True)


@pytest.mark.parametrize("chunk_rows", [1, 997, 4_000, 1_000_000])
def test_any_chunk_size_gives_the_in_memory_training_set(built_project: Built, tmp_path: Path, chunk_rows: int) -> None:
    project, snap = built_project
    expected, matched = in_memory_build(project, snap, "2013-01", "2013-01")
    if chunk_rows == 1:  # one row per chunk: every step sees single rows (a slice keeps this quick)
        snap = FrameSnapshot(snap.id, {**snap.tables, "flights": snap.tables["flights"].head(60)})
        expected, matched = in_memory_build(project, snap, "2013-01", "2013-01")
    built = build_training_set(
        with_chunks(project, chunk_rows), "2013-01", "2013-01", snapshot=snap, out=tmp_path / "t.parquet"
    )
    same_file(tmp_path / "t.parquet", expected, tmp_path)
    record = built.record
    assert record.rows == len(expected) and record.matched == matched
    assert record.unmatched == {v: len(expected) - m for v, m in matched.items()}
    assert record.labeled_rows == int(expected[LABEL].notna().sum())
    assert record.label["missing_rows"] == int(expected[LABEL].isna().sum())
    pd.testing.assert_frame_equal(built.frame, pd.read_parquet(tmp_path / "t.parquet"))  # read on first use
    assert not any((load_definitions(project).repo_dir / "build").iterdir())  # staging removed


def test_a_stored_snapshot_is_read_file_by_file_in_storage_order(built_project: Built, tmp_path: Path) -> None:
    project, frames = built_project
    snap = FileSnapshot(frames, tmp_path / "snapshot")
    assert len(snap.table_paths("flights")) == 10  # one file per day
    expected, matched = in_memory_build(project, snap, "2013-01", "2013-01")
    for rows in (1_500, 1_000_000):  # chunks across files, and all files in one chunk
        out = tmp_path / f"t{rows}.parquet"
        built = build_training_set(with_chunks(project, rows), "2013-01", "2013-01", snapshot=snap, out=out)
        same_file(out, expected, tmp_path)
        assert built.record.matched == matched


def test_a_failed_build_leaves_neither_training_set_nor_staged_files(
    built_project: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, snap = built_project
    out = tmp_path / "t.parquet"

    def broken_join(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the engine died")

    monkeypatch.setattr("noria.features.duckdb_join.duckdb_join_files", broken_join)
    with pytest.raises(RuntimeError, match="the engine died"):
        build_training_set(project, "2013-01", "2013-01", snapshot=snap, out=out)
    assert list(tmp_path.iterdir()) == []
    assert not any((load_definitions(project).repo_dir / "build").iterdir())


def test_the_folder_of_a_killed_build_is_removed_by_the_next(flights_project: Project) -> None:
    defs = load_definitions(flights_project)
    root = defs.repo_dir / "build"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    orphan = root / f"{host}-{int(gone.stdout)}-abc123"
    running = root / f"{host}-{os.getppid()}-def456"  # a build still running on this machine
    other_host = root / f"{host}x-{int(gone.stdout)}-ghi789"  # another machine's, on shared storage
    for folder in (orphan, running, other_host):
        (folder / "entity_rows.parquet").parent.mkdir(parents=True)
        (folder / "entity_rows.parquet").write_bytes(b"x")
    with staging_dir(defs) as folder:
        assert folder.is_dir() and folder.parent == root
        assert not orphan.exists() and running.exists() and other_host.exists()
    assert not folder.exists()


def joined(folder: Path, rows: list[int], *, parts: int = 0, sort: bool = True) -> Path:
    """A joined view as DuckDB writes it (one file, rows as given) or as Spark does (``parts`` part files
    of a folder, rows spread over them as a shuffle by key would, each part sorted)."""
    folder.mkdir(parents=True, exist_ok=True)

    def table(values: list[int]) -> pa.Table:
        return pa.table({"noria_row": pa.array(values, pa.int64()), "temp": pa.array([float(r) for r in values])})

    if not parts:
        pq.write_table(table(rows), folder / "v.parquet")
        return folder / "v.parquet"
    out = folder / "v.joined"
    out.mkdir()
    for i in range(parts):
        mine = [r for r in rows if (r * 7919) % parts == i]
        pq.write_table(table(sorted(mine) if sort else mine), out / f"part-{i:05d}-x.snappy.parquet")
    (out / "_SUCCESS").touch()
    (out / ".part-00000-x.snappy.parquet.crc").write_bytes(b"crc")
    return out


def test_joined_rows_come_back_in_entity_order_or_the_build_stops(tmp_path: Path) -> None:
    rows = list(range(45))
    shuffled = [int(r) for r in np.random.default_rng(3).permutation(rows)]
    for parts in (1, 3, 50):  # more parts than rows per chunk, and parts without rows
        cursor = JoinedRows("v", joined(tmp_path / f"spark{parts}", shuffled, parts=parts), 45, batch_rows=7)
        taken = [cursor.take(n).column("noria_row").to_pylist() for n in (10, 1, 34)]
        assert [r for part in taken for r in part] == rows
        cursor.finish()

    unsorted = JoinedRows("v", joined(tmp_path / "unsorted", shuffled, parts=3, sort=False), 45, batch_rows=7)
    with pytest.raises(ExternalToolError, match="rows must come back one per entity row, in order"):
        for _ in range(7):
            unsorted.take(7)
    lost = JoinedRows("v", joined(tmp_path / "lost", [0, 1, 2, 4, 5]), 6, batch_rows=2)
    with pytest.raises(ExternalToolError, match="row 3 is entity row 4"):
        lost.take(5)
    short = JoinedRows("v", joined(tmp_path / "short", [0, 1]), 3, batch_rows=2)
    with pytest.raises(ExternalToolError, match="returned 2 rows for 3 entity rows"):
        short.take(3)
    extra = JoinedRows("v", joined(tmp_path / "extra", [0, 1, 2]), 2, batch_rows=2)
    extra.take(2)
    with pytest.raises(ExternalToolError, match="returned 3 rows for 2 entity rows"):
        extra.finish()
