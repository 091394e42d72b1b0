"""The entity rows of a training set and their labels: the request table's events in a period
(ids, request columns, prediction time and window), read whole or chunk by chunk, and the label
of each by the project's target rule (a column and its threshold, or a label function), counted
only once it could be known (``model.target.mature_after`` or the function's ``label_time``).

:mod:`noria.features.training_set` builds on these; monitoring labels served requests and the
demo picks its replay windows with the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from noria.config import Project
from noria.errors import ConfigError
from noria.features.config import parse_duration
from noria.features.definitions import Definitions, FeatureDefinitionError, load_definitions
from noria.features.sources import SnapshotLike
from noria.features.transform import Arrays, prediction_times, request_arrays
from noria.windows import Windows, in_period, ordered

LABEL = "label"
TIME = "event_timestamp"
WINDOW = "window"


def entity_rows(
    defs: Definitions, snapshot: SnapshotLike, start: str, end: str, windows: Windows | None = None
) -> pd.DataFrame:
    """The request table's rows whose event time falls in windows ``start``..``end`` (held in memory).

    Columns: the ids, the request columns and (for a column target) the target column, plus
    ``event_timestamp`` (the prediction time, UTC) and ``window`` (its window label).
    """
    windows = windows or Windows.of(defs.project)
    wanted, months = request_read(defs, start, end, windows)
    table = defs.request.table
    if months is not None and _reads_months(snapshot):
        frame = snapshot.read(table, columns=wanted, months=months)  # type: ignore[call-arg]
    else:
        frame = snapshot.read(table, columns=wanted)
    return rows_in_period(defs, frame, windows, start, end)[0]


def request_read(defs: Definitions, start: str, end: str, windows: Windows) -> tuple[list[str], list[str] | None]:
    """The request table's columns the entity rows need, and the months (partitions) that can hold them."""
    project = defs.project
    windows.check(start, "--from")
    windows.check(end, "--to")
    if start > end:
        raise ConfigError(f"--from {start} is after --to {end}", fix="swap them")
    table = project.config.data.tables[defs.request.table]
    target = project.config.model.target
    extra = [target.column] if target is not None and target.column is not None else []
    wanted = list(dict.fromkeys([*request_ids(defs), *defs.request.columns, *extra]))
    return wanted, windows.months(start, end) if table.partition is not None else None


def rows_in_period(
    defs: Definitions, frame: pd.DataFrame, windows: Windows, start: str, end: str
) -> tuple[pd.DataFrame, Arrays, np.ndarray]:
    """The rows of ``frame`` whose window lies in ``start..end`` (with ``event_timestamp`` and ``window``),
    their request columns as arrays and their prediction times."""
    frame = frame.reset_index(drop=True)
    cols = request_arrays(defs, frame)
    times = prediction_times(defs, cols)
    labels = windows.labels(times)
    keep = in_period(labels, start, end)
    frame = frame[keep].reset_index(drop=True)
    frame[TIME] = pd.to_datetime(times[keep]).tz_localize("UTC")
    frame[WINDOW] = labels[keep]
    return frame, {k: v[keep] for k, v in cols.items()}, times[keep]


def request_chunks(
    defs: Definitions, snapshot: SnapshotLike, wanted: list[str], months: list[str] | None, rows: int
) -> Iterator[pd.DataFrame]:
    """The request table's rows (``wanted`` columns, ``months`` only) in storage order, about ``rows`` at a
    time: a snapshot's Parquet files are read batch by batch; any other snapshot is read whole, then cut."""
    import pyarrow as pa

    table = defs.request.table
    table_paths = getattr(snapshot, "table_paths", None)
    if not callable(table_paths):
        if months is not None and _reads_months(snapshot):
            frame = snapshot.read(table, columns=wanted, months=months)  # type: ignore[call-arg]
        else:
            frame = snapshot.read(table, columns=wanted)
        for first in range(0, len(frame), rows):
            yield frame.iloc[first : first + rows]
        return
    from noria.data.scan import parquet_batches

    pending: list[pa.Table] = []
    have = 0
    for batch in parquet_batches(table_paths(table, months), wanted, rows):
        pending.append(pa.Table.from_batches([batch]).select(wanted))
        have += batch.num_rows
        if have >= rows:
            yield pa.concat_tables(pending, promote_options="default").to_pandas()
            pending, have = [], 0
    if pending:
        yield pa.concat_tables(pending, promote_options="default").to_pandas()


