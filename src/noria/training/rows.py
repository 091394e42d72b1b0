"""The training pipeline's rows between steps: Parquet files, read column by column.

The ``split`` step reads the training set (one Parquet file or a folder of them) with pyarrow:
first only its time and label columns, to decide the split (:func:`noria.training.split.plan_split`),
then only the columns training needs. It writes the train rows in time order (fit rows first,
then the validation slice) to one Parquet file, and keeps the holdout (one test period, small)
as a frame. ``tune``, ``train`` and ``evaluate`` then read from that file what each needs:

- ``train``: one float64 matrix of the features (:class:`noria.training.model.Matrix`), built
  column by column; LightGBM bins it without a copy, the fit and validation parts are views;
- ``tune``: the same for a seeded sample of rows (``training.tune_sample_rows``);
- ``evaluate``: frames of seeded samples only (baselines, the reference profile).

So no step holds the training set as a pandas frame, and no step but ``train`` holds every row.
Samples are the rows pandas' ``DataFrame.sample(n, random_state=seed)`` picks, in file order:
the same rows the pipeline sampled when it passed frames.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from noria.errors import DataError
from noria.tasks import Task
from noria.training.model import Matrix
from noria.training.split import Split, SplitPlan, TimeWindow, check_columns, plan_split

if TYPE_CHECKING:
    import pyarrow as pa

    from noria.training.split import PeriodLike
    from noria.windows import Windows

ROWS_FILE = "rows.parquet"
META_FILE = "rows.json"
# Rows taken and written at a time when the train rows are put in time order.
CHUNK_ROWS = 500_000


def release_memory() -> None:
    """Give the memory Arrow freed back to the system. Arrow's allocator keeps freed pages for
    reuse, and the pipeline's steps share one process: what one step read must not stay resident
    under the next step's matrices (measured: 0.6 of 1.1 GB kept after a table was dropped)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def parquet_files(path: Path | str) -> list[Path]:
    """The Parquet files of a training set: ``path`` itself, or the ``*.parquet`` files under a
    folder (by name; names starting with ``.`` or ``_``, such as Spark's ``_SUCCESS``, left out)."""
    source = Path(path)
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(
            f
            for f in source.rglob("*.parquet")
            if f.is_file() and not any(p.startswith((".", "_")) for p in f.relative_to(source).parts)
        )
        if files:
            return files
    raise DataError(
        f"no Parquet training set at {source}",
        fix="rebuild the training set (`noria features build`) or rerun the pipeline's training_set step",
    )


def read_columns(files: Sequence[Path], columns: Sequence[str]) -> pa.Table:
    """``columns`` of every row of ``files``, in file order (one table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f, columns=list(columns)) for f in files]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def schema_names(files: Sequence[Path]) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(files[0]).names)


def take_rows(files: Sequence[Path], positions: np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
    """The rows at ``positions`` (in that order) of ``files``, one record batch in memory at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = np.sort(positions)
    pieces: list[pa.Table] = []
    offset = 0
    for f in files:
        reader = pq.ParquetFile(f)
        for batch in reader.iter_batches(batch_size=65_536, columns=None if columns is None else list(columns)):
            lo, hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
            if hi > lo:
                pieces.append(pa.Table.from_batches([batch.take(pa.array(wanted[lo:hi] - offset))]))
            offset += batch.num_rows
    schema = pq.read_schema(files[0])
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    # The file's schema, metadata included: pandas reads the columns back with the dtypes they had.
    table = pa.concat_tables([schema.empty_table(), *pieces], promote_options="default").cast(schema)
    return table.take(pa.array(np.searchsorted(wanted, positions)))


@dataclass(frozen=True)
class SplitFiles:
    """What :func:`split_files` wrote and kept."""

    plan: SplitPlan
    test: pd.DataFrame
    folder: Path


