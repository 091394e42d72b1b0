"""The arithmetic of delayed-label performance: join labels to served predictions, then score them.

Everything is column-wise. Daily figures come from one ``groupby`` over the joined rows
(the daily ROC AUC is the Mann-Whitney statistic from within-day average ranks, which is
what scikit-learn's ``roc_auc_score`` computes, ties included); monthly ROC AUC, PR AUC and
Brier score call scikit-learn once per model version and arm (precision and recall are two
counts each, taken directly).

Definitions (``labelled`` rows are the predictions whose flight has a label):

- ``precision`` / ``recall``: of the labelled predictions the service flagged late (its
  logged ``decision`` at its logged threshold), the share that were late; of the late
  flights, the share flagged. ``kpi_delayed_flagged`` is the recall under its business name:
  the share of delayed flights passengers were warned about in advance.
- ``flagged_rate``: the share of all served predictions flagged (labels not needed).
- ``base_rate``: the share of labelled flights that were late.
- ``ece``: the row-weighted mean gap between observed late rate and mean predicted
  probability over equal-width bins of ``[0, 1]`` (the same bins as training's calibration).
- ROC AUC and PR AUC are None with fewer than ``min_labels`` labels or only one class.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from noria.errors import ValidationError
from noria.monitoring.flights import KEY

GROUP = ["model_name", "model_version", "arm"]


@dataclass(frozen=True)
class PerformanceMetrics:
    roc_auc: float | None
    pr_auc: float | None
    precision: float | None
    recall: float | None
    brier: float | None
    ece: float | None
    base_rate: float | None
    flagged_rate: float | None

    @property
    def kpi_delayed_flagged(self) -> float | None:
        """The share of delayed flights flagged in advance (the recall)."""
        return self.recall

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self) | {"kpi_delayed_flagged": self.recall}


def key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The flight key in one comparable form: text, nullable int, text, UTC microseconds."""
    departs = frame["scheduled_departure"]
    if isinstance(departs.dtype, pd.DatetimeTZDtype):  # the usual case: no parsing, no per-value work
        departs = departs.dt.tz_convert("UTC")
    else:
        departs = pd.to_datetime(departs, utc=True, cache=False)
    return pd.DataFrame(
        {
            "carrier": frame["carrier"].astype("string"),
            "flight": pd.to_numeric(frame["flight"]).astype("Int64"),
            "origin": frame["origin"].astype("string"),
            "scheduled_departure": departs.dt.as_unit("us"),
        },
        index=frame.index,
    )


