"""A time-based split: train on one period, hold out a later one, validate on the end of training.

Random splits leak the future into training when the data drifts (real data does: a label's
rate can double from one month to the next). So the holdout is a later period, and the
validation slice used for early stopping and tuning is carved from the *end* of the training
period, the part closest to what the model will see next.

The periods and where validation starts are :mod:`noria.training.split_windows`; this module
checks the time and label columns, splits the rows and summarises each part's labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from noria.errors import ConfigError, DataError
from noria.tasks import BinaryTask, Task
from noria.training.split_windows import (
    DEFAULT_VALID_FRACTION,
    HasBounds,
    PeriodBound,
    PeriodLike,
    TimeWindow,
    check_order,
    labelled_window,
    time_window,
    valid_cut,
)
from noria.training.split_windows import fit_window as _fit_window
from noria.windows import Windows, in_period

# The time windows' names stay importable from here (noria.training.split.TimeWindow, time_window, ...).
__all__ = [
    "DEFAULT_VALID_FRACTION",
    "HasBounds",
    "PeriodBound",
    "PeriodLike",
    "Split",
    "SplitPlan",
    "TimeWindow",
    "check_columns",
    "label_stats",
    "plan_split",
    "sample_positions",
    "split_by_time",
    "time_window",
]

_BOTH_CLASSES_FIX = "check the label definition (column, threshold) and the period: a model needs both classes"


@dataclass
class Split:
    """Labelled rows of each part; ``fit`` + ``valid`` = ``train`` (valid is its latest slice)."""

    train: pd.DataFrame
    fit: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    label: str
    time_col: str
    train_window: TimeWindow
    valid_window: TimeWindow
    test_window: TimeWindow

    @property
    def fit_window(self) -> TimeWindow:
        return _fit_window(self.train_window, self.valid_window)

    # Rows inside a window whose label is missing (or not mature yet): dropped, but counted.
    dropped_unlabelled: dict[str, int] = field(default_factory=dict)

    task: Task | None = None

    def summary(self) -> dict[str, Any]:
        """Rows and label statistics of each part with its window, JSON-ready (model card, MLflow)."""
        labels = {name: getattr(self, name)[self.label].to_numpy() for name in ("train", "fit", "valid", "test")}
        windows = (self.train_window, self.valid_window, self.test_window)
        return _summary(self.label, self.time_col, self.task, labels, windows, self.dropped_unlabelled)


@dataclass(frozen=True)
class SplitPlan:
    """Where the parts of a time-based split are: positions of rows in the input, in time order.

    ``train`` and ``test`` hold row positions (stable time order: rows at the same moment keep
    their input order); the first ``fit_rows`` of ``train`` are the fit part, the rest the
    validation slice. This is what :func:`split_by_time` decides before it copies a row; the
    training pipeline's ``split`` step uses it to write the parts to files from a training set it
    reads column by column, never holding it whole as a frame.
    """

    train: np.ndarray
    test: np.ndarray
    fit_rows: int
    label: str
    time_col: str
    train_window: TimeWindow
    valid_window: TimeWindow
    test_window: TimeWindow
    dropped_unlabelled: dict[str, int]
    task: Task
    times: pd.Series  # every input row's time in UTC (positional index)
    values: np.ndarray  # every input row's label as float64 (NaN: unknown)

    @property
    def fit(self) -> np.ndarray:
        return self.train[: self.fit_rows]

    @property
    def valid(self) -> np.ndarray:
        return self.train[self.fit_rows :]

    def labels(self, positions: np.ndarray) -> np.ndarray:
        """The labels of rows at ``positions`` as a part stores them: int8 (binary), int16 (class
        index) or float64 (regression)."""
        return _stored_labels(self.values[positions], self.task)

    def summary(self) -> dict[str, Any]:
        """The same summary :meth:`Split.summary` gives for the split this plan describes."""
        labels = {name: self.labels(getattr(self, name)) for name in ("train", "fit", "valid", "test")}
        windows = (self.train_window, self.valid_window, self.test_window)
        return _summary(self.label, self.time_col, self.task, labels, windows, self.dropped_unlabelled)


def sample_positions(rows: int, size: int | None, seed: int) -> np.ndarray:
    """Positions of at most ``size`` of ``rows`` rows, a seeded sample in order: the rows that
    ``frame.sample(n=size, random_state=seed).sort_index()`` keeps of a frame of ``rows`` rows
    with a default index. Every row when ``size`` is None or not smaller."""
    if size is None or rows <= size:
        return np.arange(rows, dtype=np.int64)
    return np.sort(np.random.RandomState(seed).choice(rows, size=size, replace=False)).astype(np.int64)


def _summary(
    label: str,
    time_col: str,
    task: Task | None,
    labels: dict[str, np.ndarray],
    windows: tuple[TimeWindow, TimeWindow, TimeWindow],
    dropped: dict[str, int],
) -> dict[str, Any]:
    train_w, valid_w, test_w = windows
    parts: dict[str, Any] = {name: {"rows": len(y), **label_stats(y, task)} for name, y in labels.items()}
    parts["train"]["window"] = train_w.to_dict()
    parts["fit"]["window"] = _fit_window(train_w, valid_w).to_dict()
    parts["valid"]["window"] = valid_w.to_dict()
    parts["test"]["window"] = test_w.to_dict()
    return {
        "label": label,
        "time_column": time_col,
        "task": (task or BinaryTask()).name,
        "parts": parts,
        "dropped_unlabelled": dict(dropped),
    }


def _stored_labels(values: np.ndarray, task: Task) -> np.ndarray:
    if task.name == "regression":
        return values
    return values.astype("int8" if task.name == "binary" else "int16")


def label_stats(y: np.ndarray, task: Task | None) -> dict[str, Any]:
    """What a part's labels look like: the positive rate, the class shares, or mean and spread."""
    task = task or BinaryTask()
    y = np.asarray(y, dtype=np.float64)
    if task.name == "regression":
        return {
            "mean": float(y.mean()) if len(y) else None,
            "std": float(y.std()) if len(y) else None,
            "minimum": float(y.min()) if len(y) else None,
            "maximum": float(y.max()) if len(y) else None,
        }
    if task.name == "multiclass":
        counts = np.bincount(y.astype(np.int64), minlength=len(task.classes)) if len(y) else np.zeros(0)
        shares = counts / max(len(y), 1)
        return {
            "class_counts": {c: int(n) for c, n in zip(task.classes, counts, strict=False)},
            "class_shares": {c: float(v) for c, v in zip(task.classes, shares, strict=False)},
        }
    return {"positives": int(y.sum()), "positive_rate": float(y.mean()) if len(y) else 0.0}


