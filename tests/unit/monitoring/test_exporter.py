"""The monitoring exporter: records of the monitoring store as Prometheus gauges, read on scrape."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from noria.monitoring import DriftReport, ReferenceProfile, compute_drift
from noria.monitoring import exporter as exporter_module
from noria.monitoring.exporter import MonitoringCollector, ServedVersion
from noria.monitoring.store import MonitoringStore
from noria.task_metrics import kpi_default, task_metrics
from noria.tasks import BinaryTask, MulticlassTask, RegressionTask, Task

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(collector: MonitoringCollector) -> Samples:
    """The text a real scrape returns, parsed back: metric name -> [(labels, value)]."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    out: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(samples: Samples, series: str, /, **labels: str) -> float:
    found = [v for got, v in samples.get(series, []) if all(got.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, f"{series}{labels}: {samples.get(series)}"
    return found[0]


def frames(seed: int = 0, n: int = 4000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A training frame and a window in which temp and origin moved and minute did not."""
    rng = np.random.default_rng(seed)
    train = pd.DataFrame(
        {
            "temp": rng.normal(40, 10, n),
            "minute": rng.integers(0, 60, n).astype(float),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n),
        }
    )
    window = pd.DataFrame(
        {
            "temp": rng.normal(75, 8, n // 2),
            "minute": rng.integers(0, 60, n // 2).astype(float),
            "origin": rng.choice(["EWR", "JFK", "LGA"], n // 2, p=[0.7, 0.2, 0.1]),
        }
    )
    window.loc[: n // 8, "minute"] = np.nan  # a quarter of the window lost its minute
    return train, window


@pytest.fixture(scope="module")
def report() -> DriftReport:
    train, window = frames()
    rng = np.random.default_rng(1)
    profile = ReferenceProfile.build(
        train,
        scores=rng.beta(2, 6, len(train)),
        importance={"temp": 50.0, "origin": 30.0, "minute": 1.0},  # minute: under 5 % of the total
    )
    return compute_drift(profile, window, scores=rng.beta(5, 3, len(window)))


TASKS = {
    "binary": BinaryTask(label_name="positive"),
    "multiclass": MulticlassTask(classes=("H", "D", "A")),
    "regression": RegressionTask(label_name="glucose in 30 min", unit="mg/dL"),
}


def _predictions(task: Task, rng: np.random.Generator, n: int, skill: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions of a model of the given skill, in the task's encoding."""
    if task.name == "binary":
        y = (rng.random(n) < 0.3).astype(float)
        return y, np.clip(0.3 + skill * (y - 0.3) + rng.normal(0, 0.2, n), 0.01, 0.99)
    if task.name == "multiclass":
        y = rng.integers(0, 3, n).astype(float)
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), y.astype(int)] += 3 * skill
        p = np.exp(logits)
        return y, p / p.sum(axis=1, keepdims=True)
    y = rng.normal(140, 30, n)
    return y, y + rng.normal(0, 40 * (1 - skill) + 5, n)


def performance(
    task: Task,
    *,
    skill: float = 0.3,
    holdout: float | None = None,
    n: int = 900,
    kpi_target: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A performance record body as the feedback module writes it, its metrics from noria.task_metrics."""
    rng = np.random.default_rng(seed)
    y, pred = _predictions(task, rng, n, skill)
    metrics: dict[str, Any] = {"predictions": float(n + 100), "labelled": float(n)}
    metrics |= task_metrics(task, y, pred, threshold=0.5)
    if task.name == "multiclass":
        metrics |= {f"share_{c}": float((y == j).mean()) for j, c in enumerate(task.classes)}
    live = metrics[task.primary_metric]
    kpi_metric = kpi_default(task)
    kpi = {"metric": kpi_metric, "name": f"{kpi_metric} of the business", "value": metrics[kpi_metric]}
    return {
        "arm": "champion",
        "threshold": 0.5 if task.name == "binary" else None,
        "predictions": n + 100,
        "labelled": n,
        "metrics": metrics,
        "primary_metric": task.primary_metric,
        "holdout": holdout,
        "metric_drop": None if holdout is None else task.metric_drop(holdout, live),
        "kpi": kpi | ({} if kpi_target is None else {"target": kpi_target}),
        "days": [],
        "calibration": [],
        "unmatched_labels": 0,
        "arms": {},
    }


def test_a_drift_record_becomes_psi_missing_rate_alert_and_row_gauges(tmp_path: Path, report: DriftReport) -> None:
    store = MonitoringStore(tmp_path)
    store.save("drift", "2013-07", "m", 3, report.to_dict())
    samples = scrape(MonitoringCollector(store))

    by_name = {f.name: f for f in report.features}
    where = {"model_version": "3", "window": "2013-07"}
    for name, important in (("temp", "true"), ("origin", "true"), ("minute", "false")):
        got = value(samples, "noria_feature_drift_psi", feature=name, **where)
        assert got == pytest.approx(by_name[name].psi)
        assert value(samples, "noria_feature_drift_psi", feature=name, important=important) == got
        assert value(samples, "noria_feature_missing_rate", feature=name, **where) == pytest.approx(
            by_name[name].missing_current
        )
    assert value(samples, "noria_feature_drift_psi", feature="temp") > 0.25
    assert value(samples, "noria_feature_missing_rate", feature="minute") == pytest.approx(0.25, abs=0.01)
    assert report.score is not None
    assert value(samples, "noria_score_drift_psi", **where) == pytest.approx(report.score.psi)
    alerting = [f.name for f in report.features if f.alert]
    assert "temp" in alerting and "minute" not in alerting
    assert value(samples, "noria_drift_alerts", **where) == len(alerting)
    assert value(samples, "noria_drifted_features", **where) == sum(f.verdict == "drift" for f in report.features)
    assert value(samples, "noria_drift_window_rows", **where) == 2000
    written = (tmp_path / "drift" / "2013-07--v3.json").stat().st_mtime
    assert value(samples, "noria_monitoring_last_run_timestamp_seconds", kind="drift") == pytest.approx(written)
    assert value(samples, "noria_monitoring_unreadable_records", kind="drift") == 0


def test_only_the_newest_window_of_the_newest_versions_is_exported(tmp_path: Path, report: DriftReport) -> None:
    store = MonitoringStore(tmp_path)
    body = report.to_dict()
    for version, windows in {
        1: ["2013-01", "2013-02"],
        2: ["2013-02", "2013-03"],
        3: ["2013-03"],
        4: ["2013-04"],
    }.items():
        for window in windows:
            store.save("drift", window, "m", version, body)
    samples = scrape(MonitoringCollector(store, max_versions=3))
    exported = {(labels["model_version"], labels["window"]) for labels, _ in samples["noria_drift_window_rows"]}
    assert exported == {("4", "2013-04"), ("3", "2013-03"), ("2", "2013-03")}
    series = {tuple(sorted(labels.items())) for labels, _ in samples["noria_feature_drift_psi"]}
    assert len(series) == 3 * len(report.features)  # label sets stay bounded, never one per window


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_metric_of_the_newest_labelled_window_is_one_series_with_a_metric_label(
    tmp_path: Path, name: str
) -> None:
    task = TASKS[name]
    store = MonitoringStore(tmp_path)
    store.save("performance", "2013-07", "m", 3, performance(task, seed=1))
    newest = performance(task, seed=2)
    store.save("performance", "2013-08", "m", 3, newest)
    samples = scrape(MonitoringCollector(store, task=task))

    exported = {labels["metric"]: (labels, v) for labels, v in samples["noria_model_metric"]}
    expected = {k: v for k, v in newest["metrics"].items() if k not in ("rows", "predictions", "labelled")}
    assert set(exported) == {k for k, v in expected.items() if v is not None}
    for metric, (labels, got) in exported.items():
        assert labels == {"model_version": "3", "window": "2013-08", "metric": metric, "primary": labels["primary"]}
        assert got == pytest.approx(expected[metric])
        assert labels["primary"] == ("true" if metric == task.primary_metric else "false")
    assert task.primary_metric in exported
    if name == "multiclass":
        assert {"share_H", "share_D", "share_A", "accuracy", "macro_f1"} <= set(exported)
    if name == "regression":
        assert {"mae", "r2", "bias", "mean_label", "mean_prediction"} <= set(exported)
    if name == "binary":
        assert {"pr_auc", "precision", "recall", "brier", "ece", "base_rate", "flagged_rate"} <= set(exported)
    assert value(samples, "noria_labelled_predictions", model_version="3") == 900
    assert value(samples, "noria_window_predictions", model_version="3") == 1000


@pytest.mark.parametrize(
    ("name", "holdout", "worse"),
    [("binary", 0.9, True), ("binary", 0.5, False), ("multiclass", 0.2, True), ("regression", 5.0, True)],
)
def test_the_metric_drop_is_positive_when_live_is_worse_whichever_way_the_metric_points(
    tmp_path: Path, name: str, holdout: float, worse: bool
) -> None:
    task = TASKS[name]
    store = MonitoringStore(tmp_path)
    body = performance(task, holdout=holdout)
    store.save("performance", "2013-08", "m", 3, body)
    samples = scrape(MonitoringCollector(store, task=task, metric_drop=0.03))

    live = body["metrics"][task.primary_metric]
    drop = value(samples, "noria_model_metric_drop", model_version="3", window="2013-08", metric=task.primary_metric)
    assert drop == pytest.approx(body["metric_drop"])
    assert drop == pytest.approx(holdout - live if task.higher_is_better else live - holdout)
    assert (drop > 0) is worse
    assert samples["noria_model_holdout_metric"] == [({"model_version": "3", "metric": task.primary_metric}, holdout)]
    assert samples["noria_model_metric_drop_threshold"] == [({"metric": task.primary_metric}, 0.03)]


def test_the_holdout_of_a_served_version_comes_from_the_registry_and_gives_the_drop(tmp_path: Path) -> None:
    task = TASKS["regression"]
    store = MonitoringStore(tmp_path)
    store.save("performance", "2013-08", "m", 4, performance(task, holdout=None))  # the registry was away
    store.save("performance", "2013-08", "m", 3, performance(task, holdout=30.0, seed=3))
    served = [
        ServedVersion(4, trained_at=1_700_000_000.0, holdout=12.5, metric="rmse"),
        ServedVersion(4, 1.0, 99.0, "rmse"),  # the same version twice (champion and challenger): the first counts
        ServedVersion(3, None, 10.0, "rmse"),  # the record's own holdout wins over the registry's
    ]
    samples = scrape(MonitoringCollector(store, lambda: served, task=task))

    live = value(samples, "noria_model_metric", model_version="4", metric="rmse")
    assert value(samples, "noria_model_holdout_metric", model_version="4") == 12.5
    assert value(samples, "noria_model_holdout_metric", model_version="3") == 30.0
    assert value(samples, "noria_model_metric_drop", model_version="4", window="2013-08") == pytest.approx(live - 12.5)
    assert all(set(labels) == {"model_version", "metric"} for labels, _ in samples["noria_model_holdout_metric"])
    assert samples["noria_model_trained_timestamp_seconds"] == [({"model_version": "4"}, 1_700_000_000.0)]
    assert "noria_model_metric_drop_threshold" not in samples  # the project set no monitoring.policy.metric_drop


@pytest.mark.parametrize(("name", "target"), [("binary", 0.9), ("multiclass", 0.1), ("regression", 10.0)])
def test_the_kpi_its_target_and_the_shortfall_the_right_way_round(tmp_path: Path, name: str, target: float) -> None:
    task = TASKS[name]
    store = MonitoringStore(tmp_path)
    body = performance(task, kpi_target=target)
    store.save("performance", "2013-08", "m", 3, body)
    samples = scrape(MonitoringCollector(store, task=task))

    kpi = body["kpi"]
    where = {"model_version": "3", "window": "2013-08", "metric": kpi["metric"], "name": kpi["name"]}
    assert value(samples, "noria_model_kpi", **where) == pytest.approx(kpi["value"])
    assert value(samples, "noria_model_kpi_target", **where) == target
    shortfall = value(samples, "noria_model_kpi_shortfall", **where)
    higher = task.metric_directions[kpi["metric"]]  # recall, accuracy: higher is better; MAE: lower
    assert shortfall == pytest.approx(target - kpi["value"] if higher else kpi["value"] - target)
    # binary: recall under 0.9 misses; multi-class: accuracy over 0.1 meets; regression: MAE over 10 misses
    assert (shortfall > 0) is {"binary": True, "multiclass": False, "regression": True}[name]
    store.save("performance", "2013-08", "m", 3, performance(task))  # no target: the value only
    samples = scrape(MonitoringCollector(store, task=task))
    assert "noria_model_kpi_target" not in samples and "noria_model_kpi_shortfall" not in samples
    assert value(samples, "noria_model_kpi", model_version="3") == pytest.approx(kpi["value"])


def test_performance_series_stay_bounded_over_windows_and_versions(tmp_path: Path) -> None:
    task = TASKS["multiclass"]
    store = MonitoringStore(tmp_path)
    for version in range(1, 6):
        for month in range(1, 5):
            store.save("performance", f"2013-{month:02d}", "m", version, performance(task, holdout=0.3, seed=month))
    samples = scrape(MonitoringCollector(store, task=task, max_versions=3))
    per_version = len(
        [k for k, v in performance(task)["metrics"].items() if k not in ("predictions", "labelled", "rows")]
    )
    assert len(samples["noria_model_metric"]) == 3 * per_version
    assert {(labels["model_version"], labels["window"]) for labels, _ in samples["noria_model_metric"]} == {
        ("5", "2013-04"),
        ("4", "2013-04"),
        ("3", "2013-04"),
    }


def test_a_record_without_primary_metric_is_read_with_the_task_or_as_a_binary_record(tmp_path: Path) -> None:
    store = MonitoringStore(tmp_path)
    old = {"arm": "champion", "predictions": 10, "labelled": 9, "metrics": {"roc_auc": 0.7}, "holdout_auc": 0.75}
    store.save("performance", "2013-08", "m", 3, old)
    samples = scrape(MonitoringCollector(store))
    assert value(samples, "noria_model_metric", metric="roc_auc", primary="true") == 0.7
    assert value(samples, "noria_model_holdout_metric", model_version="3", metric="roc_auc") == 0.75
    assert value(samples, "noria_model_metric_drop", model_version="3") == pytest.approx(0.05)


def test_records_are_parsed_once_and_again_when_they_change(
    tmp_path: Path, report: DriftReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MonitoringStore(tmp_path)
    task = TASKS["binary"]
    first, second = performance(task, seed=1), performance(task, skill=0.6, seed=2)
    path = store.save("performance", "2013-07", "m", 3, first)
    reads: list[Path] = []
    real_read = exporter_module._read

    def counting(p: Path) -> dict[str, Any] | None:
        reads.append(p)
        return real_read(p)

    monkeypatch.setattr(exporter_module, "_read", counting)
    collector = MonitoringCollector(store, task=task)
    auc = {"metric": "roc_auc", "model_version": "3"}
    for _ in range(3):
        assert value(scrape(collector), "noria_model_metric", **auc) == pytest.approx(first["metrics"]["roc_auc"])
    assert reads == [path]
    store.save("performance", "2013-07", "m", 3, second)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks: make the change visible
    assert value(scrape(collector), "noria_model_metric", **auc) == pytest.approx(second["metrics"]["roc_auc"])
    assert reads == [path, path]


def test_an_unreadable_record_is_counted_not_fatal(tmp_path: Path, report: DriftReport) -> None:
    store = MonitoringStore(tmp_path)
    store.save("drift", "2013-07", "m", 3, report.to_dict())
    (tmp_path / "drift" / "2013-07--v4.json").write_text('{"kind": "drift", "window": "2013-0', encoding="utf-8")
    (tmp_path / "drift" / "notes.json").write_text("{}", encoding="utf-8")  # not a record name: ignored
    samples = scrape(MonitoringCollector(store))
    assert value(samples, "noria_monitoring_unreadable_records", kind="drift") == 1
    assert {labels["model_version"] for labels, _ in samples["noria_drift_window_rows"]} == {"3"}


def test_no_store_and_an_empty_store_export_no_samples_but_the_families(tmp_path: Path) -> None:
    for collector in (MonitoringCollector(None), MonitoringCollector(MonitoringStore(tmp_path / "absent"))):
        samples = scrape(collector)
        assert "noria_feature_drift_psi" not in samples and "noria_model_metric" not in samples
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MonitoringCollector(None))
    text = generate_latest(registry).decode()
    assert "# TYPE noria_feature_drift_psi gauge" in text and "# TYPE noria_model_holdout_metric gauge" in text
    assert not re.search(r"(?i)flight|\blate\b|\bdelays?\b", text)  # the help texts speak of any task
    with pytest.raises(ValueError, match="max_versions"):
        MonitoringCollector(None, max_versions=0)
