"""Delayed-label feedback: how well the served model did once the outcomes are known.

Labels arrive after the fact (:mod:`noria.monitoring.labels`: from the newest data snapshot by
the project's own target rule, or from a file of request ids and labels).
:func:`compute_feedback` joins them to the predictions the service logged for the same requests
(the event key, ``features.request.ids``) and scores each window per model version and arm with
the task's metrics (:mod:`noria.task_metrics`: ROC AUC, precision and recall at the logged
threshold, Brier, calibration for a binary model; log loss, accuracy, macro F1 for a multi-class
one; RMSE, MAE, bias for regression), per day and for the window, next to the primary metric the
version scored on its training holdout, and the project's KPI (``monitoring.kpi``). Each window
is stored in the monitoring store (``performance/<window>--v<version>.json``), where the HTML
report, the Prometheus exporter and the retraining policy read it, and the window's review queue
is rebuilt with the labels.

    noria monitor feedback                       # labels from the newest snapshot
    noria monitor feedback --labels labels.csv   # or from a file of ids + label
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import ConfigError, NotFoundError, ValidationError
from noria.monitoring._performance import GROUP, daily, join_labels, summarise
from noria.monitoring.labels import WINDOW, Labels, id_types, labels_from_snapshot, load_labels
from noria.monitoring.review import review_frame
from noria.monitoring.store import MonitoringStore
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
    "metric",
    "live",
    "holdout",
    "drop",
    "kpi",
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
    metrics: dict[str, float | None]
    primary_metric: str
    holdout: float | None  # the primary metric on the version's training holdout
    metric_drop: float | None  # how much worse live is than holdout (positive = worse)
    kpi: dict[str, Any] = field(default_factory=dict)
    days: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    # labels of the window's requests that no served prediction matched (the service never scored
    # them); None when the labels do not say which window they belong to (a labels file)
    unmatched_labels: int | None = None
    path: Path | None = None

    @property
    def live(self) -> float | None:
        return self.metrics.get(self.primary_metric)

    def _figures(self) -> dict[str, Any]:
        """The window's figures, as both :meth:`body` and :meth:`summary` give them."""
        return {
            "arm": self.arm,
            "threshold": self.threshold,
            "predictions": self.predictions,
            "labelled": self.labelled,
            "metrics": self.metrics,
            "primary_metric": self.primary_metric,
            "holdout": self.holdout,
            "metric_drop": self.metric_drop,
            "kpi": self.kpi,
        }

    def body(self) -> dict[str, Any]:
        """The stored record's body (the store adds kind, window, model name and version)."""
        return {
            **self._figures(),
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
            **self._figures(),
            "unmatched_labels": self.unmatched_labels,
            "path": None if self.path is None else str(self.path),
        }

    def to_dict(self) -> dict[str, Any]:
        return self.summary() | {"days": self.days, "calibration": self.calibration}


@dataclass(frozen=True)
class FeedbackSummary:
    """What one ``noria monitor feedback`` run read, rejected, matched and computed."""

    source: str
    rows_read: int
    accepted: int
    rejected: int
    unlabelled: int
    immature: int
    duplicates: int
    quarantine_path: str | None
    matched: int  # accepted labels that matched a served prediction of the windows scored
    results: list[WindowPerformance]
    review_paths: dict[str, str]

    @property
    def unmatched(self) -> int:
        """Accepted labels that matched no served prediction (of the windows scored)."""
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
                r.primary_metric: r.live,
                "holdout": r.holdout,
                "drop": r.metric_drop,
                str(r.kpi.get("metric") or "kpi"): r.kpi.get("value"),
            }
            for r in self.results
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.source,
            "rows_read": self.rows_read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "unlabelled": self.unlabelled,
            "immature": self.immature,
            "duplicates": self.duplicates,
            "quarantine": self.quarantine_path,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "windows": [r.summary() for r in self.results],
            "review_queues": self.review_paths,
        }


def compute_feedback(
    project: Project, labels: Labels, *, windows: list[str] | None = None, save: bool = True
) -> list[WindowPerformance]:
    """Score the served predictions of each window against ``labels``; one result per version and arm.

    ``windows`` default to every window of the prediction log. With ``save`` each window's
    records and review queue are written to the monitoring store.
    """
    return _compute(project, labels, windows, save).results


