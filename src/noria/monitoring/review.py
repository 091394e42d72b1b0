"""The review queue: served predictions someone should look at, one Parquet file per window.

Two kinds of prediction are queued: low-certainty ones (a binary model's probability within
``monitoring.feedback.review_band`` of the decision threshold; a multi-class model's two likeliest
classes within the band of each other: the model could as well have said the other), and
out-of-distribution ones, whose inputs the model never saw the like of in training (the serving
layer logs why). A regression model's predictions are queued when out of distribution. Once
labels arrive the queue carries them (``label``, in the task's terms: true/false, the class, the
number), so a reviewer sees whether the doubtful call was right. Rows are in order of event time;
the columns are the request (id, times, ``key.<id>`` event key), who served it, the task's answer
(:data:`TASK_COLUMNS`), the reason and the label (:func:`review_columns`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import NotFoundError, ValidationError
from noria.monitoring.labels import Y, decode_labels
from noria.monitoring.store import MonitoringStore
from noria.monitoring.window import read_window

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.monitoring.labels import Labels
    from noria.tasks import Task

# Every queue: the request, when it was served and for which event, who served it; then the
# columns of the task's answer (TASK_COLUMNS), the reason it is queued and its label once known.
REVIEW_COLUMNS = ["request_id", "timestamp", "event_time", "model_name", "model_version", "arm", "reason", "label"]
TASK_COLUMNS = {
    "binary": ["score", "threshold", "decision"],
    "multiclass": ["predicted_class", "score", "probabilities"],
    "regression": ["score"],
}


def review_columns(task: Task, keys: list[str]) -> list[str]:
    """The columns of a review queue: ``REVIEW_COLUMNS`` with the ``key.<id>`` columns after the
    event time and the task's answer before the reason."""
    head, tail = REVIEW_COLUMNS[:3], REVIEW_COLUMNS[3:6]
    return [*head, *keys, *tail, *TASK_COLUMNS[task.name], *REVIEW_COLUMNS[6:]]