def split_by_time(
    frame: pd.DataFrame,
    time_col: str,
    label: str,
    *,
    train: PeriodLike,
    test: PeriodLike,
    valid_fraction: float | None = None,
    valid_windows: int | None = None,
    windows: Windows | None = None,
    task: Task | None = None,
) -> Split:
    """Split ``frame`` into train (fit + valid) and test by time; fail early on impossible setups.

    ``train``/``test`` are ``(from, to)`` pairs or a ``noria.periods.Period``. With ``windows``
    (the project's :class:`noria.windows.Windows`) they are window labels and each row belongs to
    the window of its time; without, they are months (``YYYY-MM``), days (``YYYY-MM-DD``) or
    timestamps in UTC. Validation is the last ``valid_fraction`` of training rows (default 0.15)
    or the last ``valid_windows`` windows (months without ``windows``). Rows with a missing label
    are dropped and counted in ``dropped_unlabelled``. ``task`` (default binary) says what a
    label is and which parts a model cannot learn from.
    """
    check_columns(frame.columns, time_col, label)
    plan = plan_split(
        frame[time_col],
        frame[label],
        time_col,
        label,
        train=train,
        test=test,
        valid_fraction=valid_fraction,
        valid_windows=valid_windows,
        windows=windows,
        task=task,
    )
    parts: dict[str, pd.DataFrame] = {}
    for name in ("train", "test"):
        positions = getattr(plan, name)
        part = frame.iloc[positions].copy()
        # Positional assignment (.array / numpy): the frame's index may hold duplicates.
        part[time_col] = plan.times.iloc[positions].array
        part[label] = plan.labels(positions)
        parts[name] = part
    train_part = parts["train"]
    is_valid = np.arange(len(train_part)) >= plan.fit_rows
    return Split(
        train=train_part,
        fit=train_part.loc[~is_valid],
        valid=train_part.loc[is_valid],
        test=parts["test"],
        label=label,
        time_col=time_col,
        train_window=plan.train_window,
        valid_window=plan.valid_window,
        test_window=plan.test_window,
        dropped_unlabelled=plan.dropped_unlabelled,
        task=plan.task,
    )


