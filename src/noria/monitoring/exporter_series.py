"""The series of the monitoring exporter: the Prometheus metric families and how a record fills them.

:func:`metric_families` declares every series :class:`~noria.monitoring.exporter.MonitoringCollector`
exports (names, help texts, labels); :func:`add_drift` and :func:`add_performance` turn one
drift or performance record of the monitoring store into samples. A record value becomes a
sample value through :func:`sample_value`: null (does not apply) is no sample, "inf" is +Inf.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from noria.tasks import Task

DEFAULT_MIN_IMPORTANCE = 0.05  # DriftConfig.min_importance, for records written without their config
# record ``metrics`` entries that are not metrics of the model (counts have series of their own)
NOT_METRICS = frozenset({"rows", "labelled", "predictions"})
WINDOW_LABELS = ["model_version", "window"]
KPI_LABELS = [*WINDOW_LABELS, "metric", "name"]
DELIVERY_LABELS = ["project", "model"]
TYPICAL_DELIVERIES = 10  # "recent" deliveries: the successful ones before the newest, at most this many


def metric_families() -> dict[str, GaugeMetricFamily]:
    """Every metric family the exporter exports, empty."""
    g = GaugeMetricFamily
    return {
        "psi": g(
            "noria_feature_drift_psi",
            "Population stability index of a feature in the newest drift window against the reference profile.",
            labels=["feature", "important", *WINDOW_LABELS],
        ),
        "missing": g(
            "noria_feature_missing_rate",
            "Share of missing values of a feature in the newest drift window.",
            labels=["feature", *WINDOW_LABELS],
        ),
        "score_psi": g(
            "noria_score_drift_psi",
            "Population stability index of the model's score (binary: probability; multi-class: probability "
            "of the predicted class; regression: predicted value) in the newest drift window.",
            labels=WINDOW_LABELS,
        ),
        "alerts": g(
            "noria_drift_alerts",
            "Features whose drift raised an alert (drift on an important feature), newest drift window.",
            labels=WINDOW_LABELS,
        ),
        "drifted": g(
            "noria_drifted_features",
            "Features whose verdict is drift, newest drift window.",
            labels=WINDOW_LABELS,
        ),
        "rows": g("noria_drift_window_rows", "Served rows in the newest drift window.", labels=WINDOW_LABELS),
        "metric": g(
            "noria_model_metric",
            "A metric of the model on the delayed labels of the newest labelled window (the task's metrics; "
            'primary="true" on the primary one).',
            labels=[*WINDOW_LABELS, "metric", "primary"],
        ),
        "holdout": g(
            "noria_model_holdout_metric",
            "The task's primary metric of a model version on its holdout at training time.",
            labels=["model_version", "metric"],
        ),
        "drop": g(
            "noria_model_metric_drop",
            "How much worse the live primary metric of the newest labelled window is than on the holdout, "
            "in the metric's units (positive = worse, whichever way the metric points).",
            labels=[*WINDOW_LABELS, "metric"],
        ),
        "drop_threshold": g(
            "noria_model_metric_drop_threshold",
            "The project's monitoring.policy.metric_drop: a larger metric drop calls for a retrain.",
            labels=["metric"],
        ),
        "kpi": g(
            "noria_model_kpi",
            "The project's KPI (a metric under its business name), newest labelled window.",
            labels=KPI_LABELS,
        ),
        "kpi_target": g("noria_model_kpi_target", "The target of the project's KPI.", labels=KPI_LABELS),
        "kpi_shortfall": g(
            "noria_model_kpi_shortfall",
            "How far the KPI misses its target, in the metric's units (positive = misses it; zero or less = meets it).",
            labels=KPI_LABELS,
        ),
        "labelled": g(
            "noria_labelled_predictions",
            "Served predictions with a delayed label, newest labelled window.",
            labels=WINDOW_LABELS,
        ),
        "predictions": g(
            "noria_window_predictions",
            "Served predictions in the newest labelled window.",
            labels=WINDOW_LABELS,
        ),
        "trained": g(
            "noria_model_trained_timestamp_seconds",
            "When the training run of a served model version started (Unix time).",
            labels=["model_version"],
        ),
        "last_run": g(
            "noria_monitoring_last_run_timestamp_seconds",
            "When monitoring last wrote a record of this kind (Unix time).",
            labels=["kind"],
        ),
        "unreadable": g(
            "noria_monitoring_unreadable_records",
            "Newest records of this kind that could not be read (and are not exported).",
            labels=["kind"],
        ),
        "deliveries": g(
            "noria_batch_deliveries",
            "Batch delivery records (noria predict runs) by status: succeeded or failed.",
            labels=[*DELIVERY_LABELS, "status"],
        ),
        "delivery_success": g(
            "noria_batch_delivery_last_success_timestamp_seconds",
            "When the newest successful batch delivery finished (Unix time).",
            labels=DELIVERY_LABELS,
        ),
        "delivery_rows": g(
            "noria_batch_delivery_last_success_rows",
            "Rows delivered by the newest successful batch delivery.",
            labels=DELIVERY_LABELS,
        ),
        "delivery_typical_rows": g(
            "noria_batch_delivery_typical_rows",
            f"Median rows of the successful batch deliveries before the newest (at most {TYPICAL_DELIVERIES}).",
            labels=DELIVERY_LABELS,
        ),
        "delivery_failed": g(
            "noria_batch_delivery_last_failure_timestamp_seconds",
            "When the newest failed batch delivery finished (Unix time).",
            labels=DELIVERY_LABELS,
        ),
        "delivery_late_after": g(
            "noria_batch_delivery_late_after_seconds",
            "serving.batch.late_after_seconds: the longest gap allowed between two successful batch deliveries.",
            labels=["project"],
        ),
        "delivery_short_ratio": g(
            "noria_batch_delivery_short_ratio",
            "serving.batch.short_ratio: a delivery with fewer rows than this share of the typical ones is short.",
            labels=["project"],
        ),
    }


def sample_value(value: Any) -> float | None:
    """A record value as a sample value: null (does not apply) is no sample, "inf" is +Inf."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return None


