"""The review queue: served predictions someone should look at, one Parquet file per window.

Two kinds of prediction are queued: low-certainty ones, whose probability is within
``monitoring.feedback.review_band`` of the decision threshold (the model could as well have
said the opposite), and out-of-distribution ones, whose inputs the model never saw the like
of in training (the serving layer logs why). Once labels arrive the queue carries them, so a
reviewer sees whether the doubtful call was right. Rows are in order of scheduled departure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from noria.errors import NotFoundError, ValidationError
from noria.monitoring.store import MonitoringStore
from noria.monitoring.window import read_window

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project

REVIEW_COLUMNS = [
    "request_id",
    "timestamp",
    "scheduled_departure",
    "carrier",
    "flight",
    "origin",
    "model_name",
    "model_version",
    "arm",
    "probability",
    "threshold",
    "decision",
    "reason",
    "late",
]


def review_frame(rows: pd.DataFrame, labels: pd.DataFrame | None, band: float) -> pd.DataFrame:
    """The rows of ``rows`` (served prediction-log rows) that need a review, with a reason each."""
    import numpy as np
    import pandas as pd

    from noria.monitoring._performance import key_frame
    from noria.monitoring.flights import KEY

    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REVIEW_COLUMNS})
    p = rows["probability"].astype("float64")
    threshold = rows["threshold"].astype("float64")
    ood = rows["ood"].astype("boolean").fillna(False).astype(bool)
    # strictly inside the band, in exact decimal terms: 0.45 is not "within 0.05 of 0.5", though in
    # binary floating point |0.45 - 0.5| is a hair below 0.05 while |0.55 - 0.5| is a hair above
    unsure = (p - threshold).abs() < band - 1e-12
    keep = (ood | unsure).to_numpy()
    part = rows[keep]
    p, threshold, ood, unsure = p[keep], threshold[keep], ood[keep], unsure[keep]

    low = "low certainty: p=" + p.round(3).astype(str) + f" within {band:g} of " + threshold.round(4).astype(str)
    why = part["ood_reasons"].str.join("; ") if "ood_reasons" in part.columns else None
    strange = pd.Series("out of distribution", index=part.index, dtype=object)
    if why is not None:
        strange = strange.where(why.fillna("") == "", "out of distribution: " + why.fillna(""))
    reason = np.where(unsure & ood, low + "; " + strange, np.where(unsure, low, strange))

    out = part[[c for c in REVIEW_COLUMNS[:-2] if c in part.columns]].copy()
    out["reason"] = reason
    out["late"] = pd.Series(pd.NA, index=out.index, dtype="boolean")
    if labels is not None and len(labels) and len(out):
        right = key_frame(labels).assign(late=labels["late"].astype("boolean").to_numpy())
        joined = key_frame(out).merge(right, on=KEY, how="left", sort=False)
        if len(joined) != len(out):
            raise ValidationError(
                "the labels hold the same flight more than once",
                fix="read labels with noria.monitoring.feedback.load_labels, which rejects or merges repeated flights",
            )
        out["late"] = joined["late"].to_numpy()
    result: pd.DataFrame = out.sort_values(["scheduled_departure", "request_id"], kind="stable").reset_index(drop=True)
    return result


def build_review_queue(project: Project, window: str, labels: pd.DataFrame | None = None) -> Path:
    """Write the review queue of ``window`` to the monitoring store and return its path.

    ``labels`` (as :func:`noria.monitoring.labels.load_labels` returns them) fill the ``late``
    column where known. What ``noria monitor feedback`` does for every window it scores.
    """
    rows = read_window(project, window)
    if rows.empty:
        raise NotFoundError(
            f"no served prediction in the log departs in {window}",
            fix="pick a window the service has scored flights for (noria monitor windows lists them)",
        )
    frame = review_frame(rows, labels, project.config.monitoring.feedback.review_band)
    return MonitoringStore.of(project).save_review(window, frame)


__all__ = ["REVIEW_COLUMNS", "build_review_queue", "review_frame"]
