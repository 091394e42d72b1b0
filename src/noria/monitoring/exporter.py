"""Monitoring results as Prometheus metrics: drift and delayed-label performance per model version.

The service's ``/metrics`` carries them (``create_app`` registers a :class:`MonitoringCollector`
on its registry), so the alert rules in ``deploy/prometheus/rules`` and the Grafana dashboard
see what the monitoring batch job wrote, next to the live serving metrics::

    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(MonitoringStore.of(project), task=task_of(project)))
    print(generate_latest(registry).decode())

The series mean the same for every task (binary, multi-class, regression), so one set of alert
rules and one dashboard serve every project:

=========================================  ====================================================
``noria_model_metric``                     every metric of the newest labelled window (``metric``
                                           label: roc_auc, log_loss, rmse, ...; ``primary="true"``
                                           on the task's primary metric)
``noria_model_holdout_metric``             the primary metric on the version's training holdout
``noria_model_metric_drop``                how much worse the live primary metric is than the
                                           holdout, in the metric's units (positive = worse)
``noria_model_metric_drop_threshold``      ``monitoring.policy.metric_drop`` (when set)
``noria_model_kpi``, ``..._kpi_target``    the project's KPI and its target; ``..._kpi_shortfall``:
                                           how far it misses the target (positive = misses)
``noria_batch_delivery_*``                 batch deliveries (``noria predict``), per project and
                                           model: when the newest successful one finished, its
                                           rows, the median rows of the ones before it, when the
                                           newest failed one finished, deliveries by status, and
                                           the project's ``serving.batch`` thresholds
=========================================  ====================================================

Nothing is computed on scrape: the collector reads the records of the monitoring store
(``<dir>/drift/*.json``, ``<dir>/performance/*.json``) and the delivery records every
``noria predict`` run leaves (``serving.batch.deliveries_dir``, when given a :class:`Deliveries`).
File names carry the window and the version, so a scrape lists two folders, picks the files it
exports and parses only those that changed since the last scrape (cached by path, modification
time and size); delivery records are parsed once each, likewise.

Label values stay bounded: per kind, the ``max_versions`` model versions with the newest
records, each at its newest window only; features are the profile's features, metrics the
task's metrics (a multi-class model adds one per class). The series themselves (families, and
how a record fills them) are in :mod:`noria.monitoring.exporter_series`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, Metric

from noria.monitoring.exporter_series import (
    TYPICAL_DELIVERIES,
    add_drift,
    add_performance,
    higher_is_better,
    metric_families,
    primary_metric,
    sample_value,
)
from noria.monitoring.store import WINDOW, Kind, MonitoringStore

if TYPE_CHECKING:
    from noria.config import Project
    from noria.tasks import Task

log = logging.getLogger("noria.monitoring")

DEFAULT_MAX_VERSIONS = 3  # champion, challenger and the previous champion


@dataclass(frozen=True)
class ServedVersion:
    """A model version the service has loaded, as the exporter needs it."""

    version: int
    trained_at: float | None = None  # Unix seconds
    holdout: float | None = None  # the task's primary metric on the holdout, recorded at promotion
    metric: str | None = None  # which metric ``holdout`` is (the task's primary metric)


@dataclass(frozen=True)
class Deliveries:
    """Where a project's batch delivery records are, and its ``serving.batch`` alert thresholds."""

    folder: Path
    project: str
    late_after_seconds: float = 0.0  # 0: no schedule declared (no threshold series, no lateness alert)
    short_ratio: float = 0.0  # 0: no alert on short deliveries

    @classmethod
    def of(cls, project: Project) -> Deliveries:
        batch = project.config.serving.batch
        return cls(
            project.path(batch.deliveries_dir),
            project.config.project,
            float(batch.late_after_seconds),
            float(batch.short_ratio),
        )


@dataclass(frozen=True)
class _Delivery:
    """The part of a delivery record the exporter needs."""

    model: str
    succeeded: bool
    finished: float  # Unix seconds
    rows: float


