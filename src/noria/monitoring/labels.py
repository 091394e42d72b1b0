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
  dropped without being counted.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from noria.errors import DataError, SourceError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project

LABEL = "label"
Y = "y"  # the label as the training set encodes it (0/1, class index, the number)
REASON = "reason"


@dataclass
class Labels:
    """Labelled requests: the id columns (comparable form) and ``y``; counts of what was left out."""

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


def id_types(project: Project) -> tuple[list[str], dict[str, str]]:
    """The event key's columns and their declared types."""
    from noria.features.definitions import load_definitions
    from noria.features.training_set import request_ids

    defs = load_definitions(project)
    ids = request_ids(defs)
    table = project.config.data.tables[defs.request.table]
    return ids, {c: table.columns[c].type for c in ids}


def comparable(frame: pd.DataFrame, ids: list[str], types: dict[str, str] | None = None) -> pd.DataFrame:
    """Id columns in one form both sides of a join agree on: UTC microseconds, float64, or text."""
    import pandas as pd

    out: dict[str, Any] = {}
    for col in ids:
        values = frame[col]
        kind = (types or {}).get(col)
        if kind == "timestamp" or isinstance(values.dtype, pd.DatetimeTZDtype):
            out[col] = pd.to_datetime(values, utc=True).dt.as_unit("us")
        elif kind in ("int", "float") or (
            kind is None and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        ):
            out[col] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[col] = values.astype("string")
    return pd.DataFrame(out, index=frame.index)


def labels_from_snapshot(
    project: Project, windows: list[str], *, snapshot_id: str | None = None, as_of: Any = None
) -> Labels:
    """Labels of the requests of ``windows`` by the project's target rule, from a data snapshot."""
    import pandas as pd

    from noria.data.snapshots import open_snapshot
    from noria.features.definitions import load_definitions
    from noria.features.training_set import entity_rows, label_rows, request_ids

    defs = load_definitions(project)
    snapshot = open_snapshot(project, snapshot_id)
    ids, types = id_types(project)
    parts = []
    immature = unlabelled = read = 0
    for window in windows:
        rows = entity_rows(defs, snapshot, window, window)
        if rows.empty:
            continue
        labels = label_rows(defs, snapshot, rows, as_of=None if as_of is None else pd.Timestamp(as_of))
        read += len(rows)
        immature += int(labels.info["immature_rows"])
        known = labels.values.notna().to_numpy()
        unlabelled += int((~known).sum())
        part = comparable(rows.loc[known, request_ids(defs)].reset_index(drop=True), ids, types)
        part[Y] = labels.values[known].to_numpy(dtype="float64")
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({**{c: [] for c in ids}, Y: []})
    return Labels(
        frame,
        ids,
        f"snapshot {snapshot.id[:8]} (model.target)",
        rows_read=read,
        unlabelled=unlabelled - immature,
        immature=immature,
    )


def load_labels(project: Project, path: Path | str, *, quarantine_dir: Path | str) -> Labels:
    """Read a labels file (ids + ``label`` or the target column); quarantine its bad rows."""
    import pandas as pd

    from noria.tasks import task_of

    path = Path(path)
    raw = _read(path)
    ids, types = id_types(project)
    target = project.config.model.require_target()
    task = task_of(project)
    label_column = LABEL if LABEL in raw.columns else target.column if target.column in raw.columns else None
    missing = [c for c in ids if c not in raw.columns]
    if missing or label_column is None:
        wanted = f"'label'{f' or {target.column!r}' if target.column else ''}"
        raise ValidationError(
            f"labels file {path} lacks {', '.join(map(repr, missing)) or wanted}: a labels file holds the request"
            f" ids ({', '.join(ids)}) and {wanted} (found: {', '.join(map(str, raw.columns))})",
            fix="add the missing column(s); timestamps are ISO 8601 with an offset, e.g. 2013-07-01T05:15:00-04:00",
        )
    n = len(raw)
    reasons = _Reasons(n)
    keys = {}
    for col in ids:
        keys[col] = _parse_id(raw[col], types[col], col, reasons)
    key_frame = pd.DataFrame(keys, index=raw.index)
    threshold = target.threshold if label_column != LABEL else None
    y = _encode(task, raw[label_column], threshold, label_column, reasons)
    ok = reasons.ok()
    labelled = ok & y.notna().to_numpy()
    frame = key_frame.assign(**{Y: y})[labelled]
    # one request, two different labels: neither can be trusted; the same label twice is kept once
    repeated = frame[frame.duplicated(ids, keep=False)]
    duplicates = 0
    if len(repeated):
        per_key = repeated.groupby(ids, sort=False, dropna=False)[Y]
        conflict = per_key.transform("nunique") > 1
        times = per_key.transform("size")[conflict]
        count = pd.Series(0, index=raw.index)
        count[times.index] = times
        reasons.add(raw.index.isin(times.index), "the request appears {} times with different labels", count)
        frame = frame.drop(index=times.index)
        again = frame.duplicated(ids, keep="first")
        duplicates = int(again.sum())
        frame = frame[~again]
    bad = ~reasons.ok()
    quarantine = _quarantine(raw[bad], reasons.text[bad], Path(quarantine_dir), path) if bad.any() else None
    return Labels(
        comparable(frame.reset_index(drop=True), ids, types).assign(**{Y: frame[Y].to_numpy()}),
        ids,
        str(path),
        rows_read=n,
        rejected=int(bad.sum()),
        unlabelled=int((ok & ~y.notna().to_numpy()).sum()),
        duplicates=duplicates,
        quarantine_path=None if quarantine is None else str(quarantine),
    )


