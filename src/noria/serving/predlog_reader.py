"""Reading the prediction log: its finished Parquet files as one table.

Files appear atomically under ``<dir>/date=YYYY-MM-DD/predictions-*.parquet`` (hidden temp
files, then a rename), so a reader never sees half a file. Monitoring reads the same files
itself (:mod:`noria.monitoring.window`), without importing serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noria.serving.predlog_rows import COLUMN_TYPES


def concat_log_tables(tables: Sequence[Any]) -> Any:
    """Log files as one table: columns unified across files; a feature that is a number in one file
    and text in another (a category that looked numeric) becomes text everywhere."""
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    kinds: dict[str, set[Any]] = {}
    for table in tables:
        for field in table.schema:
            if not pa.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(field.type)
    mixed = {name for name, found in kinds.items() if len(found) > 1}
    fixed = []
    for table in tables:
        for name in mixed & set(table.column_names):
            i = table.column_names.index(name)
            column = table.column(i)
            text = pa.array([None if v is None else str(v) for v in column.to_pylist()], type=pa.string())
            table = table.set_column(i, pa.field(name, pa.string()), text)
        fixed.append(table)
    return pa.concat_tables(fixed, promote_options="permissive")


def read_prediction_log(folder: Path | str) -> Any:
    """Every finished file of a prediction log folder as one pandas DataFrame (empty if none)."""
    import pandas as pd
    import pyarrow.parquet as pq

    files = sorted(Path(folder).glob("date=*/predictions-*.parquet"))
    if not files:
        return pd.DataFrame(columns=list(COLUMN_TYPES))
    return concat_log_tables([pq.read_table(f) for f in files]).to_pandas()


__all__ = ["concat_log_tables", "read_prediction_log"]
