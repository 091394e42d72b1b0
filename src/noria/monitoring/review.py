"""The review queue: served predictions someone should look at, one Parquet file per window.

Two kinds of prediction are queued: low-certainty ones (a binary model's probability within
``monitoring.feedback.review_band`` of the decision threshold; a multi-class model's two likeliest
classes within the band of each other: the model could as well have said the other), and
out-of-distribution ones, whose inputs the model never saw the like of in training (the serving
layer logs why). A regression model's predictions are queued when out of distribution. Once
labels arrive the queue carries them (``label``, in the task's terms), so a reviewer sees whether
the doubtful call was right. Rows are in order of event time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import NotFoundError, ValidationError
from noria.monitoring.store import MonitoringStore
from noria.monitoring.window import read_window

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.monitoring.labels import Labels
    from noria.tasks import Task

REVIEW_COLUMNS = [
    "request_id",
    "timestamp",
    "event_time",
    "model_name",
    "model_version",
    "arm",
    "score",
    "threshold",
    "decision",
    "predicted_class",
    "reason",
    "label",
]


def review_frame(
    rows: pd.DataFrame, labels: Labels | None, task: Task, band: float, types: dict[str, str] | None = None
) -> pd.DataFrame:
    """The rows of ``rows`` (served prediction-log rows) that need a review, with a reason each."""
    import numpy as np
    import pandas as pd

    from noria.monitoring._performance import KEY_PREFIX, log_keys

    keys = [c for c in rows.columns if c.startswith(KEY_PREFIX)]
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*REVIEW_COLUMNS[:3], *keys, *REVIEW_COLUMNS[3:]]})
    ood = rows["ood"].astype("boolean").fillna(False).astype(bool)
    score = rows["score"].astype("float64")
    if task.name == "binary":
        threshold = rows["threshold"].astype("float64")
        # strictly inside the band, in exact decimal terms: 0.45 is not "within 0.05 of 0.5", though in
        # binary floating point |0.45 - 0.5| is a hair below 0.05 while |0.55 - 0.5| is a hair above
        unsure = (score - threshold).abs() < band - 1e-12
        low = (
            "low certainty: p=" + score.round(3).astype(str) + f" within {band:g} of " + threshold.round(4).astype(str)
        )
    elif task.name == "multiclass":
        top2 = np.array([_margin(v) for v in rows["probabilities"]], dtype=np.float64)
        unsure = pd.Series(top2 < band - 1e-12, index=rows.index)
        low = pd.Series(
            "low certainty: the two likeliest classes are "
            + pd.Series(top2, index=rows.index).round(3).astype(str)
            + " apart",
            index=rows.index,
        )
    else:
        unsure = pd.Series(False, index=rows.index)
        low = pd.Series("", index=rows.index)
    keep = (ood | unsure).to_numpy()
    part = rows[keep]
    ood, unsure, low = ood[keep], unsure[keep], low[keep]
    why = part["ood_reasons"].str.join("; ") if "ood_reasons" in part.columns else None
    strange = pd.Series("out of distribution", index=part.index, dtype=object)
    if why is not None:
        strange = strange.where(why.fillna("") == "", "out of distribution: " + why.fillna(""))
    reason = np.where(unsure & ood, low + "; " + strange, np.where(unsure, low, strange))

    wanted = [*REVIEW_COLUMNS[:3], *keys, *REVIEW_COLUMNS[3:-2]]
    out = part[[c for c in wanted if c in part.columns]].copy()
    out["reason"] = reason
    out["label"] = pd.Series(pd.NA, index=out.index, dtype=object)
    if labels is not None and len(labels.frame) and len(out):
        right = labels.frame
        joined = log_keys(part, labels, types).merge(right, on=labels.ids, how="left", sort=False)
        if len(joined) != len(out):
            raise ValidationError(
                "the labels hold the same request more than once",
                fix="read labels with noria.monitoring.labels.load_labels, which rejects or merges repeated requests",
            )
        out["label"] = [_decode(task, v) for v in joined["y"].to_numpy()]
    result: pd.DataFrame = out.sort_values(["event_time", "request_id"], kind="stable").reset_index(drop=True)
    return result


def _margin(probabilities: Any) -> float:
    import numpy as np

    if probabilities is None or len(probabilities) < 2:
        return float("inf")
    top = np.sort(np.asarray(probabilities, dtype=np.float64))[-2:]
    return float(top[1] - top[0])


def _decode(task: Task, value: float) -> Any:
    """A label as a person reads it: true/false, the class name, the number."""
    if value != value:  # NaN: no label (yet)
        return None
    if task.name == "binary":
        return bool(value)
    if task.name == "multiclass":
        return task.classes[int(value)]
    return float(value)


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


__all__ = ["REVIEW_COLUMNS", "build_review_queue", "review_frame"]
