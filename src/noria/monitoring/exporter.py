"""Monitoring results as Prometheus metrics: drift and delayed-label performance per model version.

The service's ``/metrics`` carries them (``create_app`` registers a :class:`MonitoringCollector`
on its registry), so the alert rules in ``deploy/prometheus/rules`` and the Grafana dashboard
see what the monitoring batch job wrote, next to the live serving metrics::

    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(MonitoringStore.of(project)))
    print(generate_latest(registry).decode())

Nothing is computed on scrape: the collector reads the records of the monitoring store
(``<dir>/drift/*.json``, ``<dir>/performance/*.json``). File names carry the window and the
version, so a scrape lists two folders, picks the files it exports and parses only those
that changed since the last scrape (cached by path, modification time and size).

Label values stay bounded: per kind, the ``max_versions`` model versions with the newest
records, each at its newest window only; features are the profile's features.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from noria.monitoring.store import WINDOW, Kind, MonitoringStore

log = logging.getLogger("noria.monitoring")

DEFAULT_MAX_VERSIONS = 3  # champion, challenger and the previous champion
DEFAULT_MIN_IMPORTANCE = 0.05  # DriftConfig.min_importance, for records written without their config

# performance record ``metrics`` key -> (metric name, help)
PERFORMANCE_METRICS: dict[str, tuple[str, str]] = {
    "roc_auc": ("noria_model_auc", "ROC AUC on the delayed labels of the newest labelled window."),
    "pr_auc": ("noria_model_pr_auc", "Precision-recall AUC on the delayed labels of the newest labelled window."),
    "precision": ("noria_model_precision", "Precision at the decision threshold, newest labelled window."),
    "recall": ("noria_model_recall", "Recall at the decision threshold, newest labelled window."),
    "brier": ("noria_model_brier", "Brier score, newest labelled window."),
    "ece": ("noria_model_ece", "Expected calibration error, newest labelled window."),
    "base_rate": ("noria_model_base_rate", "Share of labelled flights that were late, newest labelled window."),
    "flagged_rate": ("noria_model_flagged_rate", "Share of predictions flagged late, newest labelled window."),
    "kpi_delayed_flagged": (
        "noria_model_kpi_delayed_flagged",
        "Business KPI: share of delayed flights the model flagged in advance, newest labelled window.",
    ),
}
_WINDOW_LABELS = ["model_version", "window"]


@dataclass(frozen=True)
class ServedVersion:
    """A model version the service has loaded, as the exporter needs it."""

    version: int
    trained_at: float | None = None  # Unix seconds
    holdout_auc: float | None = None  # ROC AUC on the holdout, recorded at promotion


@dataclass(frozen=True)
class _Listing:
    """What one scrape found for a kind: the records to export, and facts about the folder."""

    records: list[dict[str, Any]]
    last_write: float | None
    unreadable: int


class _RecordFiles:
    """Picks and parses the record files of one kind; parsed files are kept until they change."""

    def __init__(self, folder: Path, max_versions: int) -> None:
        self.folder = folder
        self.max_versions = max_versions
        self._parsed: dict[Path, tuple[tuple[int, int], dict[str, Any] | None]] = {}

    def scan(self) -> _Listing:
        found: list[tuple[str, int, os.DirEntry[str]]] = []
        last_write: float | None = None
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    window, sep, number = entry.name.removesuffix(".json").rpartition("--v")
                    if not (sep and entry.name.endswith(".json") and number.isdigit() and WINDOW.match(window)):
                        continue
                    found.append((window, int(number), entry))
        except FileNotFoundError:
            self._parsed.clear()
            return _Listing([], None, 0)
        except OSError as exc:
            log.warning("cannot list monitoring records in %s: %s", self.folder, exc)
            return _Listing([], None, 0)
        chosen: dict[int, os.DirEntry[str]] = {}
        for _window, version, entry in sorted(found, key=lambda item: (item[0], item[1]), reverse=True):
            if version not in chosen and len(chosen) < self.max_versions:
                chosen[version] = entry
        records, unreadable, keep = [], 0, set()
        for entry in chosen.values():
            try:
                stat = entry.stat()
            except OSError:
                continue  # replaced or removed since the listing: the next scrape sees it
            key = (stat.st_mtime_ns, stat.st_size)
            path = Path(entry.path)
            keep.add(path)
            cached = self._parsed.get(path)
            if cached is None or cached[0] != key:
                cached = self._parsed[path] = (key, _read(path))
            if cached[1] is None:
                unreadable += 1
            else:
                records.append(cached[1])
        for path in set(self._parsed) - keep:
            del self._parsed[path]
        for _, _, entry in found:
            try:
                mtime = entry.stat().st_mtime
            except OSError:
                continue
            last_write = mtime if last_write is None else max(last_write, mtime)
        return _Listing(records, last_write, unreadable)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("monitoring record %s is unreadable, not exported: %s", path, exc)
        return None
    if not isinstance(record, dict) or not isinstance(record.get("model_version"), int):
        log.warning("monitoring record %s has no model_version, not exported", path)
        return None
    return record


def _number(value: Any) -> float | None:
    """A record value as a sample value: null (does not apply) is no sample, "inf" is +Inf."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    return None