def split_files(
    source: Path | str,
    out: Path,
    *,
    time_col: str,
    label: str,
    columns: Sequence[str],
    optional: Sequence[str] = (),
    train: PeriodLike,
    test: PeriodLike,
    valid_fraction: float | None = None,
    valid_windows: int | None = None,
    windows: Windows | None = None,
    task: Task | None = None,
) -> SplitFiles:
    """:func:`noria.training.split.split_by_time` of the training set at ``source``, from files.

    The train rows (time, label, ``columns`` and those of ``optional`` the training set has) go in
    time order to ``out/rows.parquet``; the
    test rows (every column) come back as a frame, as ``split_by_time`` gives them (index: the
    rows' positions in the training set).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(source)
    names = schema_names(files)
    check_columns(names, time_col, label)
    head = read_columns(files, [time_col, label]).to_pandas()
    plan = plan_split(
        head[time_col],
        head[label],
        time_col,
        label,
        train=train,
        test=test,
        valid_fraction=valid_fraction,
        valid_windows=valid_windows,
        windows=windows,
        task=task,
    )
    del head
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"the training set {source} has no column(s) {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(names[:20])})",
            fix="rebuild the training set (`noria features build`) with the feature service the model uses",
        )
    keep = list(dict.fromkeys([time_col, label, *columns, *(c for c in optional if c in names)]))

    test_rows = take_rows(files, plan.test).to_pandas()
    test_rows.index = pd.Index(plan.test)
    test_rows[time_col] = plan.times.iloc[plan.test].array
    test_rows[label] = plan.labels(plan.test)

    out.mkdir(parents=True, exist_ok=True)
    table = read_columns(files, keep)
    with pq.ParquetWriter(out / ROWS_FILE, table.schema) as writer:
        for start in range(0, len(plan.train), CHUNK_ROWS):
            writer.write_table(table.take(pa.array(plan.train[start : start + CHUNK_ROWS])))
    del table
    release_memory()
    meta = {"label": label, "time_column": time_col, "rows": len(plan.train), "fit_rows": plan.fit_rows}
    (out / META_FILE).write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
    return SplitFiles(plan=plan, test=test_rows, folder=out)


@dataclass(frozen=True)
class TrainRows:
    """The train rows :func:`split_files` wrote: time order, the first ``fit_rows`` the fit part."""

    file: Path
    label: str
    time_col: str
    rows: int
    fit_rows: int
    task: Task

    @classmethod
    def open(cls, folder: Path | str, task: Task) -> TrainRows:
        src = Path(folder)
        try:
            meta = json.loads((src / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read the train rows in {src}: {exc}",
                fix="rerun the training pipeline from the split step",
            ) from None
        return cls(src / ROWS_FILE, meta["label"], meta["time_column"], int(meta["rows"]), int(meta["fit_rows"]), task)

    def labels(self) -> np.ndarray:
        """Every row's label as float64."""
        column = read_columns([self.file], [self.label]).column(0)
        return np.asarray(column.to_numpy(), dtype=np.float64)

    def matrix(
        self, features: Sequence[str], categorical: Sequence[str] = (), positions: np.ndarray | None = None
    ) -> Matrix:
        """The features of the rows at ``positions`` (every row by default) as one matrix, read one
        column at a time. A categorical feature's codes index its values over every train row, sorted
        (the categories pandas gives the whole train part)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        features, cats = list(features), set(categorical)
        n = self.rows if positions is None else len(positions)
        x = np.empty((n, len(features)), dtype=np.float64)
        categories: dict[str, list[Any]] = {}
        take = None if positions is None else pa.array(positions)
        for j, name in enumerate(features):
            column = read_columns([self.file], [name]).column(0)
            if pa.types.is_dictionary(column.type):
                column = pc.cast(column, column.type.value_type)
            if name in cats:
                values = sorted(v for v in pc.unique(column).to_pylist() if v is not None and v == v)
                categories[name] = values
                if take is not None:
                    column = column.take(take)
                codes = pc.index_in(column, value_set=pa.array(values, type=column.type))
                x[:, j] = codes.to_numpy(zero_copy_only=False)  # missing -> NaN
            else:
                if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                        or pa.types.is_boolean(column.type) or pa.types.is_decimal(column.type)):  # fmt: skip
                    raise DataError(
                        f"feature {name!r} has type {column.type}: neither numeric nor declared categorical",
                        fix=f"add {name!r} to the categorical features, or convert it to numbers",
                    )
                if take is not None:
                    column = column.take(take)
                x[:, j] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            del column
        release_memory()
        y = self.labels()
        return Matrix(x, y if positions is None else y[positions], features, {c: categories[c] for c in categorical})

    def frame(self, columns: Sequence[str], positions: np.ndarray | None = None) -> pd.DataFrame:
        """``columns`` (plus time and label) of the rows at ``positions`` as a frame, typed as
        :func:`noria.training.split.split_by_time` types a part (UTC times; int8, int16 or float labels)."""
        keep = list(dict.fromkeys([self.time_col, self.label, *columns]))
        # A sample is taken batch by batch: the columns of every row are never in memory at once.
        table = read_columns([self.file], keep) if positions is None else take_rows([self.file], positions, keep)
        frame: pd.DataFrame = table.to_pandas()
        del table
        release_memory()
        times = frame[self.time_col]
        frame[self.time_col] = times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")
        values = frame[self.label].to_numpy(dtype=np.float64)
        frame[self.label] = values if self.task.name == "regression" else values.astype(
            "int8" if self.task.name == "binary" else "int16"
        )  # fmt: skip
        return frame


def split_of(train: pd.DataFrame, fit_rows: int, test: pd.DataFrame, summary: dict[str, Any], task: Task) -> Split:
    """A :class:`Split` of frames around train rows read from the file (all of them or a sample
    in file order, of which the first ``fit_rows`` are fit rows) and the test frame, its windows
    and counts taken from the split step's ``summary``."""
    parts = summary["parts"]

    def window(name: str) -> TimeWindow:
        w = parts[name]["window"]
        return TimeWindow(pd.Timestamp(w["start"]), pd.Timestamp(w["end_exclusive"]), w["label"])

    return Split(
        train=train,
        fit=train.iloc[:fit_rows],
        valid=train.iloc[fit_rows:],
        test=test,
        label=summary["label"],
        time_col=summary["time_column"],
        train_window=window("train"),
        valid_window=window("valid"),
        test_window=window("test"),
        dropped_unlabelled=dict(summary.get("dropped_unlabelled") or {}),
        task=task,
    )