def add_drift(families: dict[str, GaugeMetricFamily], record: dict[str, Any]) -> None:
    labels = [str(record["model_version"]), str(record.get("window", ""))]
    config = record.get("config") or {}
    min_importance = sample_value(config.get("min_importance"))
    threshold = DEFAULT_MIN_IMPORTANCE if min_importance is None else min_importance
    features = [f for f in record.get("features") or [] if isinstance(f, dict) and f.get("name")]
    for feature in features:
        name = str(feature["name"])
        share = sample_value(feature.get("importance"))
        important = share is None or share >= threshold  # no importance in the profile: every feature counts
        psi = sample_value(feature.get("psi"))
        if psi is not None:
            families["psi"].add_metric([name, "true" if important else "false", *labels], psi)
        missing = sample_value(feature.get("missing_current"))
        if missing is not None:
            families["missing"].add_metric([name, *labels], missing)
    score = record.get("score")
    score_psi = sample_value(score.get("psi")) if isinstance(score, dict) else None
    if score_psi is not None:
        families["score_psi"].add_metric(labels, score_psi)
    families["alerts"].add_metric(labels, float(sum(bool(f.get("alert")) for f in features)))
    families["drifted"].add_metric(labels, float(sum(f.get("verdict") == "drift" for f in features)))
    rows = sample_value(record.get("rows"))
    if rows is not None:
        families["rows"].add_metric(labels, rows)


def primary_metric(record: Mapping[str, Any], task: Task | None = None) -> str | None:
    """The primary metric a performance record was judged on: its own word, else the task's."""
    named = record.get("primary_metric")
    if isinstance(named, str) and named:
        return named
    if task is not None:
        return task.primary_metric
    return "roc_auc" if "holdout_auc" in record else None  # a record of a binary model from before tasks


def add_performance(
    families: dict[str, GaugeMetricFamily],
    record: dict[str, Any],
    task: Task | None,
    holdout: dict[int, tuple[str, float]],
    live: dict[int, tuple[str, str, float]],
) -> None:
    version = int(record["model_version"])
    window = str(record.get("window", ""))
    labels = [str(version), window]
    metrics = record.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    primary = primary_metric(record, task)
    for name, raw in metrics.items():
        value = sample_value(raw)
        if value is not None and str(name) not in NOT_METRICS:
            families["metric"].add_metric([*labels, str(name), "true" if name == primary else "false"], value)
    for key in ("labelled", "predictions"):
        value = sample_value(record.get(key))
        if value is not None:
            families[key].add_metric(labels, value)
    recorded = sample_value(record.get("holdout", record.get("holdout_auc")))
    if primary is not None and recorded is not None:
        holdout[version] = (primary, recorded)
    drop = sample_value(record.get("metric_drop"))
    if primary is not None and drop is not None:
        families["drop"].add_metric([*labels, primary], drop)
    elif primary is not None:  # computed once the holdout is known (the record's, else the registry's)
        value = sample_value(metrics.get(primary))
        if value is not None:
            live[version] = (window, primary, value)
    kpi = record.get("kpi")
    if isinstance(kpi, dict):
        add_kpi(families, labels, kpi, task)


def add_kpi(families: dict[str, GaugeMetricFamily], labels: list[str], kpi: dict[str, Any], task: Task | None) -> None:
    metric = str(kpi.get("metric") or "")
    where = [*labels, metric, str(kpi.get("name") or metric)]
    value, target = sample_value(kpi.get("value")), sample_value(kpi.get("target"))
    if value is not None:
        families["kpi"].add_metric(where, value)
    if target is None:
        return
    families["kpi_target"].add_metric(where, target)
    given = kpi.get("higher_is_better")
    higher = given if isinstance(given, bool) else higher_is_better(metric, task)
    if value is not None and higher is not None and math.isfinite(value) and math.isfinite(target):
        families["kpi_shortfall"].add_metric(where, target - value if higher else value - target)


def higher_is_better(metric: str, task: Task | None) -> bool | None:
    """Which way ``metric`` points: the task's word, else any task's (None: it has no direction)."""
    from noria.tasks import BinaryTask, MulticlassTask, RegressionTask

    if task is not None and metric in task.metric_directions:
        return task.metric_directions[metric]
    for known in (BinaryTask, MulticlassTask, RegressionTask):
        if metric in known.metric_directions:
            return known.metric_directions[metric]
    return None


__all__ = [
    "DEFAULT_MIN_IMPORTANCE",
    "DELIVERY_LABELS",
    "KPI_LABELS",
    "NOT_METRICS",
    "TYPICAL_DELIVERIES",
    "WINDOW_LABELS",
    "add_drift",
    "add_kpi",
    "add_performance",
    "higher_is_better",
    "metric_families",
    "primary_metric",
    "sample_value",
]
