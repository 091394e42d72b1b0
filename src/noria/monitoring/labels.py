"""Delayed labels: the outcomes of served requests, from the newest snapshot or from a file.

Two sources, one result (:class:`Labels`: the event key of each labelled request and its label
as the training set encodes it):

* :func:`labels_from_snapshot` applies the project's own target rule (``model.target``: a
  column with its threshold or classes, or the label function) to the request table of the
  newest data snapshot, exactly as a training set would; a label is taken only once it is
  mature (``mature_after``, or the label function's ``label_time``) - no second label format.
* :func:`load_labels` reads a file someone hands over (Parquet or CSV): the request ids
  (``features.request.ids``) and either ``label`` (true/false or 1/0 for a binary task, a class
  name for a multi-class one, a number for regression) or, for a column target, the target
  column itself (the rule is applied). Whole-file problems (unreadable, a column missing) raise;
  bad rows (an id that cannot be read, a label the task cannot use, one request with two
  different labels) go to a quarantine Parquet file with a ``reason`` per row. Nothing is
  dropped without being counted. The values of a file are parsed in :mod:`._label_parsing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from noria import atomic
from noria.errors import SourceError, ValidationError
from noria.monitoring._label_parsing import Reasons as _Reasons
from noria.monitoring._label_parsing import encode as _encode
from noria.monitoring._label_parsing import parse_id as _parse_id

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.tasks import Task

LABEL = "label"
Y = "y"  # the label as the training set encodes it (0/1, class index, the number)
WINDOW = "window"  # the label's window, when its source knows the event time (snapshot labels)
REASON = "reason"
_FAR_FUTURE = "2262-01-01T00:00:00Z"  # "as of" the end of time: every label counts as mature


@dataclass
class Labels:
    """Labelled requests: the id columns (comparable form), ``y`` and, from a snapshot, ``window``.

    The counts say what was left out; they add up: ``rows_read = len(self) + rejected +
    unlabelled + immature + duplicates``.
    """

    frame: pd.DataFrame
    ids: list[str]
    source: str
    rows_read: int = 0
    rejected: int = 0
    unlabelled: int = 0
    duplicates: int = 0
    immature: int = 0
    quarantine_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def windowed(self) -> bool:
        """Whether each label's window is known (then a window's unmatched labels can be counted)."""
        return WINDOW in self.frame.columns


def id_types(project: Project) -> tuple[list[str], dict[str, str]]:
    """The event key's columns and their declared types."""
    from noria.features.definitions import load_definitions
    from noria.features.training_set import request_ids

    defs = load_definitions(project)
    ids = request_ids(defs)
    table = project.config.data.tables[defs.request.table]
    return ids, {c: table.columns[c].type for c in ids}


def comparable(frame: pd.DataFrame, ids: list[str], types: dict[str, str] | None = None) -> pd.DataFrame:
    """Id columns in one form both sides of a join agree on: UTC microseconds, float64, or text.

    A timestamp id held as a number (the prediction log's writer without the project's types,
    batch scoring) is Unix seconds, as the writer records it.
    """
    import pandas as pd

    out: dict[str, Any] = {}
    for col in ids:
        values = frame[col]
        kind = (types or {}).get(col)
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
            out[col] = pd.to_datetime(values, utc=True).dt.as_unit("us")
        elif kind == "timestamp":
            # Unix seconds (rounded to the microsecond like the writer's timestamp columns), or times;
            # a log whose files disagree (numbers in some, timestamps in others) holds both
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            stamps = pd.to_datetime((numbers * 1e6).round(), unit="us", utc=True).dt.as_unit("us")
            if not numeric:
                rest = pd.to_datetime(values.where(numbers.isna()), utc=True, errors="coerce").dt.as_unit("us")
                stamps = stamps.where(numbers.notna(), rest)
            out[col] = stamps
        elif kind in ("int", "float") or (kind is None and numeric):
            out[col] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[col] = values.astype("string")
    return pd.DataFrame(out, index=frame.index)


