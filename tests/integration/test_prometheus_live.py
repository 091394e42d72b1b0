"""A real Prometheus (Debian's) scraping a real `noria serve`: the drift alert fires, the dashboard's PromQL works.

The loop, end to end on one machine, on the flights project (a binary model): a model registered
with its reference profile and holdout ROC AUC; `python -m noria serve` in a subprocess; shifted
traffic on /predict (visibility far below what the model learnt from), which the service logs
with each request's event key (``key.<id>``) and event time, computed by its log writer with the
project's own request mapping; the prediction log windowed and judged by ``drift_window``;
delayed labels (a file of request ids and labels) scored by ``record_feedback``; Prometheus
(scrape and rule evaluation every second, the repository's alert rules) until
NoriaImportantFeatureDrift fires. The task-independent performance series (the metrics, the
holdout value, the metric drop and its threshold, the KPI and its target) must reach Prometheus
as the record holds them. Then every target of the Grafana dashboard is queried: each must parse
and run, and each whose metrics exist must return data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from tests.conftest import free_port, require_binary
from tests.unit.serving.serving_support import make_migrated_db, make_project, train_booster, training_frame

from noria.config import Project

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "noria.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "noria.json"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
SERVING = """
serving:
  online_features: "off"
  poll_seconds: 0
  prediction_log: {roll_seconds: 0.2}
monitoring:
  kpi: {metric: recall, name: positives flagged in advance, target: 0.99}
