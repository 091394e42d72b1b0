"""Prometheus metrics of the service (``GET /metrics``), on a registry of its own per app.

Label values are bounded: endpoints are the service's routes (anything else is ``other``),
statuses are HTTP codes, versions and arms come from the registry, OOD kinds are three words.
Children are cached so the hot path pays for a dict lookup and an increment, not for
label resolution.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from noria.tasks import Task

ENDPOINTS = frozenset({"/predict", "/health", "/ready", "/version", "/metrics", "/reload", "/docs", "/openapi.json"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOKUP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # a probability (binary, multi-class)
# A regression model's predicted value: 1-2-5 steps from 0.01 to 50,000, either sign, and zero.
_STEPS = tuple(m * 10.0**e for e in range(-2, 5) for m in (1, 2, 5))
VALUE_BUCKETS = (*(-v for v in reversed(_STEPS)), 0.0, *_STEPS)
SCORE_NAME = "noria_prediction_score"


def score_help(task: Task | None = None) -> str:
    """What the score histogram counts, in the task's terms."""
    if task is None:
        return (
            "Score of each served prediction: the probability of the positive class (binary), the probability "
            "of the predicted class (multi-class) or the predicted value (regression)."
        )
    if task.name == "binary":
        named = f" ({task.label_name})" if task.label_name and task.label_name != "decision" else ""
        return f"Predicted probability of the positive class{named}, per served prediction."
    if task.name == "multiclass":
        return "Probability of the predicted class (the model's confidence), per served prediction."
    what = task.label_name if task.label_name and task.label_name != "prediction" else "the target"
    unit = f", in {task.unit}" if task.unit else ""
    return f"Predicted value of {what}{unit}, per served prediction."


class ServingMetrics:
    """The service's metrics; ``task`` (or :meth:`set_task` before the first prediction) shapes the score histogram."""

    def __init__(self, task: Task | None = None) -> None:
        self.shared = _multiprocess()  # one of several workers sharing one /metrics (noria serve --workers N)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "noria_http_request_duration_seconds",
            "Time from request start to response end, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "noria_http_requests", "HTTP requests by endpoint and status code.", ["endpoint", "status"], registry=r
        )
        self.predictions = Counter(
            "noria_predictions",
            "Predictions made, by model version and A/B arm (shadow = challenger not returned).",
            ["model_version", "arm"],
            registry=r,
        )
        self.score = self._score_histogram(task)
        self.ood = Counter(
            "noria_out_of_distribution", "Predictions flagged out of distribution, by reason.", ["kind"], registry=r
        )
        self.lookup = Histogram(
            "noria_feature_lookup_duration_seconds",
            "Online feature store lookup time per request.",
            buckets=LOOKUP_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "noria_model_info",
            "The model versions loaded (value 1), by alias.",
            ["name", "version", "alias", "run_id", "feature_definition_hash"],
            registry=r,
            multiprocess_mode="livemax",  # several workers: 1 while any live worker serves the version
        )
        self.reloads = Counter("noria_model_reloads", "Model swaps and failed reloads.", ["result"], registry=r)
        self.log_dropped = Counter(
            "noria_prediction_log_dropped_rows",
            "Prediction log rows dropped because the writer fell behind.",
            registry=r,
        )
        self.log_shipped = Counter(
            "noria_prediction_log_uploads",
            "Prediction log files shipped to object storage (result=ok) and failed uploads (result=failed, retried).",
            ["result"],
            registry=r,
        )
        self.log_unshipped = Gauge(
            "noria_prediction_log_unshipped_files",
            "Prediction log files written but not yet in object storage (as of the last upload attempt).",
            registry=r,
            multiprocess_mode="livesum",  # several workers: each has its own writer and files
        )
        self._children: dict[tuple[str, ...], Any] = {}
        self._collectors: list[Collector] = []  # computed on scrape by the worker asked (not in the shared files)

    def observe_shipping(self, ok: bool, pending: int) -> None:
        """One upload attempt of a prediction log file: its result, and how many files still wait."""
        self._child(self.log_shipped, "ok" if ok else "failed").inc()
        self.log_unshipped.set(pending)

    def _score_histogram(self, task: Task | None) -> Histogram:
        buckets = VALUE_BUCKETS if task is not None and task.name == "regression" else SCORE_BUCKETS
        return Histogram(SCORE_NAME, score_help(task), buckets=buckets, registry=self.registry)

    def set_task(self, task: Task) -> None:
        """Describe the score histogram in ``task``'s terms (probability buckets, or value buckets for regression).

        Replaces the histogram: call it before the first prediction (the app does, when it is built).
        """
        self.registry.unregister(self.score)
        self.score = self._score_histogram(task)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        if endpoint not in ENDPOINTS:
            endpoint = "other"
        self._child(self.latency, endpoint).observe(seconds)
        self._child(self.requests, endpoint, str(status)).inc()

    def observe_prediction(self, version: int, arm: str, score: float, ood_kinds: list[str]) -> None:
        """Count one prediction; ``score`` is the task's one number per row (probability, confidence or value)."""
        self._child(self.predictions, str(version), arm).inc()
        self.score.observe(score)
        for kind in ood_kinds:
            self._child(self.ood, kind).inc()

    def set_model(self, described: dict[str, Any]) -> None:
        """Mark ``described`` as the version behind its alias (clearing the alias' previous version)."""
        alias = str(described["alias"])
        with self.model_info._lock:
            stale = [labels for labels in self.model_info._metrics if labels[2] == alias]
        for labels in stale:
            # Under PROMETHEUS_MULTIPROC_DIR (several workers, one scrape) prometheus_client cannot
            # remove a label set: its value file stays and is exported. The version that left the
            # alias reads 0 there; elsewhere it is removed.
            self.model_info.labels(*labels).set(0)
            if not self.shared:
                with warnings.catch_warnings():  # it warns whenever the variable is set (Feast's import sets it)
                    warnings.simplefilter("ignore", UserWarning)
                    self.model_info.remove(*labels)
        self.model_info.labels(
            str(described["name"]),
            str(described["version"]),
            alias,
            str(described["run_id"] or ""),
            str(described["feature_definition_hash"] or ""),
        ).set(1)

    def watch_feature_cache(self, cache: Any) -> None:
        """Export a :class:`noria.features.lookup.ReadCache`'s hits, misses, size and store changes (on scrape)."""
        self.add_collector(_FeatureCacheCollector(cache, worker=str(os.getpid()) if self.shared else None))

    def add_collector(self, collector: Collector) -> None:
        """A collector whose values are computed on scrape (monitoring records, the read cache)."""
        self._collectors.append(collector)
        self.registry.register(collector)

    def expose(self) -> tuple[bytes, str]:
        """The text of ``/metrics``. Several workers (prometheus_client's multi-process mode): the
        counters, histograms and gauges of every worker, summed (gauges as their modes say) from
        the shared folder, so a scrape answered by any worker sees the whole service; plus this
        worker's collectors."""
        if not self.shared:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        folder = os.environ[SHARED_ENV]
        registry.register(_Named(multiprocess.MultiProcessCollector(None, folder), PREFIX))  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def worker_exited(self) -> None:
        """Drop this process's live gauges from the shared folder (a worker's shutdown)."""
        if self.shared:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