def check_columns(columns: Iterable[Any], time_col: str, label: str) -> None:
    """The time and label columns are there, or a DataError naming the ones that are."""
    names = list(columns)
    for col in (time_col, label):
        if col not in names:
            raise DataError(
                f"the training frame has no column {col!r} (columns: {', '.join(map(str, names[:20]))})",
                fix="pass the right time/label column name, or add the column to the training set",
            )


def plan_split(
    time_values: pd.Series,
    label_values: pd.Series,
    time_col: str,
    label: str,
    *,
    train: PeriodLike,
    test: PeriodLike,
    valid_fraction: float | None = None,
    valid_windows: int | None = None,
    windows: Windows | None = None,
    task: Task | None = None,
) -> SplitPlan:
    """The split of :func:`split_by_time` from the time and label columns alone (same checks, same errors)."""
    task = task or BinaryTask()
    if valid_fraction is not None and valid_windows is not None:
        raise ConfigError(
            f"both valid_fraction ({valid_fraction}) and valid_windows ({valid_windows}) are set",
            fix="set only one of them",
        )
    times = _utc_times(time_values.reset_index(drop=True), time_col)
    y = _label_values(label_values.reset_index(drop=True), label, task)
    if windows is not None:
        labels = windows.labels(times)
        train_w = labelled_window(train, "train", windows, times, labels)
        test_w = labelled_window(test, "test", windows, times, labels)
        if test_w.first <= train_w.last:
            raise ConfigError(
                f"the test period ({test_w.label}) does not start after the train period ({train_w.label})",
                fix="hold out later windows than the ones trained on",
            )
        masks = {
            "train": in_period(labels, train_w.first, train_w.last),
            "test": in_period(labels, test_w.first, test_w.last),
        }
    else:
        train_w, test_w = time_window(train, "train"), time_window(test, "test")
        check_order(train_w, test_w)
        masks = {"train": train_w.contains(times).to_numpy(), "test": test_w.contains(times).to_numpy()}

    values = y.to_numpy(dtype=np.float64)
    clock = times.to_numpy(dtype="datetime64[ns]")
    positions: dict[str, np.ndarray] = {}
    dropped: dict[str, int] = {}
    for name, window in (("train", train_w), ("test", test_w)):
        inside = masks[name]
        labelled = inside & ~np.isnan(values)
        dropped[name] = int(inside.sum() - labelled.sum())
        rows = np.flatnonzero(labelled)
        positions[name] = rows[np.argsort(clock[rows], kind="stable")]
        _check_part(_stored_labels(values[positions[name]], task), name, window, label, times, task)

    train_times = times.iloc[positions["train"]].reset_index(drop=True)
    train_labels = windows.labels(train_times) if windows is not None else None
    cut = valid_cut(train_times, train_w, valid_fraction, valid_windows, train_labels)
    fit_rows = int((train_times < cut).sum())  # the times are sorted: validation is the tail
    valid_w = TimeWindow(cut, train_w.end, f"{cut:%Y-%m-%d %H:%M}..{train_w.label.split('..')[-1]}")
    for name, part in (("fit", positions["train"][:fit_rows]), ("valid", positions["train"][fit_rows:])):
        if len(part) == 0:
            raise DataError(
                f"the {name} part of the training period ({valid_w.label}) holds no rows",
                fix="change validation_fraction/validation_windows so that both parts hold enough rows",
            )
        try:
            task.check_training_labels(_stored_labels(values[part], task), f"{name} part of the training period")
        except DataError as exc:
            raise DataError(
                f"{exc.message} ({len(part)} rows from {valid_w.label})",
                fix="change validation_fraction/validation_windows so that both parts hold enough rows",
            ) from None
    return SplitPlan(
        train=positions["train"],
        test=positions["test"],
        fit_rows=fit_rows,
        label=label,
        time_col=time_col,
        train_window=train_w,
        valid_window=valid_w,
        test_window=test_w,
        dropped_unlabelled=dropped,
        task=task,
        times=times,
        values=values,
    )