def request_ids(defs: Definitions) -> list[str]:
    """The event key: ``features.request.ids``, else the request table's primary key."""
    request = defs.request
    table = defs.project.config.data.tables[request.table]
    return list(request.ids if request.ids is not None else table.primary_key)


def _reads_months(snapshot: SnapshotLike) -> bool:
    import inspect

    return "months" in inspect.signature(snapshot.read).parameters


@dataclass
class Labels:
    """The label of each entity row and what the rule says about them (for the lineage record)."""

    values: pd.Series  # float64: 0/1, class index or the number; NaN where unknown or immature
    info: dict[str, Any]


def label_rows(
    defs: Definitions, snapshot: SnapshotLike, rows: pd.DataFrame, *, as_of: pd.Timestamp | None = None
) -> Labels:
    """The label of each row of ``rows`` (from :func:`entity_rows`) by the project's target rule.

    A label counts only once it could be known: at its ``label_time`` (a label function may
    return one) or ``mature_after`` after the event time; rows whose label is not known by
    ``as_of`` (default: the end of the snapshot's data) are unlabelled and counted as immature.
    """
    return LabelRule.of(defs, snapshot, as_of=as_of).label(rows)


@dataclass
class LabelRule:
    """The project's target rule, made ready once (a label function run, "now" found) to label entity
    rows chunk by chunk; see :func:`label_rows`."""

    defs: Definitions
    as_of: pd.Timestamp | None
    answers: pd.DataFrame | None  # a label function's answer: comparable ids, label (, label_time)

    @classmethod
    def of(cls, defs: Definitions, snapshot: SnapshotLike, *, as_of: pd.Timestamp | None = None) -> LabelRule:
        target = defs.project.config.model.require_target()
        answers = _label_answers(defs, snapshot) if target.function is not None else None
        return cls(defs, as_of if as_of is not None else data_end(defs, snapshot), answers)

    def label(self, rows: pd.DataFrame) -> Labels:
        from noria.tasks import task_of

        project = self.defs.project
        target = project.config.model.require_target()
        task = task_of(project)
        label_time: pd.Series | None = None
        if self.answers is not None:
            raw, label_time = _join_answers(self.defs, self.answers, rows)
        else:
            raw = rows[str(target.column)]
        values = task.encode_labels(raw, threshold=target.threshold, where=f"model.target ({target.rule(task.name)})")
        values = values.reset_index(drop=True)
        missing = int(values.isna().sum())
        lag = parse_duration(target.mature_after)
        known_at: pd.Series = rows[TIME] + lag if lag is not None else rows[TIME]
        if label_time is not None:
            known_at = label_time.where(label_time.notna(), known_at)
        as_of = self.as_of
        immature = values.notna() & (known_at > as_of) if as_of is not None else values.notna() & False
        values = values.mask(immature)
        info: dict[str, Any] = {
            "name": LABEL,
            "task": task.name,
            "rule": target.rule(task.name),
            "missing_when": f"{target.column} is missing" if target.column else "the label function gives none",
            "mature_after": target.mature_after,
            "as_of": None if as_of is None else as_of.isoformat(),
            "missing_rows": missing,
            "immature_rows": int(immature.sum()),
        }
        if task.classes:
            info["classes"] = list(task.classes)
        if target.unit:
            info["unit"] = target.unit
        return Labels(values, info)