"""
WINDOW = "2013-07"
ROWS = 400
# Grafana's variables, as the dashboard resolves them against this test's Prometheus
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m", "$job": "noria"}
# metrics this test makes the service export: every panel reading only these must show data
PRODUCED = {
    "noria_http_request_duration_seconds_bucket",
    "noria_http_requests_total",
    "noria_predictions_total",
    "noria_prediction_score_bucket",
    "noria_out_of_distribution_total",
    "noria_feature_lookup_duration_seconds_bucket",
    "noria_model_info",
    "noria_model_trained_timestamp_seconds",
    "noria_model_holdout_metric",
    "noria_feature_drift_psi",
    "noria_feature_missing_rate",
    "noria_score_drift_psi",
    "noria_drift_alerts",
    "noria_model_metric",
    "noria_model_metric_drop",
    "noria_model_metric_drop_threshold",
    "noria_model_kpi",
    "noria_model_kpi_target",
    "noria_model_kpi_shortfall",
    "noria_labelled_predictions",
    "noria_window_predictions",
    "noria_monitoring_last_run_timestamp_seconds",
}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def _register_with_profile(project: Project, tmp: Path) -> int:
    """A real booster, registered with its reference profile (a run artifact) and its holdout AUC."""
    from sklearn.metrics import roc_auc_score

    from noria.monitoring import ReferenceProfile
    from noria.registry import Evaluation, collect_lineage, record_evaluation, start_run
    from noria.registry.mlflow_client import get_client

    booster = train_booster(seed=0)
    frame, _ = training_frame(seed=0)
    importance = dict(zip(booster.feature_name(), booster.feature_importance("gain").tolist(), strict=True))
    profile = ReferenceProfile.build(frame, scores=booster.predict(frame), importance=importance)
    path = profile.save(tmp / "reference_profile.json")
    lineage = collect_lineage(
        project, data_snapshot="snap1", feature_service="flight_delay", feature_definition_hash="h"
    )
    with start_run(project, "train", lineage) as run:
        run.log_artifact(path)
        info = run.log_model(booster, "flight-delay")
    get_client(project).set_registered_model_alias("flight-delay", "champion", str(info.version))
    holdout, label = training_frame(seed=7, n=2000)
    scores = booster.predict(holdout)
    auc = float(roc_auc_score(label, scores))
    record_evaluation(project, "flight-delay", info.version, Evaluation.from_arrays({"roc_auc": auc}, scores))
    return info.version


def _shifted_flights() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """July flights whose visibility sits far below the training range (0-10 miles), and their labels.

    A label row holds the flight's request ids as the flights table has them (``features.request.ids``,
    the table's primary key: the date and scheduled time in New York, carrier, number, origin)
    and ``label``; the departures are given in New York time (UTC-4 in July), so the ids read
    straight off them.
    """
    rng = np.random.default_rng(3)
    flights, labels = [], []
    for i in range(ROWS):
        carrier, origin = str(rng.choice(["UA", "AA", "DL"])), str(rng.choice(["EWR", "JFK", "LGA"]))
        visib = float(rng.uniform(0, 4))
        day, hour, minute = 1 + i % 28, 6 + i % 15, (7 * i) % 60
        departs = f"2013-07-{day:02d}T{hour:02d}:{minute:02d}:00-04:00"
        temp = 150.0 if i % 40 == 0 else float(rng.normal(60, 15))  # a few out of the training range
        features = {"visib": visib, "temp": temp, "distance": float(rng.uniform(100, 2500)), "carrier": carrier}
        features["origin"] = origin
        flight = {"carrier": carrier, "flight": i + 1, "origin": origin, "scheduled_departure": departs}
        flights.append({**flight, "dest": "IAH", "distance": features["distance"], "features": features})
        late = visib < 3 or (carrier == "DL" and rng.random() < 0.4) or rng.random() < 0.12
        late = late != (rng.random() < 0.25)  # outcomes noisier than in training: the live AUC falls
        ids = {"year": 2013, "month": 7, "day": day, "carrier": carrier, "flight": i + 1, "origin": origin}
        labels.append({**ids, "sched_dep_time": hour * 100 + minute, "label": "true" if late else "false"})
    return flights, labels


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Project:
    import mlflow

    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(f"mlflow-db-{mlflow.__version__}") if cache is not None else None
    return make_project(tmp_path / "proj", make_migrated_db(folder, tmp_path), extra=SERVING)


@pytest.fixture
def stack(project: Project, tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    """`noria serve` and Prometheus scraping it; yields (service URL, Prometheus URL, model version)."""
    prometheus = require_binary("prometheus")
    version = _register_with_profile(project, tmp_path)
    port, prom_port = free_port(), free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "noria", "metrics_path": "/metrics", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORIA_")} | {"MLFLOW_DISABLE_TELEMETRY": "true"}
    serve_log, prom_log = tmp_path / "serve.log", tmp_path / "prometheus.log"
    started: list[subprocess.Popen[bytes]] = []
    try:
        with serve_log.open("wb") as out:
            command = [sys.executable, "-m", "noria", "--project", str(project.root), "serve", "--insecure-local"]
            started.append(
                subprocess.Popen([*command, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
            )
        with prom_log.open("wb") as out:
            args = [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ]
            started.append(subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT))
        base, prom = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}"
        _wait_http(f"{prom}/-/ready", started[1], prom_log, 30)
        _wait_http(f"{base}/ready", started[0], serve_log, 120)
        yield base, prom, version
    finally:
        for proc in reversed(started):
            _stop(proc)


def _query(prom: str, expr: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    return body


def _firing(prom: str, name: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == name and a["state"] == "firing"]


def _dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def _resolve(expr: str) -> str:
    for name, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown dashboard variable in {expr}"
    return expr


@pytest.mark.integration
def test_drift_alert_fires_and_every_dashboard_query_runs(stack: tuple[str, str, int], project: Project) -> None:
    from noria.monitoring.feedback import record_feedback
    from noria.monitoring.window import drift_window, read_window

    base, prom, version = stack
    flights, labels = _shifted_flights()
    with httpx.Client(base_url=base, timeout=30) as client:
        batched, single = flights[: ROWS - 20], flights[ROWS - 20 :]
        for start in range(0, len(batched), 50):
            r = client.post("/predict", json={"flights": batched[start : start + 50]})
            assert r.status_code == 200, r.text
        for flight in single:
            assert client.post("/predict", json=flight).status_code == 200
    deadline = time.monotonic() + 30
    while len(rows := _logged(project, read_window)) < ROWS:  # the log rolls every 0.2 s
        assert time.monotonic() < deadline, f"{len(rows)} of {ROWS} rows in the prediction log"
        time.sleep(0.2)

    [drift] = drift_window(project, WINDOW)
    assert drift.model_version == version and "visib" in drift.report.alerts
    visib = next(f for f in drift.report.features if f.name == "visib")
    assert visib.psi > 0.25 and (visib.importance or 0) >= 0.05
    logged = _logged(project, read_window)
    assert {c for c in logged.columns if c.startswith("key.")} >= {"key.flight", "key.sched_dep_time"}
    labels_csv = Path(project.root) / "labels.csv"
    header = list(labels[0])
    labels_csv.write_text(
        ",".join(header) + "\n" + "".join(",".join(str(x[c]) for c in header) + "\n" for x in labels),
        encoding="utf-8",
    )
    [performance] = record_feedback(project, labels_csv).results
    assert performance.labelled == ROWS and performance.primary_metric == "roc_auc"
    assert performance.live is not None and performance.holdout is not None and performance.metric_drop is not None

    deadline = time.monotonic() + 60
    while not (firing := _firing(prom, "NoriaImportantFeatureDrift")):
        assert time.monotonic() < deadline, httpx.get(f"{prom}/api/v1/alerts", timeout=10).text
        time.sleep(0.5)
    features = {a["labels"]["feature"] for a in firing}
    assert "visib" in features
    assert {(a["labels"]["model_version"], a["labels"]["window"]) for a in firing} == {(str(version), WINDOW)}
    assert float(next(a for a in firing if a["labels"]["feature"] == "visib")["value"]) == pytest.approx(visib.psi)

    # the performance record reached Prometheus as written, in the task-independent series
    where = f'model_version="{version}"'
    deadline = time.monotonic() + 30
    while not (live := _query(prom, f'noria_model_metric{{{where}, primary="true"}}')["data"]["result"]):
        assert time.monotonic() < deadline, "noria_model_metric never scraped"
        time.sleep(0.5)
    assert live[0]["metric"]["metric"] == "roc_auc" and live[0]["metric"]["window"] == WINDOW
    assert float(live[0]["value"][1]) == pytest.approx(performance.live)
    [holdout] = _query(prom, f"noria_model_holdout_metric{{{where}}}")["data"]["result"]
    assert holdout["metric"]["metric"] == "roc_auc" and float(holdout["value"][1]) == pytest.approx(performance.holdout)
    [drop] = _query(prom, f"noria_model_metric_drop{{{where}}}")["data"]["result"]
    assert float(drop["value"][1]) == pytest.approx(performance.metric_drop)
    [threshold] = _query(prom, "noria_model_metric_drop_threshold")["data"]["result"]
    assert float(threshold["value"][1]) == project.config.monitoring.policy.metric_drop
    [shortfall] = _query(prom, f"noria_model_kpi_shortfall{{{where}}}")["data"]["result"]
    recall = performance.metrics["recall"]
    assert recall is not None and float(shortfall["value"][1]) == pytest.approx(0.99 - recall)
    assert shortfall["metric"]["name"] == "positives flagged in advance"
    # noisier outcomes than at training: the live AUC is worse than the holdout's by more than the
    # project's threshold, and the recall misses its target of 0.99: both alerts fire
    assert performance.metric_drop > float(threshold["value"][1]) and recall < 0.99
    deadline = time.monotonic() + 30
    while not (_firing(prom, "NoriaMetricDrop") and _firing(prom, "NoriaKPIMissesTarget")):
        assert time.monotonic() < deadline, httpx.get(f"{prom}/api/v1/alerts", timeout=10).text
        time.sleep(0.5)
    [dropped] = _firing(prom, "NoriaMetricDrop")
    assert dropped["labels"] | {"alertname": ""} == {
        "alertname": "",
        "model_version": str(version),
        "window": WINDOW,
        "metric": "roc_auc",
        "severity": "critical",
        "team": "ml",
    }
    assert float(dropped["value"]) == pytest.approx(performance.metric_drop)

    # rate() needs two scrapes of a series inside its range: on a fast run the checks above can
    # finish a second after the first request was counted, so wait for the second scrape
    deadline = time.monotonic() + 30
    while not _query(prom, "rate(noria_predictions_total[1m])")["data"]["result"]:
        assert time.monotonic() < deadline, "noria_predictions_total was never scraped twice"
        time.sleep(0.5)
    present = set(httpx.get(f"{prom}/api/v1/label/__name__/values", timeout=10).json()["data"])
    assert present >= PRODUCED, f"not exported: {sorted(PRODUCED - present)}"
    problems, checked = [], 0
    for title, expr in _dashboard_targets():
        answer = _query(prom, _resolve(expr))
        if answer.get("status") != "success":
            problems.append(f"{title}: {answer.get('error')} in {expr}")
            continue
        if set(re.findall(r"\bnoria_\w+", expr)) <= present:
            checked += 1
            if not answer["data"]["result"]:
                problems.append(f"{title}: no data from {expr}")
    assert not problems, "\n".join(problems)
    assert checked >= 20, f"only {checked} dashboard targets had all their metrics"


def _logged(project: Project, read_window: Any) -> Any:
    import pandas as pd

    from noria.errors import NotFoundError

    try:
        return read_window(project, WINDOW)
    except NotFoundError:  # no file rolled yet
        return pd.DataFrame()


def test_dashboard_is_valid_grafana_json_on_the_provisioned_datasource() -> None:
    """Static checks a Grafana import would trip over (no Grafana needed)."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    uid = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"][0]["uid"]
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": uid}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == uid and t["refId"] and t["expr"].strip(), p["title"]
            _resolve(t["expr"])  # only variables the dashboard defines (or Grafana's own)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"job"}
    for v in dashboard["templating"]["list"]:
        assert v["datasource"]["uid"] == uid
