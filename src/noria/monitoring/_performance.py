"""The arithmetic of delayed-label performance: join labels to served predictions, then score them.

Everything is column-wise. Labels join the prediction log's rows on the event key (the
``key.<id>`` columns the log writer computed with the project's own code). Each model version
and arm is then scored with :func:`noria.task_metrics.task_metrics`, the very function the
training holdout uses, so a live metric and its holdout value are the same computation. Daily
figures come from one ``groupby`` over the joined rows: counts and the task's primary metric
(binary: the ROC AUC as the Mann-Whitney statistic from within-day average ranks, which is what
scikit-learn computes, ties included; multi-class: log loss and accuracy; regression: RMSE and
MAE), plus precision and recall for binary decisions.

Binary definitions (``labelled`` rows are the predictions whose request has a label):
``precision`` / ``recall``: of the labelled predictions the service flagged positive (its logged
``decision`` at its logged threshold), the share that were positive; of the positives, the share
flagged. ``flagged_rate``: the share of all served predictions flagged (labels not needed).
``base_rate``: the share of labelled requests that were positive.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from noria.errors import ValidationError
from noria.monitoring.labels import Labels, Y, comparable
from noria.task_metrics import reliability, task_metrics

if TYPE_CHECKING:
    from noria.tasks import Task

GROUP = ["model_name", "model_version", "arm"]
KEY_PREFIX = "key."
# Kept whatever the number of labels: they need no label, or count them.
COUNTS = ("rows", "predictions", "labelled", "unscored", "flagged_rate")


def log_keys(rows: pd.DataFrame, labels: Labels, types: dict[str, str] | None = None) -> pd.DataFrame:
    """The log rows' event keys under the ids' own names, in the labels' comparable form."""
    missing = [c for c in labels.ids if KEY_PREFIX + c not in rows.columns]
    if missing:
        raise ValidationError(
            f"the prediction log has no event key column {', '.join(KEY_PREFIX + c for c in missing)}"
            f" (the request ids, features.request.ids: {', '.join(labels.ids)})",
            fix="serve with this version of Noria: the log's writer records the request ids of each prediction",
        )
    renamed = rows[[KEY_PREFIX + c for c in labels.ids]].rename(columns=lambda c: c[len(KEY_PREFIX) :])
    return comparable(renamed, labels.ids, types)


def probability_matrix(values: pd.Series, k: int) -> np.ndarray:
    """The logged class probabilities of multi-class rows as an n x k array (NaN rows where missing)."""
    out = np.full((len(values), k), np.nan)
    if not len(values):
        return out
    given = values.notna().to_numpy()
    try:
        stacked = np.array(values[given].tolist(), dtype=np.float64)
    except ValueError:  # rows of different lengths: keep the rows of k values
        lengths = np.array([len(v) for v in values[given]])
        right = np.flatnonzero(given)[lengths == k]
        if len(right):
            out[right] = np.array(values.iloc[right].tolist(), dtype=np.float64)
        return out
    if stacked.ndim == 2 and stacked.shape[1] == k:
        out[given] = stacked
    return out


def join_labels(
    rows: pd.DataFrame, labels: Labels, task: Task, types: dict[str, str] | None = None, timezone: str = "UTC"
) -> tuple[pd.DataFrame, np.ndarray]:
    """Served rows as ``GROUP`` + ``day``, the prediction columns and ``y`` (NaN without a label),
    and the positions in ``labels.frame`` of the labels that matched a row.

    ``day`` is the local day of the event time in ``timezone`` (the windows' zone). A row
    without a usable prediction (no score, or no probabilities of every class) is ``unscored``:
    it is counted, and its label does not enter the metrics.
    """
    right = labels.frame[[*labels.ids, Y]].assign(label_row=np.arange(len(labels.frame), dtype=np.int64))
    left = log_keys(rows, labels, types)
    merged = left.merge(right, on=labels.ids, how="left", sort=False)
    if len(merged) != len(rows):  # cheaper than merge(validate=...): a repeated key adds rows
        raise ValidationError(
            "the labels hold the same request more than once",
            fix="read labels with noria.monitoring.labels (load_labels, labels_from_snapshot), which reject or"
            " merge repeated requests",
        )
    found = merged["label_row"].dropna().to_numpy(dtype=np.int64)
    event = pd.to_datetime(rows["event_time"], utc=True)
    local = event.dt.tz_convert(timezone).dt.tz_localize(None).dt.floor("D")
    score = pd.to_numeric(rows["score"], errors="coerce").astype("float64").to_numpy()
    y = merged[Y].to_numpy(dtype="float64")
    joined = pd.DataFrame(
        {
            "model_name": rows["model_name"].astype(str).to_numpy(),
            "model_version": rows["model_version"].astype("int64").to_numpy(),
            "arm": rows["arm"].fillna("champion").astype(str).to_numpy(),
            "day": local.to_numpy(dtype="datetime64[ns]"),
            "score": score,
        }
    )
    scored = np.isfinite(score)
    if task.name == "binary":
        threshold = pd.to_numeric(rows["threshold"], errors="coerce").astype("float64").to_numpy()
        decision = rows["decision"].astype("boolean")
        flagged = np.where(decision.isna().to_numpy(), score >= threshold, decision.fillna(False).to_numpy(dtype=bool))
        joined["threshold"] = threshold
        joined["flagged"] = flagged
    elif task.name == "multiclass":
        probabilities = probability_matrix(rows["probabilities"], len(task.classes))
        scored = np.isfinite(probabilities).all(axis=1)
        for j in range(len(task.classes)):
            joined[f"p{j}"] = probabilities[:, j]
    joined["unscored"] = ~scored
    joined["y"] = np.where(scored, y, np.nan)
    return joined, np.unique(found)