def _label_answers(defs: Definitions, snapshot: SnapshotLike) -> pd.DataFrame:
    """Run the label function (once per build): its answer with the ids in comparable form."""
    from noria.features.definitions import resolve_function

    target = defs.project.config.model.require_target()
    assert target.function is not None
    fn = resolve_function(defs.project.root, target.function, "model.target.function")
    tables = {name: snapshot.read(name, columns=list(cols)) for name, cols in target.tables.items()}
    result = fn(tables, **target.params)
    owner = f"model.target.function {target.function}"
    if not isinstance(result, pd.DataFrame):
        raise FeatureDefinitionError(f"{owner} returned {type(result).__name__}", fix="return a pandas DataFrame")
    ids = request_ids(defs)
    missing = [c for c in [*ids, LABEL] if c not in result.columns]
    if missing:
        raise FeatureDefinitionError(
            f"{owner} returned no column {', '.join(map(repr, missing))}"
            f" (it returned: {', '.join(map(str, result.columns))})",
            fix=f"return the request ids ({', '.join(ids)}), 'label' and optionally 'label_time'",
        )
    keys = _comparable(result[ids])
    repeated = keys.duplicated(keep=False)
    if repeated.any():
        example = result.loc[repeated, ids].iloc[0].to_dict()
        raise FeatureDefinitionError(
            f"{owner} returned {int(repeated.sum())} rows with duplicate ids, e.g. {example}",
            fix="return one label per event (request ids unique)",
        )
    right = keys.assign(**{LABEL: result[LABEL].to_numpy()})
    if "label_time" in result.columns:
        stamps = pd.to_datetime(result["label_time"], utc=True)
        right["label_time"] = stamps.to_numpy()
    return right


def _join_answers(defs: Definitions, right: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
    """The label function's answer for each of ``rows``, joined on the ids (row order kept)."""
    ids = request_ids(defs)
    joined = _comparable(rows[ids]).merge(right, on=ids, how="left", sort=False)
    label_time = None
    if "label_time" in joined.columns:
        label_time = pd.to_datetime(joined["label_time"], utc=True).reset_index(drop=True)
    return joined[LABEL].reset_index(drop=True), label_time


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Id columns in one comparable form: timestamps as UTC, numbers as float, the rest as text."""
    out: dict[str, Any] = {}
    for col in frame.columns:
        values = frame[col]
        if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
            out[col] = pd.to_datetime(values, utc=True).dt.as_unit("us")
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            out[col] = pd.to_numeric(values).astype("float64")
        else:
            out[col] = values.astype("string")
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


def data_end(defs: Definitions, snapshot: SnapshotLike) -> pd.Timestamp | None:
    """The newest event time of the request table in the snapshot: "now" for label maturity."""
    table = defs.project.config.data.tables[defs.request.table]
    months = getattr(getattr(snapshot, "record", None), "months", None)
    last = [months[-1]] if table.partition is not None and months else None
    newest = [
        prediction_times(defs, request_arrays(defs, frame.reset_index(drop=True))).max()
        for frame in request_chunks(defs, snapshot, list(defs.request.columns), last, defs.config.build_chunk_rows)
        if not frame.empty
    ]
    return pd.Timestamp(np.max(newest)).tz_localize("UTC") if newest else None


def data_windows(project: Project, snapshot: SnapshotLike | None = None) -> tuple[list[str], pd.Timestamp | None]:
    """The windows the snapshot's request table has events in (oldest first), and its newest event time."""
    defs = load_definitions(project)
    if snapshot is None:
        from noria.data.snapshots import open_snapshot

        snapshot = open_snapshot(project)
    frame = snapshot.read(defs.request.table, columns=list(defs.request.columns))
    if frame.empty:
        return [], None
    times = prediction_times(defs, request_arrays(defs, frame.reset_index(drop=True)))
    labels = Windows.of(project).labels(times)
    return ordered(labels), pd.Timestamp(times.max()).tz_localize("UTC")


def mature_window(project: Project, end: pd.Timestamp, windows: Windows | None = None) -> str | None:
    """The window of the newest event whose label is known at ``end`` (``model.target.mature_after``)."""
    target = project.config.model.target
    lag = parse_duration(target.mature_after or 0) if target is not None else None
    moment = end - lag if lag else end
    label = (windows or Windows.of(project)).labels(pd.DatetimeIndex([moment]))[0]
    return None if label is None else str(label)


__all__ = [
    "LABEL",
    "TIME",
    "WINDOW",
    "LabelRule",
    "Labels",
    "data_end",
    "data_windows",
    "entity_rows",
    "label_rows",
    "mature_window",
    "request_chunks",
    "request_ids",
    "request_read",
    "rows_in_period",
]