def record_feedback(
    project: Project, labels_path: Path | str | None = None, *, windows: list[str] | None = None
) -> FeedbackSummary:
    """Score the served windows against their labels and store the results.

    With ``labels_path`` the labels are a file of request ids + label (bad rows go to
    ``<monitoring.dir>/quarantine/``); without, they come from the newest data snapshot by the
    project's target rule, for the windows asked for (default: every window of the log). What
    ``noria monitor feedback [--labels PATH] [--window W]`` runs.
    """
    store = MonitoringStore.of(project)
    quarantine = store.root / "quarantine"
    if labels_path is not None:
        labels = load_labels(project, labels_path, quarantine_dir=quarantine)
    else:
        chosen = windows or sorted(windows_in_log(project))
        if not chosen:
            raise NotFoundError(
                "the prediction log holds no served request yet", fix="serve predictions first (noria serve)"
            )
        labels = labels_from_snapshot(project, chosen, quarantine_dir=quarantine)
    if not len(labels):
        raise ValidationError(
            f"no usable label in {labels.source}: {labels.rejected} row(s) rejected"
            + (f" (reasons in {labels.quarantine_path})" if labels.quarantine_path else "")
            + f", {labels.unlabelled} without an outcome, {labels.immature} not mature yet",
            fix="fix the rows listed in the quarantine file, or wait until the labels are mature"
            if labels_path is not None
            else "ingest the data that holds the outcomes (noria data ingest), or wait until they are mature",
        )
    done = _compute(project, labels, windows, True)
    return FeedbackSummary(
        source=labels.source,
        rows_read=labels.rows_read,
        accepted=len(labels),
        rejected=labels.rejected,
        unlabelled=labels.unlabelled,
        immature=labels.immature,
        duplicates=labels.duplicates,
        quarantine_path=labels.quarantine_path,
        matched=done.matched,
        results=done.results,
        review_paths={w: str(p) for w, p in done.reviews.items()},
    )


def performance_trend(project: Project) -> pd.DataFrame:
    """One row per stored (window, model version): the live primary metric next to its holdout value."""
    import pandas as pd

    from noria.tasks import task_of

    primary = task_of(project).primary_metric
    rows = []
    for record in MonitoringStore.of(project).records("performance"):
        metric = record.get("primary_metric") or primary
        rows.append(
            {
                "window": record["window"],
                "model_name": record["model_name"],
                "model_version": int(record["model_version"]),
                "arm": record.get("arm"),
                "labelled": int(record.get("labelled") or 0),
                "metric": metric,
                "live": (record.get("metrics") or {}).get(metric),
                "holdout": record.get("holdout"),
                "drop": record.get("metric_drop"),
                "kpi": (record.get("kpi") or {}).get("value"),
            }
        )
    frame = pd.DataFrame(rows, columns=TREND_COLUMNS)
    for column in ("live", "holdout", "drop", "kpi"):
        frame[column] = frame[column].astype("float64")
    return frame


def holdout_metric(project: Project, name: str, version: int, metric: str) -> float | None:
    """A version's ``metric`` on its training holdout; None when the registry cannot say.

    Read from the evaluation the promotion gate recorded with the version, else from the
    training run's ``test_<metric>``. A project without a registry yet gives None without
    starting MLflow.
    """
    from noria.registry.mlflow_client import tracking_uri

    uri = tracking_uri(project)
    local = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        local = uri
    if local is not None and local != ":memory:" and not Path(local).exists():
        return None
    try:
        from noria.registry import get_version
        from noria.registry.mlflow_client import get_client

        client = get_client(project)
        info = get_version(project, f"{name}/{version}", client=client)
        value = info.metrics.get(metric)
        if value is None and info.run_id:
            value = client.get_run(info.run_id).data.metrics.get(f"test_{metric}")
    except Exception as exc:  # monitoring must work while the registry is away; the field says "unknown"
        log.warning("holdout %s of %s/%s unknown: %s", metric, name, version, exc)
        return None
    return None if value is None else float(value)


@dataclass
class _Computed:
    results: list[WindowPerformance]
    reviews: dict[str, Path]
    matched: int  # distinct labels matched by a served prediction