SHARED_ENV = "NORIA_SHARED_METRICS_DIR"  # the folder `noria serve --workers N` gives its workers' metrics
PREFIX = "noria_"


def _multiprocess() -> bool:
    """Whether this process is one of several workers sharing one /metrics: `noria serve --workers N`
    put prometheus_client in its multi-process mode, in a folder of its own (both variables name it).

    Importing Feast sets PROMETHEUS_MULTIPROC_DIR too, to a folder Feast makes for its feature
    server (feast.metrics), and child processes inherit it: that alone never makes Noria's
    /metrics a sum over the processes that happen to share it.
    """
    from prometheus_client import values

    folder = os.environ.get(SHARED_ENV)
    multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
    return bool(folder) and folder == os.environ.get("PROMETHEUS_MULTIPROC_DIR") and multiprocess


class _Named(Collector):
    """Only the families of ``inner`` whose names start with ``prefix`` (the shared folder also
    holds the metrics other libraries define in the workers, Feast's among them)."""

    def __init__(self, inner: Any, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def collect(self) -> Iterator[Any]:
        return (family for family in self.inner.collect() if family.name.startswith(self.prefix))


class _FeatureCacheCollector(Collector):
    """The read cache's counts. Each worker has its own cache: with several, the series carry the
    worker's pid (``sum by (result)`` gives the service's)."""

    def __init__(self, cache: Any, worker: str | None = None) -> None:
        self.cache = cache
        self.worker = worker

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        worker = [] if self.worker is None else [self.worker]
        names = [] if self.worker is None else ["worker"]
        lookups = CounterMetricFamily(
            "noria_feature_cache_lookups",
            "Online feature reads asked of the read cache, by result (hit: served from it; miss: read from the store).",
            labels=["result", *names],
        )
        lookups.add_metric(["hit", *worker], self.cache.hits)
        lookups.add_metric(["miss", *worker], self.cache.misses)
        yield lookups
        entries = GaugeMetricFamily("noria_feature_cache_entries", "Entity keys held by the read cache.", labels=names)
        entries.add_metric(worker, len(self.cache))
        yield entries
        changes = CounterMetricFamily(
            "noria_feature_cache_store_changes",
            "Times the online store changed (a materialization) and the read cache dropped every read it held.",
            labels=names,
        )
        changes.add_metric(worker, self.cache.changes)
        yield changes


__all__ = ["SCORE_BUCKETS", "VALUE_BUCKETS", "ServingMetrics", "score_help"]