def predictions(joined: pd.DataFrame, task: Task) -> np.ndarray:
    """The prediction columns of joined rows as :func:`task_metrics` takes them."""
    if task.name == "multiclass":
        return joined[[f"p{j}" for j in range(len(task.classes))]].to_numpy(dtype=np.float64)
    return joined["score"].to_numpy(dtype=np.float64)


def summarise(
    part: pd.DataFrame, task: Task, min_labels: int, bins: int
) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    """Metrics of one model version and arm over a window, and its reliability bins.

    With fewer than ``min_labels`` labelled rows only the counts (and the flagged rate, which
    needs no label) are given.
    """
    lab = part[part["y"].notna()]
    base: dict[str, float | None] = {
        "predictions": float(len(part)),
        "labelled": float(len(lab)),
        "unscored": float(part["unscored"].sum()) if "unscored" in part.columns else 0.0,
    }
    if task.name == "binary":
        base["flagged_rate"] = float(part["flagged"].mean()) if len(part) else None
    if len(lab) == 0:
        return base, []
    y = lab["y"].to_numpy(dtype=np.float64)
    pred = predictions(lab, task)
    if task.name == "binary":
        threshold = float(lab["threshold"].dropna().mode().iloc[0]) if lab["threshold"].notna().any() else 0.5
        metrics = task_metrics(task, y, pred, threshold=threshold, min_rows=min_labels)
        flagged = lab["flagged"].to_numpy(dtype=bool)
        hits = int((flagged & (y == 1)).sum())
        # precision/recall from the decisions the service logged (its threshold at the time)
        metrics["precision"] = hits / int(flagged.sum()) if flagged.any() else None
        metrics["recall"] = hits / int(y.sum()) if y.any() else None
        calibration, metrics["ece"] = reliability(y, pred, bins)
    elif task.name == "multiclass":
        metrics = task_metrics(task, y, pred)
        correct = (pred.argmax(axis=1) == y.astype(np.int64)).astype(np.float64)
        calibration, metrics["ece"] = reliability(correct, pred.max(axis=1), bins)
        metrics |= {f"share_{c}": float((y == j).mean()) for j, c in enumerate(task.classes)}
    else:
        metrics = task_metrics(task, y, pred)
        calibration = []
    if len(lab) < min_labels:  # too few labels to rank or score: counts only
        metrics = {k: (v if k in COUNTS else None) for k, v in metrics.items()}
        calibration = []
    return metrics | base, calibration