def _utc_times(values: pd.Series, col: str) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise DataError(
            f"time column {col!r} has dtype {values.dtype}, not a timestamp",
            fix=f"convert it first, e.g. frame[{col!r}] = pd.to_datetime(frame[{col!r}], utc=True)",
        )
    if values.isna().any():
        raise DataError(
            f"time column {col!r} has {int(values.isna().sum())} missing values",
            fix="drop or repair rows without an event time before training",
        )
    utc: pd.Series = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
    return utc


def _label_values(values: pd.Series, col: str, task: Task) -> pd.Series:
    """The label as float64 (NaN = unknown), checked against what the task expects."""
    numeric = values.astype("float64") if pd.api.types.is_bool_dtype(values) else values
    if not pd.api.types.is_numeric_dtype(numeric):
        expected = {"binary": "0/1 (or booleans)", "multiclass": "class indexes 0..K-1", "regression": "numbers"}
        raise DataError(
            f"label column {col!r} has dtype {values.dtype}; expected {expected[task.name]}",
            fix=f"make {col!r} a numeric column, missing where the label is unknown",
        )
    numeric = pd.to_numeric(numeric, errors="coerce").astype("float64")
    if task.name == "binary":
        bad = numeric.notna() & ~numeric.isin([0.0, 1.0])
        hint = f"derive a binary label first (e.g. {col} = value > threshold)"
    elif task.name == "multiclass":
        bad = numeric.notna() & (~numeric.isin([float(i) for i in range(len(task.classes))]))
        hint = "encode classes as their index in model.target.classes"
    else:
        bad = numeric.notna() & ~np.isfinite(numeric)
        hint = "remove infinite labels"
    if bad.any():
        examples = sorted(set(numeric[bad].head(5).tolist()))
        raise DataError(f"label column {col!r} holds values the {task.name} task cannot use, e.g. {examples}", fix=hint)
    return numeric


def _check_part(values: np.ndarray, name: str, window: TimeWindow, label: str, times: pd.Series, task: Task) -> None:
    span = f"data spans {times.min().isoformat()} to {times.max().isoformat()}" if len(times) else "no data"
    if len(values) == 0:
        raise DataError(
            f"the {name} period {window.label} holds no labelled rows ({span})",
            fix=f"choose a {name} period inside the data, or load the missing months",
        )
    if task.name == "binary":
        positives = int(values.sum(dtype=np.int64))
        if positives in (0, len(values)):
            which = "no positive" if positives == 0 else "only positive"
            raise DataError(
                f"the {name} set ({window.label}, {len(values)} rows) has {which} labels ({label} == 1)",
                fix=_BOTH_CLASSES_FIX,
            )
        return
    task.check_training_labels(values, f"{name} set ({window.label})")