def labels_from_snapshot(
    project: Project,
    windows: list[str],
    *,
    snapshot_id: str | None = None,
    as_of: Any = None,
    quarantine_dir: Path | str | None = None,
) -> Labels:
    """Labels of the requests of ``windows`` by the project's target rule, from a data snapshot.

    The request table's rows whose event time falls in one of ``windows`` are labelled as a
    training set would label them (:func:`noria.features.training_set.label_rows`): a label
    counts once it is known by ``as_of`` (default: the newest event time in the snapshot) -
    ``mature_after`` after the event, or at the label function's ``label_time``. Rows without a
    label are ``unlabelled``, rows whose label is not known yet ``immature``; a row whose id is
    missing, or two rows of one request with different labels, are rejected (written to
    ``quarantine_dir`` with the reason when given); the same label twice is kept once.
    """
    import pandas as pd

    from noria.data.snapshots import open_snapshot
    from noria.features.definitions import load_definitions
    from noria.features.training_set import entity_rows, label_rows
    from noria.tasks import task_of
    from noria.windows import Windows

    defs = load_definitions(project)
    spans = Windows.of(project)
    chosen = sorted({spans.check(w, "window") for w in windows})
    snapshot = open_snapshot(project, snapshot_id)
    ids, types = id_types(project)
    task = task_of(project)
    source = f"snapshot {snapshot.id[:8]} ({project.config.model.require_target().rule(task.name)})"
    if not chosen:
        return Labels(_empty(ids, types, windowed=True), ids, source)
    rows = entity_rows(defs, snapshot, chosen[0], chosen[-1], spans)
    rows = rows[rows["window"].isin(chosen).to_numpy()].reset_index(drop=True)
    if rows.empty:
        return Labels(_empty(ids, types, windowed=True), ids, source)
    result = label_rows(defs, snapshot, rows, as_of=_timestamp(as_of, "as_of"))
    known = result.values.to_numpy(dtype="float64")
    every = known  # every label, mature or not: known unless some are not mature yet
    if result.info["immature_rows"]:
        every = label_rows(defs, snapshot, rows, as_of=pd.Timestamp(_FAR_FUTURE)).values.to_numpy(dtype="float64")
    reasons = _Reasons(len(rows))
    keys = comparable(rows, ids, types)
    for col in ids:
        reasons.add(keys[col].isna(), f"{col} is missing")
    frame = keys.assign(**{Y: known, WINDOW: rows["window"].to_numpy(dtype=object)})
    ok = reasons.ok()
    labelled = ok & ~np.isnan(known)
    immature = ok & ~np.isnan(every) & np.isnan(known)
    frame, duplicates = _dedupe(frame[labelled], ids, reasons)
    bad = ~reasons.ok()
    quarantine = None
    if bad.any() and quarantine_dir is not None:
        shown = rows.loc[bad, ids].assign(**{LABEL: decode_labels(task, every[bad])})
        quarantine = _quarantine(shown, reasons.text[bad], Path(quarantine_dir), Path(f"snapshot-{snapshot.id[:8]}"))
    return Labels(
        frame.reset_index(drop=True),
        ids,
        source,
        rows_read=len(rows),
        rejected=int(bad.sum()),
        unlabelled=int((ok & np.isnan(every)).sum()),
        duplicates=duplicates,
        immature=int(immature.sum()),
        quarantine_path=None if quarantine is None else str(quarantine),
        extra={"as_of": result.info["as_of"], "windows": chosen},
    )


def _timestamp(value: Any, what: str) -> pd.Timestamp | None:
    """A moment as a UTC timestamp (naive values are UTC); None stays None."""
    import pandas as pd

    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{what}={value!r} is not a time", fix="give an ISO 8601 time, e.g. 2013-08-01T00:00:00Z"
        ) from None
    if pd.isna(stamp):
        raise ValidationError(f"{what} is missing", fix="give an ISO 8601 time, e.g. 2013-08-01T00:00:00Z")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _empty(ids: list[str], types: dict[str, str], *, windowed: bool = False) -> pd.DataFrame:
    """No labels, with the columns and dtypes of some (a join on them still works)."""
    import pandas as pd

    frame = comparable(pd.DataFrame({c: pd.Series([], dtype=object) for c in ids}), ids, types)
    frame[Y] = pd.Series([], dtype="float64")
    if windowed:
        frame[WINDOW] = pd.Series([], dtype=object)
    return frame


def _dedupe(frame: pd.DataFrame, ids: list[str], reasons: _Reasons) -> tuple[pd.DataFrame, int]:
    """One row per request: a request given different labels is rejected (every copy, with a
    reason), the same label twice is kept once. ``frame``'s index is the row number in
    ``reasons``. Returns the rows kept and the number of duplicates dropped."""
    import pandas as pd

    repeated = frame.duplicated(ids, keep=False)
    if not repeated.any():
        return frame, 0
    per_key = frame[repeated].groupby(ids, sort=False, dropna=False)[Y]
    conflict = per_key.transform("nunique") > 1
    times = per_key.transform("size")[conflict]
    count = pd.Series(0, index=range(len(reasons.text)))
    count[times.index] = times
    reasons.add(count.gt(0), "the request appears {} times with different labels", count)
    frame = frame.drop(index=times.index)
    again = frame.duplicated(ids, keep="first")
    return frame[~again], int(again.sum())


