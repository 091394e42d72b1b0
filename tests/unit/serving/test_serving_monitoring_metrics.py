"""/metrics carries the monitoring results and the served version's training facts (a real registry),
and the score histogram in the task's terms."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import lightgbm as lgb
import numpy as np
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.serving.conftest import AppFactory
from tests.unit.serving.serving_support import FLIGHT, INLINE, KEY, make_project, register

from noria.config import Project
from noria.monitoring.store import MonitoringStore
from noria.serving.metrics import SCORE_BUCKETS, VALUE_BUCKETS, ServingMetrics, score_help
from noria.tasks import BinaryTask, MulticlassTask, RegressionTask, task_of


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def test_metrics_export_the_store_and_the_served_versions_registry_facts(
    project: Project, booster: lgb.Booster, make_app: AppFactory
) -> None:
    from noria.registry import Evaluation, record_evaluation
    from noria.registry.mlflow_client import get_client

    version = register(project, booster)
    rng = np.random.default_rng(0)
    record_evaluation(project, "flight-delay", version, Evaluation.from_arrays({"roc_auc": 0.7421}, rng.random(50)))
    run_id = get_client(project).get_model_version("flight-delay", str(version)).run_id
    assert run_id
    started = get_client(project).get_run(run_id).info.start_time / 1000
    drift = {"rows": 10, "features": [{"name": "temp", "psi": 0.4, "importance": 0.6, "missing_current": 0.0}]}
    MonitoringStore.of(project).save("drift", "2013-07", "flight-delay", version, drift)

    with TestClient(make_app(project)) as client:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    samples = _samples(response.text)
    assert samples["noria_model_trained_timestamp_seconds"] == [({"model_version": str(version)}, started)]
    # the holdout value of the task's primary metric (binary: ROC AUC), from the registry
    assert samples["noria_model_holdout_metric"] == [({"model_version": str(version), "metric": "roc_auc"}, 0.7421)]
    # the project's monitoring.policy.metric_drop, the threshold of the NoriaMetricDrop alert
    threshold = project.config.monitoring.policy.metric_drop
    assert threshold is not None
    assert samples["noria_model_metric_drop_threshold"] == [({"metric": "roc_auc"}, threshold)]
    labels = {"feature": "temp", "important": "true", "model_version": str(version), "window": "2013-07"}
    assert samples["noria_feature_drift_psi"] == [(labels, 0.4)]
    # the serving metrics are still there, on the same registry, the score described in the task's terms
    assert any(labels["alias"] == "champion" for labels, _ in samples["noria_model_info"])
    assert f"# HELP noria_prediction_score {score_help(task_of(project))}" in response.text


def test_every_noria_predict_run_reaches_metrics_as_delivery_series(
    tmp_path: Path, migrated_db: Path, booster: lgb.Booster, make_app: AppFactory
) -> None:
    """Real batch runs (score_file, what `noria predict` runs) leave records; /metrics exports them."""
    import pandas as pd

    from noria.serving.batch import list_deliveries, score_file
    from noria.serving.config import serving_config

    extra = "serving:\n  batch: {late_after_seconds: 93600, short_ratio: 0.4}\n"
    project = make_project(tmp_path / "proj", migrated_db, extra=extra)
    register(project, booster)
    assert serving_config(project).batch.late_after_seconds == 93600
    rows = pd.DataFrame([{**FLIGHT, **INLINE}] * 12)  # the features in the file: nothing to look up
    rows["scheduled_departure"] = pd.to_datetime(rows["scheduled_departure"], utc=True)
    for n in (12, 10, 4):
        rows.iloc[:n].to_parquet(tmp_path / f"in{n}.parquet")
        score_file(project, tmp_path / f"in{n}.parquet", tmp_path / f"out{n}.parquet")
    newest = list_deliveries(project)[-1]
    assert newest.status == "succeeded" and newest.rows_out == 4

    with TestClient(make_app(project)) as client:
        samples = _samples(client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).text)
    where = {"project": project.config.project, "model": newest.model_name}
    finished = datetime.fromisoformat(newest.finished_at).timestamp()
    assert samples["noria_batch_delivery_last_success_timestamp_seconds"] == [(where, finished)]
    assert samples["noria_batch_delivery_last_success_rows"] == [(where, 4.0)]
    assert samples["noria_batch_delivery_typical_rows"] == [(where, 11.0)]  # median of 12 and 10
    assert sorted(samples["noria_batch_deliveries"], key=str) == sorted(
        [({**where, "status": "succeeded"}, 3.0), ({**where, "status": "failed"}, 0.0)], key=str
    )
    assert samples["noria_batch_delivery_late_after_seconds"] == [({"project": project.config.project}, 93600.0)]
    assert samples["noria_batch_delivery_short_ratio"] == [({"project": project.config.project}, 0.4)]


def test_an_app_without_a_project_exports_only_what_it_serves(served_project: Project) -> None:
    from noria.serving.app import create_app
    from noria.serving.config import ServingConfig
    from noria.serving.requests import request_schema

    app = create_app(
        None,
        config=ServingConfig.model_validate({"prediction_log": {"enabled": False}}),
        request=request_schema(served_project),
    )
    with TestClient(app) as client:
        samples = _samples(client.get("/metrics").text)
    assert "noria_model_trained_timestamp_seconds" not in samples and "noria_feature_drift_psi" not in samples
    assert "noria_monitoring_unreadable_records" not in samples  # no store, no folder facts


def test_the_score_histogram_speaks_of_the_task() -> None:
    def text(metrics: ServingMetrics) -> str:
        from prometheus_client import generate_latest

        return generate_latest(metrics.registry).decode()

    binary = ServingMetrics(BinaryTask(label_name="churned"))
    binary.observe_prediction(1, "champion", 0.72, [])
    assert "Predicted probability of the positive class (churned)" in text(binary)
    assert 'noria_prediction_score_bucket{le="0.75"} 1.0' in text(binary)
    assert "Probability of the predicted class" in score_help(MulticlassTask(classes=("H", "D", "A")))

    regression = ServingMetrics()
    assert "the predicted value (regression)" in text(regression)  # no task yet: every task's meaning
    regression.set_task(RegressionTask(label_name="glucose in 30 min", unit="mg/dL"))
    regression.observe_prediction(1, "champion", 143.0, [])
    regression.observe_prediction(1, "champion", -3.0, [])
    shown = text(regression)
    assert "Predicted value of glucose in 30 min, in mg/dL" in shown
    assert 'noria_prediction_score_bucket{le="200.0"} 2.0' in shown
    assert 'noria_prediction_score_bucket{le="100.0"} 1.0' in shown and 'le="0.0"} 1.0' in shown
    assert shown.count("# HELP noria_prediction_score ") == 1  # replaced, not added
    assert min(VALUE_BUCKETS) < 0 < max(VALUE_BUCKETS) and max(SCORE_BUCKETS) < 1
    for task in (None, BinaryTask(), MulticlassTask(classes=("a", "b")), RegressionTask()):
        assert not re.search(r"(?i)flight|\blate\b|delay", score_help(task))


WORKER = """
import sys
from noria.serving.metrics import ServingMetrics
from noria.tasks import BinaryTask

