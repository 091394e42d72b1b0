"""Batch delivery records (what every `noria predict` run leaves) as Prometheus gauges, read on scrape.

The records are written by the batch code's own writer (``noria.serving.batch_records.write_record``),
so the exporter reads exactly the files a real run leaves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.monitoring.test_exporter import scrape, value

from noria.monitoring.exporter import Deliveries, MonitoringCollector
from noria.serving.batch_records import DeliveryRecord, write_record

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def deliver(folder: Path, day: int, rows: int, *, status: str = "succeeded", model: str = "churn") -> DeliveryRecord:
    started = T0 + timedelta(days=day)
    record = DeliveryRecord(
        id=f"{model}{day:04d}{status[0]}",
        kind="batch_predict",
        status=status,
        input="in.parquet",
        output="out.parquet",
        rows_in=rows,
        rows_out=rows if status == "succeeded" else 0,
        model_name=model,
        model_version=3,
        model_alias="champion",
        run_id=None,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=(started + timedelta(minutes=20)).isoformat(timespec="seconds"),
        seconds=1200.0,
        error=None if status == "succeeded" else "the target system refused the file",
    )
    write_record(folder, record)
    return record


def collector(folder: Path, *, late: float = 93600, short: float = 0.5) -> MonitoringCollector:
    return MonitoringCollector(None, deliveries=Deliveries(folder, "shop", late, short))


def test_the_newest_success_its_rows_the_typical_rows_and_failures_per_model(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    for day, rows in enumerate([1000, 1200, 900, 1100, 300]):
        deliver(folder, day, rows)
    deliver(folder, 5, 0, status="failed")
    deliver(folder, 1, 50, model="upsell")
    samples = scrape(collector(folder))
    churn = {"project": "shop", "model": "churn"}
    newest = (T0 + timedelta(days=4, minutes=20)).timestamp()
    assert value(samples, "noria_batch_delivery_last_success_timestamp_seconds", **churn) == newest
    assert value(samples, "noria_batch_delivery_last_success_rows", **churn) == 300
    # the median of the successful deliveries before the newest: 900 1000 1100 1200
    assert value(samples, "noria_batch_delivery_typical_rows", **churn) == 1050
    failed = (T0 + timedelta(days=5, minutes=20)).timestamp()
    assert value(samples, "noria_batch_delivery_last_failure_timestamp_seconds", **churn) == failed
    assert value(samples, "noria_batch_deliveries", status="succeeded", **churn) == 5
    assert value(samples, "noria_batch_deliveries", status="failed", **churn) == 1
    # one delivery only: no typical rows to compare with, no failure
    upsell = {"project": "shop", "model": "upsell"}
    assert value(samples, "noria_batch_delivery_last_success_rows", **upsell) == 50
    assert "upsell" not in {labels["model"] for labels, _ in samples.get("noria_batch_delivery_typical_rows", [])}
    assert not [s for s in samples.get("noria_batch_delivery_last_failure_timestamp_seconds", []) if s[0] == upsell]
    # the project's thresholds, which the alert rules compare with
    assert value(samples, "noria_batch_delivery_late_after_seconds", project="shop") == 93600
    assert value(samples, "noria_batch_delivery_short_ratio", project="shop") == 0.5
    assert value(samples, "noria_monitoring_unreadable_records", kind="deliveries") == 0


def test_typical_rows_are_the_median_of_at_most_ten_recent_successes(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    for day in range(30):  # the old ones (100 rows) fall out of the window
        deliver(folder, day, 100 if day < 15 else 1000 + day)
    samples = scrape(collector(folder))
    # days 19..28 (before the newest, day 29): 1019..1028, median 1023.5
    assert value(samples, "noria_batch_delivery_typical_rows", model="churn") == 1023.5


def test_only_failures_give_a_failure_time_and_no_success_series(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    deliver(folder, 0, 10, status="failed")
    samples = scrape(collector(folder))
    assert value(samples, "noria_batch_delivery_last_failure_timestamp_seconds", model="churn") > 0
    assert "noria_batch_delivery_last_success_timestamp_seconds" not in samples
    assert value(samples, "noria_batch_deliveries", model="churn", status="succeeded") == 0


def test_no_schedule_declared_exports_no_lateness_threshold(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    deliver(folder, 0, 10)
    samples = scrape(collector(folder, late=0, short=0))
    assert "noria_batch_delivery_late_after_seconds" not in samples
    assert "noria_batch_delivery_short_ratio" not in samples
    assert value(samples, "noria_batch_delivery_last_success_rows", model="churn") == 10


def test_no_folder_yet_and_unreadable_records(tmp_path: Path) -> None:
    folder = tmp_path / "deliveries"
    watch = collector(folder)
    assert "noria_batch_delivery_last_success_rows" not in scrape(watch)
    deliver(folder, 0, 10)
    (folder / "broken.json").write_text("{not json", encoding="utf-8")
    (folder / "undated.json").write_text('{"status": "succeeded"}', encoding="utf-8")
    (folder / ".half-written.json.tmp").write_text("{", encoding="utf-8")  # a write in progress: not a record
    samples = scrape(watch)
    assert value(samples, "noria_batch_delivery_last_success_rows", model="churn") == 10
    assert value(samples, "noria_monitoring_unreadable_records", kind="deliveries") == 2


def test_records_are_parsed_once_and_a_new_one_is_seen_on_the_next_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from noria.monitoring import exporter

    folder = tmp_path / "deliveries"
    deliver(folder, 0, 10)
    deliver(folder, 1, 20)
    watch = collector(folder)
    reads: list[Path] = []
    real = exporter._read_delivery

    def counting(path: Path) -> Any:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(exporter, "_read_delivery", counting)
    scrape(watch)
    scrape(watch)
    assert len(reads) == 2
    deliver(folder, 2, 30)
    samples = scrape(watch)
    assert len(reads) == 3
    assert value(samples, "noria_batch_delivery_last_success_rows", model="churn") == 30
    assert value(samples, "noria_batch_delivery_typical_rows", model="churn") == 15


def test_the_thresholds_shown_in_docs_monitoring_md_are_valid_config() -> None:
    import re

    import yaml

    from noria.serving.config import ServingConfig

    page = (Path(__file__).parents[3] / "docs" / "monitoring.md").read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", page, re.S) if "late_after_seconds" in b]
    batch = ServingConfig.model_validate(yaml.safe_load(block)["serving"]).batch
    assert (batch.late_after_seconds, batch.short_ratio) == (93600, 0.5)


def test_runs_of_the_same_second_keep_the_order_they_ran_in(tmp_path: Path) -> None:
    """Three quick runs (a small file takes well under a second): listed and exported in the order
    they ran, whatever the random ids in their file names say."""
    from dataclasses import replace

    from noria.serving.batch_records import read_deliveries

    folder = tmp_path / "deliveries"
    template = deliver(tmp_path / "unused", 0, 1)
    for n, (ident, rows) in enumerate(zip(["zz", "mm", "aa"], (12, 10, 4), strict=True)):  # names sort backwards
        started = T0 + timedelta(microseconds=200_000 * n)
        write_record(
            folder,
            replace(
                template,
                id=ident,
                rows_in=rows,
                rows_out=rows,
                started_at=started.isoformat(timespec="microseconds"),
                finished_at=(started + timedelta(microseconds=150_000)).isoformat(timespec="microseconds"),
            ),
        )
    assert [r.rows_out for r in read_deliveries(folder)] == [12, 10, 4]
    samples = scrape(collector(folder))
    assert value(samples, "noria_batch_delivery_last_success_rows", project="shop", model="churn") == 4