def join_labels(rows: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Served rows as ``GROUP`` + ``day``, ``p``, ``flagged``, ``y`` (1.0 / 0.0, NaN without a label),
    and how many labels matched no served row."""
    right = key_frame(labels).assign(
        y=labels["late"].astype("float64").to_numpy(), label_row=np.arange(len(labels), dtype=np.int64)
    )
    merged = key_frame(rows).merge(right, on=KEY, how="left", sort=False)
    if len(merged) != len(rows):  # cheaper than merge(validate=...): a repeated key adds rows
        raise ValidationError(
            "the labels hold the same flight more than once",
            fix="read labels with noria.monitoring.feedback.load_labels, which rejects or merges repeated flights",
        )
    unmatched = len(labels) - int(merged["label_row"].nunique(dropna=True))
    p = rows["probability"].astype("float64").to_numpy()
    threshold = rows["threshold"].astype("float64").to_numpy()
    decision = rows["decision"].astype("boolean")
    flagged = np.where(decision.isna().to_numpy(), p >= threshold, decision.fillna(False).to_numpy(dtype=bool))
    joined = pd.DataFrame(
        {
            "model_name": rows["model_name"].astype(str).to_numpy(),
            "model_version": rows["model_version"].astype("int64").to_numpy(),
            "arm": rows["arm"].fillna("champion").astype(str).to_numpy(),
            "day": merged["scheduled_departure"].dt.floor("D").array,  # tz-aware, no per-value objects
            "threshold": threshold,
            "p": p,
            "flagged": flagged,
            "y": merged["y"].to_numpy(dtype="float64"),
        }
    )
    return joined, unmatched


def daily(joined: pd.DataFrame, min_labels: int) -> dict[tuple[Hashable, ...], list[dict[str, Any]]]:
    """Per ``GROUP`` value, one dict per day: counts, ROC AUC, precision, recall, base rate, mean score."""
    # group by two integers (group number, day number): much cheaper than three text columns and a timestamp
    group = joined.groupby(GROUP, sort=True)
    names = list(group.groups)
    frame = pd.DataFrame(
        {
            "g": group.ngroup().to_numpy(),
            "d": joined["day"].to_numpy(dtype="datetime64[D]").astype(np.int64),
            "p": joined["p"].to_numpy(),
            "y": joined["y"].to_numpy(),
            "flagged": joined["flagged"].to_numpy(),
        }
    )
    keys = ["g", "d"]
    table = frame.groupby(keys, sort=True).agg(predictions=("p", "size"), mean_score=("p", "mean"))
    lab = frame[frame["y"].notna()]
    ranks = lab.groupby(keys, sort=False)["p"].rank(method="average")
    lab = lab.assign(r1=ranks * lab["y"], tp=lab["flagged"] & (lab["y"] == 1.0), fl=lab["flagged"])
    counts = lab.groupby(keys, sort=True).agg(
        labelled=("y", "size"), positives=("y", "sum"), r1=("r1", "sum"), tp=("tp", "sum"), fl=("fl", "sum")
    )
    table = table.join(counts, how="left").fillna(dict.fromkeys(counts.columns, 0))
    n, n1 = table["labelled"], table["positives"]
    n0 = n - n1
    with np.errstate(divide="ignore", invalid="ignore"):
        # Mann-Whitney: the AUC is the share of (late, on time) pairs ranked the right way, ties counting half
        auc = (table["r1"] - n1 * (n1 + 1) / 2) / (n1 * n0)
        table["roc_auc"] = auc.where((n >= min_labels) & (n1 > 0) & (n0 > 0))
        table["precision"] = (table["tp"] / table["fl"]).where(table["fl"] > 0)
        table["recall"] = (table["tp"] / n1).where(n1 > 0)
        table["base_rate"] = (n1 / n).where(n > 0)
    table["kpi_delayed_flagged"] = table["recall"]
    columns = ["predictions", "labelled", "positives", "roc_auc", "precision", "recall"]
    columns += ["kpi_delayed_flagged", "base_rate", "mean_score"]
    table = table[columns].reset_index()
    table["day"] = table["d"].to_numpy().astype("datetime64[D]").astype(str)
    out: dict[tuple[Hashable, ...], list[dict[str, Any]]] = {}
    for g, part in table.groupby("g", sort=True):
        name = names[int(str(g))]
        key = tuple(name) if isinstance(name, tuple) else (name,)
        out[key] = [_clean(r) for r in part[["day", *columns]].to_dict("records")]
    return out


def summarise(part: pd.DataFrame, min_labels: int, bins: int) -> tuple[PerformanceMetrics, list[dict[str, Any]]]:
    """Metrics of one model version and arm over a window, and its reliability bins."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    lab = part[part["y"].notna()]
    y = lab["y"].to_numpy(dtype=np.int64)
    p = lab["p"].to_numpy(dtype=np.float64)
    flagged = lab["flagged"].to_numpy(dtype=bool)
    flagged_rate = float(part["flagged"].mean()) if len(part) else None
    if len(y) == 0:
        return PerformanceMetrics(None, None, None, None, None, None, None, flagged_rate), []
    positives, hits = int(y.sum()), int((flagged & (y == 1)).sum())
    two_classes = 0 < positives < len(y)
    ranked = two_classes and len(y) >= min_labels
    calibration, ece = reliability(y, p, bins)
    metrics = PerformanceMetrics(
        roc_auc=float(roc_auc_score(y, p)) if ranked else None,
        pr_auc=float(average_precision_score(y, p)) if ranked else None,
        precision=hits / int(flagged.sum()) if flagged.any() else None,
        recall=hits / positives if positives else None,
        brier=float(brier_score_loss(y, p, labels=[0, 1])),
        ece=ece,
        base_rate=float(y.mean()),
        flagged_rate=flagged_rate,
    )
    return metrics, calibration


def reliability(y: np.ndarray, p: np.ndarray, bins: int) -> tuple[list[dict[str, Any]], float]:
    """Non-empty equal-width bins (low, high, mean predicted, observed late rate, count) and the ECE."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], p)  # scikit-learn's calibration_curve assignment
    count = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    filled = np.flatnonzero(count)
    mean_p = predicted[filled] / count[filled]
    rate = observed[filled] / count[filled]
    ece = float(np.sum(count[filled] * np.abs(rate - mean_p)) / len(p))
    table = [
        {"low": float(edges[i]), "high": float(edges[i + 1]), "mean_predicted": float(m), "observed": float(o)}
        | {"count": int(count[i])}
        for i, m, o in zip(filled, mean_p, rate, strict=True)
    ]
    return table, ece


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
        out[key] = int(out[key])
    return out


__all__ = ["GROUP", "PerformanceMetrics", "daily", "join_labels", "reliability", "summarise"]