def _parse_id(values: pd.Series, kind: str, col: str, reasons: _Reasons) -> pd.Series:
    import pandas as pd

    if kind == "timestamp":
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out: pd.Series = values.dt.tz_convert("UTC")
            reasons.add(out.isna(), f"{col} is missing")
            return out
        if pd.api.types.is_datetime64_dtype(values.dtype):
            raise ValidationError(
                f"{col} holds timestamps without a time zone",
                fix="store UTC timestamps (time-zone aware) or ISO 8601 text with an offset, e.g. 2013-07-01T09:15:00Z",
            )
        text = _text(values)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        has_offset = text.str.contains(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", regex=True).fillna(False).astype(bool)
        reasons.add(text.isna(), f"{col} is missing")
        reasons.add(text.notna() & parsed.isna(), f"{col}={{}} is not an ISO 8601 time", text)
        reasons.add(parsed.notna() & ~has_offset, f"{col}={{}} has no UTC offset (add Z or e.g. -04:00)", text)
        return parsed.where(has_offset)
    if kind in ("int", "float"):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() | ((numbers % 1 != 0) if kind == "int" else False)
        reasons.add(bad, f"{col}={{}} is not {'a whole number' if kind == 'int' else 'a number'}", values)
        return numbers.astype("float64")
    text = _text(values)
    reasons.add(text.isna(), f"{col} is missing")
    return text


def _encode(task: Any, values: pd.Series, threshold: float | None, col: str, reasons: _Reasons) -> pd.Series:
    """Labels encoded as the training set holds them; values the task cannot use get a reason (not raise)."""
    import pandas as pd

    text = _text(values) if values.dtype == object or isinstance(values.dtype, pd.StringDtype) else values
    present = values.notna() & (text.notna() if text is not values else True)
    try:  # the usual case, all at once; one bad value sends it down the value-by-value path
        encoded = task.encode_labels(values.where(present), threshold=threshold, where=col)
        return pd.Series(encoded.to_numpy(dtype="float64"), index=values.index)
    except DataError:
        pass
    out = pd.Series(np.nan, index=values.index, dtype="float64")
    for value in pd.unique(values[present]):
        rows = (values == value).to_numpy() & present.to_numpy()
        try:
            code = task.encode_labels(pd.Series([value]), threshold=threshold, where=col).iloc[0]
        except DataError:
            reasons.add(pd.Series(rows, index=values.index), f"{col}={{}} is not a {task.name} label", values)
            continue
        out[rows] = code
    return out


class _Reasons:
    """Why each row is rejected ("" while it is not); messages are built for the rejected rows only."""

    def __init__(self, n: int) -> None:
        self.text = np.full(n, "", dtype=object)

    def add(self, mask: Any, message: str, values: pd.Series | None = None) -> None:
        """Reject rows where ``mask`` holds; ``{}`` in ``message`` shows the row's value from ``values``."""
        hit = np.flatnonzero(np.asarray(mask.fillna(False) if hasattr(mask, "fillna") else mask, dtype=bool))
        if not hit.size:
            return
        if values is None:
            why: Any = message
        else:
            prefix, _, suffix = message.partition("{}")
            why = prefix + values.iloc[hit].astype(str).to_numpy(dtype=object) + suffix
        now = self.text[hit]
        self.text[hit] = np.where(now == "", why, now + "; " + why)

    def ok(self) -> Any:
        return self.text == ""


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


def _text(values: pd.Series) -> pd.Series:
    """Stripped text, NA where missing or blank."""
    # Arrow-backed text: strip, compare and match run in C++ over the column, not per value in Python
    text: pd.Series = values.astype("string").astype("string[pyarrow]").str.strip()
    blank: pd.Series = text.mask(text.eq(""))
    return blank


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
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pd.DataFrame(out).to_parquet(tmp, index=False)
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


__all__ = ["LABEL", "Labels", "Y", "comparable", "id_types", "labels_from_snapshot", "load_labels"]