class MonitoringCollector:
    """A prometheus_client collector over a project's monitoring store (and the served versions).

    ``served`` returns the versions the service has loaded (for the training time and the
    registry's holdout AUC); ``store`` may be None when the service knows no project.
    """

    def __init__(
        self,
        store: MonitoringStore | None,
        served: Callable[[], Iterable[ServedVersion]] | None = None,
        *,
        max_versions: int = DEFAULT_MAX_VERSIONS,
    ) -> None:
        if max_versions < 1:
            raise ValueError(f"max_versions must be at least 1, got {max_versions}")
        self.store = store
        self.served = served
        kinds: tuple[Kind, ...] = ("drift", "performance")
        self._files = {k: _RecordFiles(store.root / k, max_versions) for k in kinds} if store is not None else {}
        self._lock = threading.Lock()  # scrapes may overlap; the file cache is not shared-safe

    def describe(self) -> Iterable[Metric]:
        """The metric families, without reading anything (what registration asks for)."""
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        with self._lock:
            listings = {kind: files.scan() for kind, files in self._files.items()}
        holdout: dict[int, float] = {}
        for kind, listing in listings.items():
            if listing.last_write is not None:
                families["last_run"].add_metric([kind], listing.last_write)
            families["unreadable"].add_metric([kind], float(listing.unreadable))
            for record in listing.records:
                if kind == "drift":
                    _add_drift(families, record)
                else:
                    _add_performance(families, record, holdout)
        for served in _unique(self.served() if self.served is not None else ()):
            if served.trained_at is not None:
                families["trained"].add_metric([str(served.version)], served.trained_at)
            if served.holdout_auc is not None:
                holdout.setdefault(served.version, served.holdout_auc)
        for version, value in sorted(holdout.items()):
            families["holdout_auc"].add_metric([str(version)], value)
        yield from families.values()

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        g = GaugeMetricFamily
        families = {
            "psi": g(
                "noria_feature_drift_psi",
                "Population stability index of a feature in the newest drift window against the reference profile.",
                labels=["feature", "important", *_WINDOW_LABELS],
            ),
            "missing": g(
                "noria_feature_missing_rate",
                "Share of missing values of a feature in the newest drift window.",
                labels=["feature", *_WINDOW_LABELS],
            ),
            "score_psi": g(
                "noria_score_drift_psi",
                "Population stability index of the prediction score in the newest drift window.",
                labels=_WINDOW_LABELS,
            ),
            "alerts": g(
                "noria_drift_alerts",
                "Features whose drift raised an alert (drift on an important feature), newest drift window.",
                labels=_WINDOW_LABELS,
            ),
            "drifted": g(
                "noria_drifted_features",
                "Features whose verdict is drift, newest drift window.",
                labels=_WINDOW_LABELS,
            ),
            "rows": g("noria_drift_window_rows", "Served rows in the newest drift window.", labels=_WINDOW_LABELS),
        }
        for key, (name, text) in PERFORMANCE_METRICS.items():
            families[key] = g(name, text, labels=_WINDOW_LABELS)
        families |= {
            "labelled": g(
                "noria_labelled_predictions",
                "Served predictions with a delayed label, newest labelled window.",
                labels=_WINDOW_LABELS,
            ),
            "predictions": g(
                "noria_window_predictions",
                "Served predictions in the newest labelled window.",
                labels=_WINDOW_LABELS,
            ),
            "holdout_auc": g(
                "noria_model_holdout_auc",
                "ROC AUC of a model version on its holdout at training time.",
                labels=["model_version"],
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
        }
        return families


def _unique(served: Iterable[ServedVersion]) -> list[ServedVersion]:
    seen: dict[int, ServedVersion] = {}
    for item in served:
        seen.setdefault(item.version, item)
    return list(seen.values())


def _add_drift(families: dict[str, GaugeMetricFamily], record: dict[str, Any]) -> None:
    labels = [str(record["model_version"]), str(record.get("window", ""))]
    config = record.get("config") or {}
    min_importance = _number(config.get("min_importance"))
    threshold = DEFAULT_MIN_IMPORTANCE if min_importance is None else min_importance
    features = [f for f in record.get("features") or [] if isinstance(f, dict) and f.get("name")]
    for feature in features:
        name = str(feature["name"])
        share = _number(feature.get("importance"))
        important = share is None or share >= threshold  # no importance in the profile: every feature counts
        psi = _number(feature.get("psi"))
        if psi is not None:
            families["psi"].add_metric([name, "true" if important else "false", *labels], psi)
        missing = _number(feature.get("missing_current"))
        if missing is not None:
            families["missing"].add_metric([name, *labels], missing)
    score = record.get("score")
    score_psi = _number(score.get("psi")) if isinstance(score, dict) else None
    if score_psi is not None:
        families["score_psi"].add_metric(labels, score_psi)
    families["alerts"].add_metric(labels, float(sum(bool(f.get("alert")) for f in features)))
    families["drifted"].add_metric(labels, float(sum(f.get("verdict") == "drift" for f in features)))
    rows = _number(record.get("rows"))
    if rows is not None:
        families["rows"].add_metric(labels, rows)


def _add_performance(families: dict[str, GaugeMetricFamily], record: dict[str, Any], holdout: dict[int, float]) -> None:
    version = int(record["model_version"])
    labels = [str(version), str(record.get("window", ""))]
    metrics = record.get("metrics") or {}
    for key in PERFORMANCE_METRICS:
        value = _number(metrics.get(key))
        if value is not None:
            families[key].add_metric(labels, value)
    for key, field in (("labelled", "labelled"), ("predictions", "predictions")):
        value = _number(record.get(field))
        if value is not None:
            families[key].add_metric(labels, value)
    holdout_auc = _number(record.get("holdout"))
    if holdout_auc is not None:
        holdout[version] = holdout_auc


__all__ = ["DEFAULT_MAX_VERSIONS", "PERFORMANCE_METRICS", "MonitoringCollector", "ServedVersion"]