metrics = ServingMetrics(BinaryTask())
for _ in range(int(sys.argv[1])):
    metrics.observe_request("/predict", 200, 0.001)
    metrics.observe_prediction(2, "champion", 0.3, [])
for version in (1, 2):  # a hot swap
    metrics.set_model({"name": "m", "version": version, "alias": "champion", "run_id": None,
                       "feature_definition_hash": None})
import feast.metrics  # noqa: F401  (its metrics live in the same folder; they are not the service's)
print(metrics.expose()[0].decode())
if sys.argv[2] == "exit":
    metrics.worker_exited()
"""


def _worker(
    folder: Path, requests: int, then: str, *, shared: bool = True
) -> dict[str, list[tuple[dict[str, str], float]]]:
    """WORKER in its own process, in prometheus_client's multi-process mode on ``folder``: as one of
    `noria serve`'s workers (``shared``), or only inheriting the folder (as after Feast's import)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NORIA_SHARED_METRICS_DIR"}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    if shared:
        env["NORIA_SHARED_METRICS_DIR"] = str(folder)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", WORKER, str(requests), then],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return _samples(done.stdout)


def test_several_workers_export_one_service_and_a_swapped_out_version_reads_zero(tmp_path: Path) -> None:
    """``noria serve --workers N`` (prometheus_client's multi-process mode): a scrape answered by
    any worker counts every worker's requests, and a hot swap does not leave two champions at 1
    (the library cannot remove a label set there; without the fix it also warns, an error here)."""
    first = _worker(tmp_path, 3, "exit")
    assert ({"endpoint": "/predict", "status": "200"}, 3.0) in first["noria_http_requests_total"]
    second = _worker(tmp_path, 4, "stay")  # another worker, after the first one stopped
    assert ({"endpoint": "/predict", "status": "200"}, 7.0) in second["noria_http_requests_total"]
    assert ({"model_version": "2", "arm": "champion"}, 7.0) in second["noria_predictions_total"]
    info = {labels["version"]: value for labels, value in second["noria_model_info"]}
    assert info == {"1": 0.0, "2": 1.0}
    assert [v for labels, v in second["noria_prediction_score_count"]] == [7.0]
    assert all(name.startswith("noria_") for name in second)


def test_feasts_folder_alone_is_not_a_shared_metrics_folder(tmp_path: Path) -> None:
    """Importing Feast sets PROMETHEUS_MULTIPROC_DIR (for its feature server) and children inherit
    it: a process started so counts its own requests, not those of its siblings."""
    for requests in (3, 4):  # two siblings in the same inherited folder
        counted = _worker(tmp_path, requests, "stay", shared=False)["noria_http_requests_total"]
        assert counted == [({"endpoint": "/predict", "status": "200"}, float(requests))]


def test_one_worker_removes_the_version_that_left_the_alias() -> None:
    metrics = ServingMetrics(BinaryTask())
    for version in (1, 2):
        metrics.set_model(
            {"name": "m", "version": version, "alias": "champion", "run_id": None, "feature_definition_hash": None}
        )
    text = metrics.expose()[0].decode()
    assert {labels["version"]: value for labels, value in _samples(text)["noria_model_info"]} == {"2": 1.0}
