"""Which model version was trained with which feature service and definitions (maturity item 52).

The training step calls :func:`record_usage`; ``noria features usage`` lists the records. They
live in one JSON file per project (``.noria/features/usage.json``), rewritten atomically under
a lock so concurrent trainings do not lose each other's records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from noria import atomic
from noria.config import Project
from noria.errors import DataError


@dataclass
class UsageRecord:
    model: str
    version: str
    service: str
    definition_hash: str
    recorded_at: str
    features: list[str] = field(default_factory=list)
    training_set: str | None = None


def usage_file(project: Project) -> Path:
    return project.root / ".noria" / "features" / "usage.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"feature usage registry {path} is damaged: {exc}", fix="restore it from a backup") from None
    return list(data.get("usage", []))


def record_usage(
    project: Project,
    model_name: str,
    version: str | int,
    feature_service: str,
    definition_hash: str,
    *,
    features: list[str] | None = None,
    training_set: str | None = None,
) -> UsageRecord:
    """Record that ``model_name`` version ``version`` uses ``feature_service`` at ``definition_hash``.

    Recording the same model version again replaces its record.
    """
    record = UsageRecord(
        model=model_name,
        version=str(version),
        service=feature_service,
        definition_hash=definition_hash,
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        features=list(features or []),
        training_set=training_set,
    )
    path = usage_file(project)
    with _locked(path):
        rows = [r for r in _read(path) if (r.get("model"), r.get("version")) != (record.model, record.version)]
        rows.append(asdict(record))
        atomic.write_json(path, {"usage": rows}, indent=2, sort_keys=True)
    return record


def list_usage(project: Project, model: str | None = None) -> list[UsageRecord]:
    """Usage records, oldest first (only ``model``'s when given)."""
    rows = [UsageRecord(**r) for r in _read(usage_file(project))]
    return [r for r in rows if model is None or r.model == model]
