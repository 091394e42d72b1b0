"""Delayed-label feedback: how well the served model did once flights have departed.

Labels arrive after the fact (:func:`load_labels`). :func:`compute_feedback` joins them to
the predictions the service logged for the same flights (exact key: carrier, flight, origin,
scheduled departure in UTC) and scores each month per model version and arm: ROC AUC, PR
AUC, precision and recall at the logged threshold, Brier score, calibration (ECE and
reliability bins), base and flagged rates, and the business KPI ``kpi_delayed_flagged``, the
share of delayed flights flagged in advance, per day and for the month, next to the ROC AUC
the version scored on its training holdout. Each month is stored in the monitoring store
(``performance/<month>--v<version>.json``), where the HTML report, the Prometheus exporter
and the retraining policy read it, and the month's review queue is rebuilt with the labels.

    noria monitor feedback --labels labels-2013-07.csv   # record_feedback(project, path)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import NotFoundError, ValidationError
from noria.monitoring._performance import GROUP, PerformanceMetrics, daily, join_labels, summarise
from noria.monitoring.flights import KEY
from noria.monitoring.labels import load_labels
from noria.monitoring.review import review_frame
from noria.monitoring.store import MonitoringStore, check_window, window_bounds
from noria.monitoring.window import read_window, windows_in_log

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project

log = logging.getLogger("noria.monitoring")

TREND_COLUMNS = [
    "window",
    "model_name",
    "model_version",
    "arm",
    "labelled",
    "roc_auc",
    "holdout_auc",
    "auc_drop",
    "precision",
    "recall",
    "kpi_delayed_flagged",
    "ece",
]


@dataclass(frozen=True)
class WindowPerformance:
    """The performance of one model version and arm over one window, once labels are known."""

    window: str
    model_name: str
    model_version: int
    arm: str
    threshold: float | None
    predictions: int
    labelled: int
    positives: int
    metrics: PerformanceMetrics
    holdout_auc: float | None
    days: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    unmatched_labels: int = 0
    path: Path | None = None

    def body(self) -> dict[str, Any]:
        """The stored record's body (the store adds kind, window, model name and version)."""
        return {
            "arm": self.arm,
            "threshold": self.threshold,
            "predictions": self.predictions,
            "labelled": self.labelled,
            "positives": self.positives,
            "metrics": self.metrics.to_dict(),
            "holdout_auc": self.holdout_auc,
            "days": self.days,
            "calibration": self.calibration,
            "unmatched_labels": self.unmatched_labels,
        }

    def summary(self) -> dict[str, Any]:
        """The figures without the daily series and reliability bins."""
        return {
            "window": self.window,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "arm": self.arm,
            "threshold": self.threshold,
            "predictions": self.predictions,
            "labelled": self.labelled,
            "positives": self.positives,
            "metrics": self.metrics.to_dict(),
            "holdout_auc": self.holdout_auc,
            "unmatched_labels": self.unmatched_labels,
            "path": None if self.path is None else str(self.path),
        }

    def to_dict(self) -> dict[str, Any]:
        return self.summary() | {"days": self.days, "calibration": self.calibration}


@dataclass(frozen=True)
class FeedbackSummary:
    """What one ``noria monitor feedback`` run read, rejected, matched and computed."""

    labels_path: str
    rows_read: int
    accepted: int
    rejected: int
    unlabelled: int
    duplicates: int
    quarantine_path: str | None
    matched: int
    results: list[WindowPerformance]
    review_paths: dict[str, str]

    @property
    def unmatched(self) -> int:
        return self.accepted - self.matched

    def table(self) -> list[dict[str, Any]]:
        """One row per window, model version and arm, for a terminal table."""
        return [
            {
                "window": r.window,
                "version": r.model_version,
                "arm": r.arm,
                "predictions": r.predictions,
                "labelled": r.labelled,
                "roc_auc": r.metrics.roc_auc,
                "holdout_auc": r.holdout_auc,
                "precision": r.metrics.precision,
                "delayed_flagged": r.metrics.kpi_delayed_flagged,
                "ece": r.metrics.ece,
            }
            for r in self.results
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels_path,
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "unlabelled": self.unlabelled,
            "duplicates": self.duplicates,
            "quarantine": self.quarantine_path,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "windows": [r.summary() for r in self.results],
            "review_queues": self.review_paths,
        }