def daily(joined: pd.DataFrame, task: Task, min_labels: int) -> dict[tuple[Hashable, ...], list[dict[str, Any]]]:
    """Per ``GROUP`` value, one dict per (local) day: counts and the task's daily figures."""
    # group by two integers (group number, day number): much cheaper than three text columns and a timestamp
    group = joined.groupby(GROUP, sort=True)
    numbers = group.ngroup().to_numpy()
    first = pd.Series(np.arange(len(joined))).groupby(numbers).first()
    names = {
        int(g): tuple(_plain(v) for v in joined[GROUP].iloc[int(i)])
        for g, i in zip(first.index.to_numpy(), first.to_numpy(), strict=True)
    }
    frame = pd.DataFrame(
        {
            "g": numbers,
            "d": joined["day"].to_numpy(dtype="datetime64[D]").astype(np.int64),
            "s": joined["score"].to_numpy(),
            "y": joined["y"].to_numpy(),
        }
    )
    keys = ["g", "d"]
    table = frame.groupby(keys, sort=True).agg(predictions=("s", "size"), mean_score=("s", "mean"))
    lab = frame[frame["y"].notna()]
    if task.name == "binary":
        lab = lab.assign(flagged=joined.loc[lab.index, "flagged"].to_numpy())
        ranks = lab.groupby(keys, sort=False)["s"].rank(method="average")
        lab = lab.assign(r1=ranks * lab["y"], tp=lab["flagged"] & (lab["y"] == 1.0), fl=lab["flagged"])
        counts = lab.groupby(keys, sort=True).agg(
            labelled=("y", "size"), positives=("y", "sum"), r1=("r1", "sum"), tp=("tp", "sum"), fl=("fl", "sum")
        )
        table = table.join(counts, how="left").fillna(dict.fromkeys(counts.columns, 0))
        n, n1 = table["labelled"], table["positives"]
        n0 = n - n1
        with np.errstate(divide="ignore", invalid="ignore"):
            # Mann-Whitney: the AUC is the share of (positive, negative) pairs ranked the right way, ties half
            auc = (table["r1"] - n1 * (n1 + 1) / 2) / (n1 * n0)
            table["roc_auc"] = auc.where((n >= min_labels) & (n1 > 0) & (n0 > 0))
            table["precision"] = (table["tp"] / table["fl"]).where(table["fl"] > 0)
            table["recall"] = (table["tp"] / n1).where(n1 > 0)
            table["base_rate"] = (n1 / n).where(n > 0)
        columns = ["predictions", "labelled", "positives", "roc_auc", "precision", "recall", "base_rate", "mean_score"]
    elif task.name == "multiclass":
        k = len(task.classes)
        probs = joined.loc[lab.index, [f"p{j}" for j in range(k)]].to_numpy(dtype=np.float64)
        codes = lab["y"].to_numpy().astype(np.int64)
        true_p = probs[np.arange(len(codes)), codes] if len(codes) else np.zeros(0)
        lab = lab.assign(
            nll=-np.log(np.clip(true_p, 1e-15, 1.0)), hit=(probs.argmax(axis=1) == codes) if len(codes) else []
        )
        counts = lab.groupby(keys, sort=True).agg(
            labelled=("y", "size"), log_loss=("nll", "mean"), accuracy=("hit", "mean")
        )
        table = table.join(counts, how="left").fillna({"labelled": 0})
        enough = table["labelled"] >= min_labels
        table["log_loss"] = table["log_loss"].where(enough)
        table["accuracy"] = table["accuracy"].where(enough)
        columns = ["predictions", "labelled", "log_loss", "accuracy", "mean_score"]
    else:
        lab = lab.assign(se=(lab["s"] - lab["y"]) ** 2, ae=(lab["s"] - lab["y"]).abs())
        counts = lab.groupby(keys, sort=True).agg(labelled=("y", "size"), mse=("se", "mean"), mae=("ae", "mean"))
        table = table.join(counts, how="left").fillna({"labelled": 0})
        enough = table["labelled"] >= min_labels
        table["rmse"] = np.sqrt(table["mse"]).where(enough)
        table["mae"] = table["mae"].where(enough)
        columns = ["predictions", "labelled", "rmse", "mae", "mean_score"]
    table = table[columns].reset_index()
    table["day"] = table["d"].to_numpy().astype("datetime64[D]").astype(str)
    out: dict[tuple[Hashable, ...], list[dict[str, Any]]] = {}
    for g, part in table.groupby("g", sort=True):
        out[names[int(str(g))]] = [_clean(r) for r in part[["day", *columns]].to_dict("records")]
    return out


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if item is not None else value


def _clean(record: dict[Hashable, Any]) -> dict[str, Any]:
    """A JSON-ready day: ints as int, NaN as None."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, float | np.floating):
            out[str(key)] = None if np.isnan(value) else float(value)
        elif isinstance(value, np.integer):
            out[str(key)] = int(value)
        else:
            out[str(key)] = value
    for key in ("predictions", "labelled", "positives"):
        if key in out and out[key] is not None:
            out[key] = int(out[key])
    return out


__all__ = ["GROUP", "daily", "join_labels", "log_keys", "predictions", "probability_matrix", "summarise"]
