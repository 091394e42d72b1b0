"""The monitoring exporter: records of the monitoring store as Prometheus gauges, read on scrape."""

from __future__ import annotations

import os
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


def value(samples: Samples, name: str, **labels: str) -> float:
    found = [v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {samples.get(name)}"
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


def performance(auc: float, holdout: float | None, labelled: int = 900) -> dict[str, Any]:
    """A performance record body in the feedback module's layout."""
    metrics = {
        "roc_auc": auc,
        "pr_auc": 0.41,
        "precision": 0.52,
        "recall": 0.33,
        "brier": 0.15,
        "ece": 0.04,
        "base_rate": 0.22,
        "flagged_rate": 0.14,
        "kpi_delayed_flagged": 0.33,
    }
    return {
        "arm": "champion",
        "threshold": 0.5,
        "predictions": 1000,
        "labelled": labelled,
        "metrics": metrics,
        "holdout_auc": holdout,
        "days": [],
        "calibration": [],
    }


def test_a_drift_record_becomes_psi_missing_rate_alert_and_row_gauges(tmp_path: Path, report: DriftReport) -> None:
    store = MonitoringStore(tmp_path)
    store.save("drift", "2013-07", "flight-delay", 3, report.to_dict())
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
            store.save("drift", window, "flight-delay", version, body)
    samples = scrape(MonitoringCollector(store, max_versions=3))
    exported = {(labels["model_version"], labels["window"]) for labels, _ in samples["noria_drift_window_rows"]}
    assert exported == {("4", "2013-04"), ("3", "2013-03"), ("2", "2013-03")}
    series = {tuple(sorted(labels.items())) for labels, _ in samples["noria_feature_drift_psi"]}
    assert len(series) == 3 * len(report.features)  # label sets stay bounded, never one per window


def test_performance_records_and_served_versions_give_auc_holdout_and_training_time(tmp_path: Path) -> None:
    store = MonitoringStore(tmp_path)
    store.save("performance", "2013-07", "flight-delay", 3, performance(0.70, 0.74))
    store.save("performance", "2013-08", "flight-delay", 3, performance(0.66, 0.74, labelled=1200))
    store.save("performance", "2013-08", "flight-delay", 4, performance(0.73, None))
    served = [ServedVersion(4, trained_at=1_700_000_000.0, holdout_auc=0.75), ServedVersion(4, 1.0, 0.1)]
    samples = scrape(MonitoringCollector(store, lambda: served))

    assert value(samples, "noria_model_auc", model_version="3", window="2013-08") == pytest.approx(0.66)
    assert [labels["window"] for labels, _ in samples["noria_model_auc"] if labels["model_version"] == "3"] == [
        "2013-08"
    ]
    assert value(samples, "noria_model_precision", model_version="3") == pytest.approx(0.52)
    assert value(samples, "noria_model_recall", model_version="3") == pytest.approx(0.33)
    assert value(samples, "noria_model_ece", model_version="4") == pytest.approx(0.04)
    assert value(samples, "noria_model_kpi_delayed_flagged", model_version="4") == pytest.approx(0.33)
    assert value(samples, "noria_labelled_predictions", model_version="3") == 1200
    assert value(samples, "noria_window_predictions", model_version="3") == 1000
    # the holdout AUC: from the record, else from the registry through the served version
    assert value(samples, "noria_model_holdout_auc", model_version="3") == pytest.approx(0.74)
    assert value(samples, "noria_model_holdout_auc", model_version="4") == pytest.approx(0.75)
    assert all(set(labels) == {"model_version"} for labels, _ in samples["noria_model_holdout_auc"])
    assert samples["noria_model_trained_timestamp_seconds"] == [({"model_version": "4"}, 1_700_000_000.0)]


def test_records_are_parsed_once_and_again_when_they_change(
    tmp_path: Path, report: DriftReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MonitoringStore(tmp_path)
    path = store.save("performance", "2013-07", "flight-delay", 3, performance(0.70, 0.74))
    reads: list[Path] = []
    real_read = exporter_module._read

    def counting(p: Path) -> dict[str, Any] | None:
        reads.append(p)
        return real_read(p)

    monkeypatch.setattr(exporter_module, "_read", counting)
    collector = MonitoringCollector(store)
    for _ in range(3):
        assert value(scrape(collector), "noria_model_auc", model_version="3") == pytest.approx(0.70)
    assert reads == [path]
    store.save("performance", "2013-07", "flight-delay", 3, performance(0.61, 0.74))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks: make the change visible
    assert value(scrape(collector), "noria_model_auc", model_version="3") == pytest.approx(0.61)
    assert reads == [path, path]


def test_an_unreadable_record_is_counted_not_fatal(tmp_path: Path, report: DriftReport) -> None:
    store = MonitoringStore(tmp_path)
    store.save("drift", "2013-07", "flight-delay", 3, report.to_dict())
    (tmp_path / "drift" / "2013-07--v4.json").write_text('{"kind": "drift", "window": "2013-0', encoding="utf-8")
    (tmp_path / "drift" / "notes.json").write_text("{}", encoding="utf-8")  # not a record name: ignored
    samples = scrape(MonitoringCollector(store))
    assert value(samples, "noria_monitoring_unreadable_records", kind="drift") == 1
    assert {labels["model_version"] for labels, _ in samples["noria_drift_window_rows"]} == {"3"}


def test_no_store_and_an_empty_store_export_no_samples_but_the_families(tmp_path: Path) -> None:
    for collector in (MonitoringCollector(None), MonitoringCollector(MonitoringStore(tmp_path / "absent"))):
        samples = scrape(collector)
        assert "noria_feature_drift_psi" not in samples and "noria_model_auc" not in samples
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MonitoringCollector(None))
    text = generate_latest(registry).decode()
    assert "# TYPE noria_feature_drift_psi gauge" in text and "# TYPE noria_model_holdout_auc gauge" in text
    with pytest.raises(ValueError, match="max_versions"):
        MonitoringCollector(None, max_versions=0)