def compute_feedback(
    project: Project, labels: pd.DataFrame, *, windows: list[str] | None = None, save: bool = True
) -> list[WindowPerformance]:
    """Score the served predictions of each window against ``labels``; one result per version and arm.

    ``windows`` default to the months that have both labels and logged predictions. With
    ``save`` each window's records and review queue are written to the monitoring store.
    """
    return _compute(project, labels, windows, save)[0]


def record_feedback(project: Project, labels_path: Path | str, *, windows: list[str] | None = None) -> FeedbackSummary:
    """Read a labels file, quarantine its bad rows, score the months it covers, store the results.

    What ``noria monitor feedback --labels PATH [--window 2013-07]`` runs. Rejected rows go to
    ``<monitoring.dir>/quarantine/``; ``windows`` limits the months scored (default: all).
    """
    store = MonitoringStore.of(project)
    labels, rejected = load_labels(
        labels_path,
        threshold=project.config.model.require_target().threshold or 0.0,
        quarantine_dir=store.root / "quarantine",
    )
    if labels.empty:
        where = labels.attrs.get("quarantine_path")
        raise ValidationError(
            f"no usable label in {labels_path}: {rejected} row(s) rejected"
            + (f" (reasons in {where})" if where else "")
            + f", {labels.attrs.get('unlabelled', 0)} without an outcome",
            fix="fix the rows listed in the quarantine file and run the command again",
        )
    results, reviews, matched = _compute(project, labels, windows, True)
    return FeedbackSummary(
        labels_path=str(labels_path),
        rows_read=int(labels.attrs.get("rows_read", len(labels))),
        accepted=len(labels),
        rejected=rejected,
        unlabelled=int(labels.attrs.get("unlabelled", 0)),
        duplicates=int(labels.attrs.get("duplicates", 0)),
        quarantine_path=labels.attrs.get("quarantine_path"),
        matched=matched,
        results=results,
        review_paths={w: str(p) for w, p in reviews.items()},
    )


def performance_trend(project: Project) -> pd.DataFrame:
    """One row per stored (window, model version): live metrics next to the holdout AUC."""
    import pandas as pd

    rows = []
    for record in MonitoringStore.of(project).records("performance"):
        metrics = record.get("metrics") or {}
        live, holdout = metrics.get("roc_auc"), record.get("holdout_auc")
        rows.append(
            {
                "window": record["window"],
                "model_name": record["model_name"],
                "model_version": int(record["model_version"]),
                "arm": record.get("arm"),
                "labelled": int(record.get("labelled") or 0),
                "roc_auc": live,
                "holdout_auc": holdout,
                "auc_drop": None if live is None or holdout is None else holdout - live,
                "precision": metrics.get("precision"),
                "recall": metrics.get("recall"),
                "kpi_delayed_flagged": metrics.get("kpi_delayed_flagged"),
                "ece": metrics.get("ece"),
            }
        )
    frame = pd.DataFrame(rows, columns=TREND_COLUMNS)
    for column in ("roc_auc", "holdout_auc", "auc_drop", "precision", "recall", "kpi_delayed_flagged", "ece"):
        frame[column] = frame[column].astype("float64")
    return frame


def holdout_auc(project: Project, name: str, version: int) -> float | None:
    """The ROC AUC a version scored on its training holdout; None when the registry cannot say.

    Read from the evaluation the promotion gate recorded with the version, else from the
    training run's ``test_roc_auc`` metric. A project without a registry yet gives None
    without starting MLflow.
    """
    from noria.registry._client import tracking_uri

    uri = tracking_uri(project)
    local = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        local = uri
    if local is not None and local != ":memory:" and not Path(local).exists():
        return None
    try:
        from noria.registry import get_version
        from noria.registry._client import get_client

        client = get_client(project)
        info = get_version(project, f"{name}/{version}", client=client)
        auc = info.metrics.get("roc_auc")
        if auc is None and info.run_id:
            auc = client.get_run(info.run_id).data.metrics.get("test_roc_auc")
    except Exception as exc:  # monitoring must work while the registry is away; the field says "unknown"
        log.warning("holdout AUC of %s/%s unknown: %s", name, version, exc)
        return None
    return None if auc is None else float(auc)