class _DeliveryFiles:
    """Reads the delivery records of a folder; parsed files are kept until they change."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._parsed: dict[str, tuple[tuple[int, int], _Delivery | None]] = {}

    def scan(self) -> tuple[list[_Delivery], int]:
        """The readable deliveries, oldest first, and how many records could not be read."""
        try:
            with os.scandir(self.folder) as entries:
                found = sorted(
                    (e for e in entries if e.name.endswith(".json") and not e.name.startswith(".")),
                    key=lambda e: e.name,
                )
                keys = {}
                for entry in found:
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue  # removed since the listing
                    keys[entry.name] = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            self._parsed.clear()
            return [], 0
        except OSError as exc:
            log.warning("cannot list delivery records in %s: %s", self.folder, exc)
            return [], 0
        deliveries, unreadable = [], 0
        for name, key in keys.items():
            cached = self._parsed.get(name)
            if cached is None or cached[0] != key:
                cached = self._parsed[name] = (key, _read_delivery(self.folder / name))
            if cached[1] is None:
                unreadable += 1
            else:
                deliveries.append(cached[1])
        for name in set(self._parsed) - set(keys):
            del self._parsed[name]
        deliveries.sort(key=lambda d: d.finished)
        return deliveries, unreadable


def _read_delivery(path: Path) -> _Delivery | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        finished = datetime.fromisoformat(str(record.get("finished_at") or record["started_at"])).timestamp()
        rows = sample_value(record.get("rows_out"))
        return _Delivery(
            model=str(record.get("model_name") or ""),
            succeeded=record.get("status") == "succeeded",
            finished=finished,
            rows=0.0 if rows is None else rows,
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        log.warning("delivery record %s is unreadable, not exported: %s", path, exc)
        return None


def _add_deliveries(families: dict[str, GaugeMetricFamily], watch: Deliveries, found: list[_Delivery]) -> None:
    by_model: dict[str, list[_Delivery]] = {}
    for delivery in found:
        by_model.setdefault(delivery.model, []).append(delivery)
    for model, deliveries in sorted(by_model.items()):
        labels = [watch.project, model]
        succeeded = [d for d in deliveries if d.succeeded]
        failed = [d for d in deliveries if not d.succeeded]
        families["deliveries"].add_metric([*labels, "succeeded"], float(len(succeeded)))
        families["deliveries"].add_metric([*labels, "failed"], float(len(failed)))
        if failed:
            families["delivery_failed"].add_metric(labels, failed[-1].finished)
        if succeeded:
            families["delivery_success"].add_metric(labels, succeeded[-1].finished)
            families["delivery_rows"].add_metric(labels, succeeded[-1].rows)
        before = sorted(d.rows for d in succeeded[-TYPICAL_DELIVERIES - 1 : -1])
        if before:
            middle = len(before) // 2
            typical = before[middle] if len(before) % 2 else (before[middle - 1] + before[middle]) / 2
            families["delivery_typical_rows"].add_metric(labels, typical)
    if watch.late_after_seconds > 0:
        families["delivery_late_after"].add_metric([watch.project], watch.late_after_seconds)
    if watch.short_ratio > 0:
        families["delivery_short_ratio"].add_metric([watch.project], watch.short_ratio)


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


class MonitoringCollector:
    """A prometheus_client collector over a project's monitoring store (and the served versions).

    ``served`` returns the versions the service has loaded (for the training time and the
    registry's holdout value of the primary metric); ``store`` may be None when the service
    knows no project. ``task`` (the project's :class:`noria.tasks.Task`) names the primary
    metric and which way each metric is better, for records that do not say it themselves;
    ``metric_drop`` is the project's ``monitoring.policy.metric_drop``, exported as the one
    threshold the metric-drop alert compares with; ``deliveries`` (:meth:`Deliveries.of`) adds the
    batch delivery series the late, failed and short delivery alerts read.
    """

    def __init__(
        self,
        store: MonitoringStore | None,
        served: Callable[[], Iterable[ServedVersion]] | None = None,
        *,
        max_versions: int = DEFAULT_MAX_VERSIONS,
        task: Task | None = None,
        metric_drop: float | None = None,
        deliveries: Deliveries | None = None,
    ) -> None:
        if max_versions < 1:
            raise ValueError(f"max_versions must be at least 1, got {max_versions}")
        self.store = store
        self.served = served
        self.task = task
        self.metric_drop = metric_drop
        kinds: tuple[Kind, ...] = ("drift", "performance")
        self._files = {k: _RecordFiles(store.root / k, max_versions) for k in kinds} if store is not None else {}
        self.deliveries = deliveries
        self._delivery_files = _DeliveryFiles(deliveries.folder) if deliveries is not None else None
        self._lock = threading.Lock()  # scrapes may overlap; the file cache is not shared-safe

    def describe(self) -> Iterable[Metric]:
        """The metric families, without reading anything (what registration asks for)."""
        return list(metric_families().values())

    def collect(self) -> Iterator[Metric]:
        families = metric_families()
        with self._lock:
            if self.store is not None:
                self.store.refresh()  # records the monitoring Job wrote to monitoring.remote
            listings = {kind: files.scan() for kind, files in self._files.items()}
            delivered = self._delivery_files.scan() if self._delivery_files is not None else None
        if self.deliveries is not None and delivered is not None:
            _add_deliveries(families, self.deliveries, delivered[0])
            families["unreadable"].add_metric(["deliveries"], float(delivered[1]))
        holdout: dict[int, tuple[str, float]] = {}
        live: dict[int, tuple[str, str, float]] = {}  # version -> (window, metric, value) without a recorded drop
        for kind, listing in listings.items():
            if listing.last_write is not None:
                families["last_run"].add_metric([kind], listing.last_write)
            families["unreadable"].add_metric([kind], float(listing.unreadable))
            for record in listing.records:
                if kind == "drift":
                    add_drift(families, record)
                else:
                    add_performance(families, record, self.task, holdout, live)
        for served in _unique(self.served() if self.served is not None else ()):
            if served.trained_at is not None:
                families["trained"].add_metric([str(served.version)], served.trained_at)
            if served.holdout is not None and served.metric:
                holdout.setdefault(served.version, (served.metric, served.holdout))
        for version, (metric, value) in sorted(holdout.items()):
            families["holdout"].add_metric([str(version), metric], value)
            window, live_metric, live_value = live.get(version, ("", "", math.nan))
            higher = higher_is_better(metric, self.task)
            if live_metric == metric and higher is not None and math.isfinite(live_value):
                drop = value - live_value if higher else live_value - value
                families["drop"].add_metric([str(version), window, metric], drop)
        if self.metric_drop is not None:
            primary = self.task.primary_metric if self.task is not None else ""
            families["drop_threshold"].add_metric([primary], float(self.metric_drop))
        yield from families.values()


def _unique(served: Iterable[ServedVersion]) -> list[ServedVersion]:
    seen: dict[int, ServedVersion] = {}
    for item in served:
        seen.setdefault(item.version, item)
    return list(seen.values())


__all__ = ["DEFAULT_MAX_VERSIONS", "Deliveries", "MonitoringCollector", "ServedVersion", "primary_metric"]