def load_labels(project: Project, path: Path | str, *, quarantine_dir: Path | str) -> Labels:
    """Read a labels file (ids + ``label`` or the target column); quarantine its bad rows.

    Every row is accepted, rejected (quarantined with its reason: an id that cannot be read, a
    label the task cannot use, one request with two different labels), unlabelled (no label
    given) or a duplicate (the same request and label again, kept once).
    """
    import pandas as pd

    from noria.tasks import task_of

    path = Path(path)
    raw = _read(path)
    ids, types = id_types(project)
    target = project.config.model.require_target()
    task = task_of(project)
    label_column = LABEL if LABEL in raw.columns else target.column if target.column in raw.columns else None
    missing = [repr(c) for c in ids if c not in raw.columns]
    if missing or label_column is None:
        wanted = f"'label'{f' or {target.column!r}' if target.column else ''}"
        if label_column is None:
            missing.append(wanted)
        raise ValidationError(
            f"labels file {path} has no column {', '.join(missing)}: a labels file holds the request"
            f" ids ({', '.join(ids)}) and {wanted} (found: {', '.join(map(str, raw.columns))})",
            fix="add the missing column(s); timestamps are ISO 8601 with an offset, e.g. 2013-07-01T05:15:00-04:00",
        )
    n = len(raw)
    reasons = _Reasons(n)
    keys = {col: _parse_id(raw[col], types[col], col, reasons) for col in ids}
    threshold = target.threshold if label_column != LABEL else None
    y = _encode(task, raw[label_column], threshold, label_column, reasons)
    ok = reasons.ok()
    labelled = ok & y.notna().to_numpy()
    frame = comparable(pd.DataFrame(keys, index=raw.index), ids, types).assign(**{Y: y.to_numpy(dtype="float64")})
    frame, duplicates = _dedupe(frame[labelled], ids, reasons)
    bad = ~reasons.ok()
    quarantine = _quarantine(raw[bad], reasons.text[bad], Path(quarantine_dir), path) if bad.any() else None
    return Labels(
        frame.reset_index(drop=True),
        ids,
        str(path),
        rows_read=n,
        rejected=int(bad.sum()),
        unlabelled=int((ok & y.isna().to_numpy()).sum()),
        duplicates=duplicates,
        quarantine_path=None if quarantine is None else str(quarantine),
    )


def decode_labels(task: Task, values: np.ndarray) -> np.ndarray:
    """Labels as a person reads them (true/false, the class name, the number; None where unknown), column-wise."""
    known = ~np.isnan(values)
    out = np.full(len(values), None, dtype=object)
    if task.name == "binary":
        out[known] = values[known] == 1.0
    elif task.name == "multiclass":
        out[known] = np.asarray(task.classes, dtype=object)[values[known].astype(np.int64)]
    else:
        out[known] = values[known]
    return out


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise SourceError(f"labels file {path} does not exist", fix="pass the path of a Parquet or CSV labels file")
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".parquet" in suffixes or ".pq" in suffixes:
            frame = pd.read_parquet(path)
        elif ".csv" in suffixes or ".txt" in suffixes:
            # every value as text, so a bad one is quarantined as it was written
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            raise ValidationError(
                f"labels file {path} is neither Parquet nor CSV (suffix {path.suffix!r})",
                fix="give a .parquet or .csv file",
            )
    except (OSError, ValueError, pd.errors.ParserError, ImportError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise SourceError(
            f"cannot read labels file {path}: {exc}", fix="check that it is a valid Parquet or CSV file"
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise SourceError(f"labels file {path} has no rows", fix="pass a file with at least one labelled request")
    return frame


def _quarantine(rows: pd.DataFrame, reasons: Any, folder: Path, source: Path) -> Path:
    """Write rejected rows (as text, with their 1-based row number and reason) atomically."""
    import pandas as pd

    text = rows.astype("string").astype(object)
    out = text.mask(text.isna(), None)
    out.insert(0, "row", (rows.index.to_numpy() + 1).astype("int64"))
    out[REASON] = reasons
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"labels-{source.name.split('.')[0]}-{stamp}.parquet"
    with atomic.temp_path(path) as tmp:
        pd.DataFrame(out).to_parquet(tmp, index=False)
    return path


__all__ = [
    "LABEL",
    "WINDOW",
    "Labels",
    "Y",
    "comparable",
    "decode_labels",
    "id_types",
    "labels_from_snapshot",
    "load_labels",
]
