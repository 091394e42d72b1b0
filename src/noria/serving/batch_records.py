"""Batch delivery records: one JSON file per ``noria predict`` run under ``serving.batch.deliveries_dir``.

A record says what went in and came out (rows, files), which model version scored it, when,
with which engine, and whether it worked; it is written atomically at the end of every run,
failed runs included, so that continuity of delivery can be monitored (maturity item 42,
:mod:`noria.monitoring.exporter`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria import atomic

if TYPE_CHECKING:
    from noria.config import Project
    from noria.serving.config import ServingConfig


@dataclass
class DeliveryRecord:
    """One batch delivery: what went in, what came out, which model, when, and whether it worked."""

    id: str
    kind: str
    status: str  # "succeeded" or "failed"
    input: str
    output: str
    rows_in: int
    rows_out: int
    model_name: str
    model_version: int | None
    model_alias: str
    run_id: str | None
    started_at: str
    finished_at: str
    seconds: float
    flagged_rows: int = 0  # binary: rows whose decision was positive
    ood_rows: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"  # "local" (chunks in this process) or "spark"; records older than engines lack it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchResult:
    output: Path
    record: DeliveryRecord
    record_path: Path


def write_record(folder: Path, record: DeliveryRecord) -> Path:
    stamp = record.started_at.replace(":", "").replace("-", "").replace("+0000", "Z")
    return atomic.write_text(
        folder / f"{stamp}-{record.id}.json", json.dumps(record.to_dict(), indent=2, sort_keys=True)
    )


def list_deliveries(project: Project) -> list[DeliveryRecord]:
    """Every delivery record of the project, oldest first."""
    from noria.serving.config import serving_config

    return read_deliveries(project.path(serving_config(project).batch.deliveries_dir))


def read_deliveries(folder: Path) -> list[DeliveryRecord]:
    """The delivery records in ``folder``, in the order the runs started (then ended)."""
    records = [DeliveryRecord(**json.loads(path.read_text(encoding="utf-8"))) for path in folder.glob("*.json")]
    # By time, not by file name: a name's random id orders runs of the same second at random.
    instant = datetime.fromisoformat
    return sorted(records, key=lambda r: (instant(r.started_at), instant(r.finished_at or r.started_at), r.id))


def finish_record(project: Project, cfg: ServingConfig, record: DeliveryRecord, clock: float) -> Path:
    """Stamp the end of the run and write the record (failed runs too)."""
    # Microseconds: runs that start and end within one second still sort in the order they ran.
    record.finished_at = datetime.now(UTC).isoformat(timespec="microseconds")
    record.seconds = round(time.perf_counter() - clock, 3)
    return write_record(project.path(cfg.batch.deliveries_dir), record)


__all__ = ["BatchResult", "DeliveryRecord", "finish_record", "list_deliveries", "read_deliveries", "write_record"]