def review_frame(
    rows: pd.DataFrame, labels: Labels | None, task: Task, band: float, types: dict[str, str] | None = None
) -> pd.DataFrame:
    """The rows of ``rows`` (served prediction-log rows) that need a review, with a reason each."""
    import numpy as np
    import pandas as pd

    from noria.monitoring._performance import KEY_PREFIX, log_keys, probability_matrix

    keys = [c for c in rows.columns if c.startswith(KEY_PREFIX)]
    columns = review_columns(task, keys)
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    ood = rows["ood"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    score = pd.to_numeric(rows["score"], errors="coerce").astype("float64")
    if task.name == "binary":
        threshold = pd.to_numeric(rows["threshold"], errors="coerce").astype("float64")
        # strictly inside the band, in exact decimal terms: 0.45 is not "within 0.05 of 0.5", though in
        # binary floating point |0.45 - 0.5| is a hair below 0.05 while |0.55 - 0.5| is a hair above
        unsure = ((score - threshold).abs() < band - 1e-12).to_numpy()
        low = (
            "low certainty: p=" + score.round(3).astype(str) + f" within {band:g} of " + threshold.round(4).astype(str)
        )
    elif task.name == "multiclass":
        probabilities = probability_matrix(rows["probabilities"], len(task.classes))
        top = np.sort(probabilities, axis=1)[:, -2:]
        margin = pd.Series(top[:, 1] - top[:, 0], index=rows.index)
        unsure = (margin < band - 1e-12).to_numpy()
        low = "low certainty: the two likeliest classes are " + margin.round(3).astype(str) + " apart"
    else:
        unsure = np.zeros(len(rows), dtype=bool)
        low = pd.Series("", index=rows.index)
    keep = ood | unsure
    part = rows[keep]
    ood, unsure, doubt = ood[keep], unsure[keep], low[keep].to_numpy(dtype=object)
    strange = np.full(len(part), "out of distribution", dtype=object)
    if "ood_reasons" in part.columns:
        why = part["ood_reasons"].str.join("; ").fillna("").to_numpy(dtype=object)
        strange = np.where(why == "", strange, "out of distribution: " + why)
    reason = np.where(unsure & ood, doubt + "; " + strange, np.where(unsure, doubt, strange))

    out = pd.DataFrame({c: part[c] if c in part.columns else None for c in columns[:-2]}, index=part.index)
    out["reason"] = reason
    out["label"] = pd.Series(None, index=out.index, dtype=object)
    if labels is not None and len(labels.frame) and len(out):
        right = labels.frame[[*labels.ids, Y]]
        joined = log_keys(part, labels, types).merge(right, on=labels.ids, how="left", sort=False)
        if len(joined) != len(out):
            raise ValidationError(
                "the labels hold the same request more than once",
                fix="read labels with noria.monitoring.labels (load_labels, labels_from_snapshot), which reject or"
                " merge repeated requests",
            )
        out["label"] = decode_labels(task, joined[Y].to_numpy(dtype="float64"))
    result: pd.DataFrame = out.sort_values(["event_time", "request_id"], kind="stable").reset_index(drop=True)
    return result


def build_review_queue(project: Project, window: str, labels: Labels | None = None) -> Path:
    """Write the review queue of ``window`` to the monitoring store and return its path.

    ``labels`` (:mod:`noria.monitoring.labels`) fill the ``label`` column where known. What
    ``noria monitor feedback`` does for every window it scores.
    """
    from noria.monitoring.labels import id_types
    from noria.tasks import task_of

    rows = read_window(project, window)
    if rows.empty:
        raise NotFoundError(
            f"no served prediction in the log falls in window {window}",
            fix="pick a window the service has scored requests for (noria monitor windows lists them)",
        )
    _, types = id_types(project)
    frame = review_frame(rows, labels, task_of(project), project.config.monitoring.feedback.review_band, types)
    return MonitoringStore.of(project).save_review(window, frame)


def review_rows(
    project: Project, window: str, *, reason: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    """The review queue of ``window`` as JSON-ready rows (``reason``: only rows whose reason contains
    it; ``limit``: at most that many), with each row's marks (:func:`mark_review`) merged in."""
    import json

    import pandas as pd

    store = MonitoringStore.of(project)
    path = store.review_path(window)
    if not path.is_file():
        raise NotFoundError(
            f"no review queue for window {window}",
            fix="noria monitor feedback writes one per scored window; noria monitor show lists them",
        )
    frame = pd.read_parquet(path)
    total = len(frame)
    if reason:
        frame = frame[frame["reason"].astype(str).str.contains(reason, regex=False)]
    matching = len(frame)
    if limit:
        frame = frame.head(limit)
    marks = latest_marks(project, window)
    rows = json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))
    for row in rows:
        row["mark"] = marks.get(str(row.get("request_id")))
    return {"window": window, "total": total, "matching": matching, "rows": rows}


VERDICTS = ("right", "wrong", "unclear")  # what a reviewer says of a queued prediction


def marks_path(project: Project) -> Path:
    return MonitoringStore.of(project).root / "review" / "marks.jsonl"


def mark_review(project: Project, window: str, request_id: str, verdict: str, note: str = "") -> dict[str, Any]:
    """Record a reviewer's verdict on one queued prediction (one appended JSON line, who and when)
    and return the record; the newest mark of a request is the one shown."""
    import json
    import os

    from noria.monitoring.store import now_iso
    from noria.registry.records import current_actor

    if verdict not in VERDICTS:
        raise ValidationError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}", fix="e.g. --verdict wrong")
    queue = review_rows(project, window)
    if not any(str(r.get("request_id")) == request_id for r in queue["rows"]):
        raise NotFoundError(
            f"request {request_id!r} is not in the review queue of {window}",
            fix=f"see the queue with: noria monitor review --window {window}",
        )
    record = {
        "at": now_iso(),
        "by": current_actor(),
        "window": window,
        "request_id": request_id,
        "verdict": verdict,
        "note": note,
    }
    store = MonitoringStore.of(project)
    path = store.root / "review" / "marks.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))  # one write: a line is whole or absent
    finally:
        os.close(fd)
    store.publish(path)
    return record


def latest_marks(project: Project, window: str) -> dict[str, dict[str, Any]]:
    """The newest mark of each request of ``window`` (a torn last line from a crash is skipped)."""
    import json

    path = marks_path(project)
    found: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("window") == window:
            found[str(record.get("request_id"))] = record
    return found


__all__ = [
    "REVIEW_COLUMNS",
    "TASK_COLUMNS",
    "VERDICTS",
    "build_review_queue",
    "latest_marks",
    "mark_review",
    "marks_path",
    "review_columns",
    "review_frame",
    "review_rows",
]