def _kpi_metric(project: Project, task: Any) -> str:
    """The KPI's metric (``monitoring.kpi.metric`` or the task's default), checked against the task."""
    from noria.task_metrics import kpi_default

    metric = project.config.monitoring.kpi.metric or kpi_default(task)
    known = [*task.metric_directions, *_EXTRA_METRICS[task.name]]
    if task.name == "multiclass":
        known += [f"share_{c}" for c in task.classes]
    if metric not in known:
        raise ConfigError(
            f"monitoring.kpi.metric {metric!r} is not a metric of a {task.name} model",
            fix=f"use one of {', '.join(known)}",
        )
    return metric


_EXTRA_METRICS = {
    "binary": ["flagged_rate", "base_rate", "mean_score"],
    "multiclass": ["mean_confidence"],
    "regression": ["mean_label", "mean_prediction"],
}


def _compute(project: Project, labels: Labels, windows: list[str] | None, save: bool) -> _Computed:
    import numpy as np

    from noria.tasks import task_of
    from noria.windows import Windows

    task = task_of(project)
    cfg = project.config.monitoring
    spans = Windows.of(project)
    kpi_metric = _kpi_metric(project, task)
    store = MonitoringStore.of(project)
    explicit = windows is not None
    chosen = [spans.check(w, "window") for w in windows] if windows is not None else sorted(windows_in_log(project))
    if not chosen:
        raise NotFoundError("the prediction log holds no served request yet", fix="serve predictions first")
    _, types = id_types(project)
    label_windows = labels.frame[WINDOW].to_numpy(dtype=object) if labels.windowed else None
    holdout: dict[tuple[str, int], float | None] = {}
    results: list[WindowPerformance] = []
    reviews: dict[str, Path] = {}
    matched = np.zeros(len(labels.frame), dtype=bool)
    for window in chosen:
        rows = read_window(project, window)
        if rows.empty:
            if explicit:
                raise NotFoundError(
                    f"no served prediction in the log falls in window {window}",
                    fix="pick a window the service has scored requests for (noria monitor windows lists them)",
                )
            continue
        joined, found = join_labels(rows, labels, task, types, spans.timezone)
        matched[found] = True
        if not len(found) and not explicit:
            continue
        unmatched = None
        if label_windows is not None:
            mine = label_windows == window
            unmatched = int(mine.sum()) - int(mine[found].sum())
        days = daily(joined, task, cfg.feedback.min_labels)
        found_here = []
        for key, part in joined.groupby(GROUP, sort=True):
            name, version, arm = str(key[0]), int(str(key[1])), str(key[2])
            if (name, version) not in holdout:
                holdout[(name, version)] = holdout_metric(project, name, version, task.primary_metric)
            metrics, calibration = summarise(part, task, cfg.feedback.min_labels, cfg.feedback.calibration_bins)
            live, base = metrics.get(task.primary_metric), holdout[(name, version)]
            thresholds = part["threshold"].dropna() if "threshold" in part else None
            found_here.append(
                WindowPerformance(
                    window=window,
                    model_name=name,
                    model_version=version,
                    arm=arm,
                    threshold=float(thresholds.mode().iloc[0]) if thresholds is not None and len(thresholds) else None,
                    predictions=len(part),
                    labelled=int(part["y"].notna().sum()),
                    metrics=metrics,
                    primary_metric=task.primary_metric,
                    holdout=base,
                    metric_drop=None if live is None or base is None else task.metric_drop(base, live),
                    kpi={"metric": kpi_metric, "name": cfg.kpi.name or kpi_metric, "value": metrics.get(kpi_metric)}
                    | ({"target": cfg.kpi.target} if cfg.kpi.target is not None else {}),
                    days=days.get((name, version, arm), []),
                    calibration=calibration,
                    unmatched_labels=unmatched,
                )
            )
        if save:
            found_here = _save(store, window, found_here)
            reviews[window] = store.save_review(
                window, review_frame(rows, labels, task, cfg.feedback.review_band, types)
            )
        results.extend(found_here)
    return _Computed(results, reviews, int(matched.sum()))


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
    "holdout_metric",
    "load_labels",
    "performance_trend",
    "record_feedback",
]