def _compute(
    project: Project, labels: pd.DataFrame, windows: list[str] | None, save: bool
) -> tuple[list[WindowPerformance], dict[str, Path], int]:
    _check_labels(labels)
    cfg = project.config.monitoring.feedback
    store = MonitoringStore.of(project)
    explicit = windows is not None
    chosen = [check_window(w) for w in windows] if windows is not None else _label_months(project, labels)
    holdout: dict[tuple[str, int], float | None] = {}
    departs = labels["scheduled_departure"]
    results: list[WindowPerformance] = []
    reviews: dict[str, Path] = {}
    matched = 0
    for window in chosen:
        rows = read_window(project, window)
        if rows.empty:
            if explicit:
                raise NotFoundError(
                    f"no served prediction in the log departs in {window}",
                    fix="pick a window the service has scored flights for (noria monitor windows lists them)",
                )
            continue
        start, end = window_bounds(window)
        in_window = labels[(departs >= start) & (departs < end)]
        joined, unmatched = join_labels(rows, in_window)
        matched += len(in_window) - unmatched
        days = daily(joined, cfg.min_labels)
        found = []
        for key, part in joined.groupby(GROUP, sort=True):
            name, version, arm = str(key[0]), int(str(key[1])), str(key[2])
            if (name, version) not in holdout:
                holdout[(name, version)] = holdout_auc(project, name, version)
            metrics, calibration = summarise(part, cfg.min_labels, cfg.calibration_bins)
            thresholds = part["threshold"].dropna()
            found.append(
                WindowPerformance(
                    window=window,
                    model_name=name,
                    model_version=version,
                    arm=arm,
                    threshold=float(thresholds.mode().iloc[0]) if len(thresholds) else None,
                    predictions=len(part),
                    labelled=int(part["y"].notna().sum()),
                    positives=int((part["y"] == 1.0).sum()),
                    metrics=metrics,
                    holdout_auc=holdout[(name, version)],
                    days=days.get((name, version, arm), []),
                    calibration=calibration,
                    unmatched_labels=unmatched,
                )
            )
        if save:
            found = _save(store, window, found)
            reviews[window] = store.save_review(window, review_frame(rows, in_window, cfg.review_band))
        results.extend(found)
    return results, reviews, matched


def _check_labels(labels: pd.DataFrame) -> None:
    """Labels built by hand (not by load_labels) must still have the key, UTC times and a yes/no outcome."""
    import pandas as pd

    fix = "read labels with noria.monitoring.feedback.load_labels(path, threshold=..., quarantine_dir=...)"
    missing = [c for c in (*KEY, "late") if c not in labels.columns]
    if missing:
        raise ValidationError(f"the labels have no column {', '.join(map(repr, missing))}", fix=fix)
    dtype = labels["scheduled_departure"].dtype
    if not isinstance(dtype, pd.DatetimeTZDtype):
        raise ValidationError(f"the labels' scheduled_departure is {dtype}, not a time-zone aware timestamp", fix=fix)
    if labels["late"].isna().any():
        raise ValidationError("some labels have no late value (leave unlabelled flights out)", fix=fix)


def _label_months(project: Project, labels: pd.DataFrame) -> list[str]:
    """Months with labels that the prediction log has served flights for."""
    import numpy as np

    departs = labels["scheduled_departure"].dropna()
    month_ids = np.unique(departs.dt.year.to_numpy() * 100 + departs.dt.month.to_numpy())
    wanted = {f"{m // 100:04d}-{m % 100:02d}" for m in month_ids.tolist()}
    logged = windows_in_log(project)
    months = sorted(wanted & set(logged))
    if not months:
        raise NotFoundError(
            f"none of the {len(labels)} labels departs in a month the prediction log has served "
            f"(labels: {', '.join(sorted(wanted)) or 'none'}; log: {', '.join(logged) or 'empty'})",
            fix="pass labels for flights the service scored, or serve those months first",
        )
    return months


def _save(store: MonitoringStore, window: str, found: list[WindowPerformance]) -> list[WindowPerformance]:
    """One record per model version; the champion arm leads, other arms go under ``arms``."""
    out: list[WindowPerformance] = []
    versions = sorted({(r.model_name, r.model_version) for r in found})
    for name, version in versions:
        mine = [r for r in found if (r.model_name, r.model_version) == (name, version)]
        lead = max(mine, key=lambda r: (r.arm == "champion", r.predictions))
        arms = {
            r.arm: {k: v for k, v in r.body().items() if k not in ("days", "calibration", "unmatched_labels")}
            for r in mine
            if r is not lead
        }
        path = store.save("performance", window, name, version, lead.body() | {"arms": arms})
        out.extend(replace(r, path=path) for r in mine)
    return out


__all__ = [
    "FeedbackSummary",
    "WindowPerformance",
    "compute_feedback",
    "holdout_auc",
    "load_labels",
    "performance_trend",
    "record_feedback",
]
