"""Monitoring records mirrored in object storage (``monitoring.remote``), against a real S3 server.

The cluster's monitoring CronJob starts each run with an empty project folder: its drift and
performance records, review queues, reviewers' marks and retraining decisions must outlive the
pod. Every record the store writes is uploaded at once; a process that opens the store on an
empty folder pulls them back first. SeaweedFS (s3_support.py) is the S3 server; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from s3_support import SeaweedS3, seaweed
from tests.unit.serving.serving_support import make_migrated_db, make_project

from noria.errors import ExternalToolError
from noria.monitoring.remote import forget_pulls, remote_of
from noria.monitoring.review import latest_marks, mark_review
from noria.monitoring.store import MonitoringStore

pytestmark = pytest.mark.integration

BUCKET = "noria-data"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with seaweed(tmp_path_factory.mktemp("seaweed")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(autouse=True)
def s3_env(s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    forget_pulls()
    yield
    forget_pulls()


def _store(root: Path, url: str) -> MonitoringStore:
    return MonitoringStore(root, remote_of(root, url))


def test_every_record_written_is_uploaded_and_an_empty_folder_gets_them_back(s3: SeaweedS3, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/records-a"
    first = _store(tmp_path / "pod-1", url)
    first.save("drift", "2013-07", "m", 3, {"alerts": ["dep_delay_rate"]})
    first.save("performance", "2013-07", "m", 3, {"metrics": {"roc_auc": 0.71}})
    first.save_review("2013-07", pd.DataFrame({"request_id": ["r1", "r2"], "reason": ["ood", "low certainty"]}))
    first.append_decision({"action": "retrain", "window": "2013-07"})
    first.append_decision({"action": "none", "window": "2013-08"})
    assert sorted(s3.keys(BUCKET, "records-a/")) == [
        "records-a/decisions.jsonl",
        "records-a/drift/2013-07--v3.json",
        "records-a/performance/2013-07--v3.json",
        "records-a/review/2013-07.parquet",
    ]

    forget_pulls()  # a new pod: a new process on an empty folder
    second = _store(tmp_path / "pod-2", url)
    assert second.records("drift") == first.records("drift")
    assert second.records("performance") == first.records("performance")
    assert [d["action"] for d in second.decisions()] == ["retrain", "none"]
    assert pd.read_parquet(second.review_path("2013-07"))["request_id"].tolist() == ["r1", "r2"]

    second.append_decision({"action": "retrain", "window": "2013-09"})  # the next run builds on the history
    forget_pulls()
    third = _store(tmp_path / "pod-3", url)
    assert [d["window"] for d in third.decisions()] == ["2013-07", "2013-08", "2013-09"]


def test_a_local_copy_that_differs_is_replaced_and_equal_ones_are_not_fetched(s3: SeaweedS3, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/records-b"
    _store(tmp_path / "writer", url).save("drift", "2013-07", "m", 1, {"alerts": []})
    local = tmp_path / "reader"
    stale = local / "drift" / "2013-07--v1.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"stale": true}\n', encoding="utf-8")
    forget_pulls()
    remote = remote_of(local, url)
    assert remote is not None
    assert "stale" not in stale.read_text(encoding="utf-8")
    assert remote.pull() == []  # everything equal now: nothing copied


def test_the_project_setting_mirrors_the_store_and_reviewers_marks(s3: SeaweedS3, tmp_path: Path) -> None:
    db = make_migrated_db(None, tmp_path / "mlflow")
    extra = f"monitoring: {{remote: 's3://{BUCKET}/records-c'}}"
    project = make_project(tmp_path / "pod-1", db, extra=extra)
    store = MonitoringStore.of(project)
    assert store.remote is not None and store.remote.url.endswith("records-c")
    store.save_review("2013-07", pd.DataFrame({"request_id": ["r9"], "reason": ["ood"]}))
    mark_review(project, "2013-07", "r9", "wrong", "late departure missed")
    assert "records-c/review/marks.jsonl" in s3.keys(BUCKET, "records-c/")

    forget_pulls()
    again = make_project(tmp_path / "pod-2", db, extra=extra)
    assert latest_marks(again, "2013-07")["r9"]["verdict"] == "wrong"


def test_a_missing_bucket_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExternalToolError, match="bucket 'no-such-bucket'.*does not exist") as info:
        remote_of(tmp_path, "s3://no-such-bucket/records")
    assert "monitoring.remote" in (info.value.fix or "")


def test_a_bad_url_is_refused_at_load(tmp_path: Path) -> None:
    from noria.errors import ConfigError

    db = make_migrated_db(None, tmp_path / "mlflow")
    with pytest.raises(ConfigError, match="monitoring.remote"):
        make_project(tmp_path / "p", db, extra="monitoring: {remote: 'noria-data/monitoring'}")


def test_the_services_exporter_starts_without_the_bucket_and_refreshes_from_it(
    s3: SeaweedS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from noria.monitoring.exporter import MonitoringCollector

    url = f"s3://{BUCKET}/records-d"
    _store(tmp_path / "job", url).save("drift", "2013-07", "m", 4, {"alerts": ["temp"], "features": []})
    forget_pulls()
    served = MonitoringStore(tmp_path / "service", remote_of(tmp_path / "service", url, pull=False))
    assert not (tmp_path / "service" / "drift").exists()  # nothing pulled at start
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(served))
    assert 'kind="drift"' in generate_latest(registry).decode()  # the first scrape pulled the Job's record
    assert (tmp_path / "service" / "drift" / "2013-07--v4.json").is_file()

    # Without the bucket (no credentials, S3 down), the service starts and scrapes; the failure is logged.
    forget_pulls()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    cut_off = MonitoringStore(tmp_path / "cut-off", remote_of(tmp_path / "cut-off", url, pull=False))
    registry = CollectorRegistry()
    registry.register(MonitoringCollector(cut_off))
    with caplog.at_level("WARNING", logger="noria.monitoring"):
        generate_latest(registry)
    assert "monitoring records not refreshed" in caplog.text
