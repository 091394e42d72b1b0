"""Where monitoring results live: one folder per project (``monitoring.dir``), plain files.

Layout (every file is written atomically; JSON so a person can read it, Parquet for rows)::

    <dir>/drift/<window>--v<version>.json        a drift report of one window for one model version
    <dir>/performance/<window>--v<version>.json  delayed-label performance of one window (daily + total)
    <dir>/review/<window>.parquet                predictions someone should look at (low certainty, OOD)
    <dir>/decisions.jsonl                        every retraining decision, why, and what came of it

A *window* is a window of the project's unit (``windows:``: a month ``2013-07``, an ISO week
``2010-W14``, a day, or a project's own label such as a football season ``1975-76``) of requests
by event time (the prediction time, not the time the request arrived). Records share a header: ``kind``,
``window``, ``model_name``, ``model_version``, ``computed_at`` (ISO 8601 UTC). Re-computing a
window for the same version replaces its file, so a report is never counted twice.

Plain files, not a database: monitoring runs as a batch job next to the project, the
records are small (a few kB per window) and the HTML report, the Prometheus exporter and the
retraining policy only ever read them all.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from noria import atomic
from noria.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.monitoring.remote import RemoteRecords

Kind = Literal["drift", "performance"]
# A window label (noria.windows): a month, an ISO week, a day or a project's own label; it names files.
WINDOW = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_NAME = re.compile(r"^(?P<window>[A-Za-z0-9][A-Za-z0-9._-]*?)--v(?P<version>\d+)\.json$")


def check_window(window: str) -> str:
    """A window label that can name a file (the unit is checked by :class:`noria.windows.Windows`)."""
    if not isinstance(window, str) or not WINDOW.match(window) or ".." in window:
        raise ValidationError(
            f"window {window!r} cannot name a monitoring record: a window label is 1-63 letters, digits,"
            " '.', '_' or '-', starting with a letter or digit (no '..')",
            fix="give a window of the project's unit (windows: in noria.yaml), e.g. 2013-07, 2010-W14, 1975-76;"
            " a window function must return such labels",
        )
    return window


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class MonitoringStore:
    """The monitoring folder of one project; see the module docstring for the layout."""

    root: Path
    # monitoring.remote: every record written is also uploaded there (noria.monitoring.remote).
    remote: RemoteRecords | None = field(default=None, compare=False)

    @classmethod
    def of(cls, project: Project, *, pull: bool = True) -> MonitoringStore:
        """The project's store; with ``monitoring.remote``, its records pulled (once per process).

        ``pull=False`` for a reader that must start without the bucket (the service's exporter):
        it calls :meth:`refresh` instead, which pulls now and then and only logs a failure.
        """
        from noria.monitoring.remote import remote_of

        root = project.path(project.config.monitoring.dir)
        return cls(root, remote_of(root, project.config.monitoring.remote, pull=pull))

    def refresh(self) -> None:
        """Bring in records written elsewhere (``monitoring.remote``; at most once a minute, never raises)."""
        if self.remote is not None:
            self.remote.refresh()

    def publish(self, path: Path) -> None:
        """Upload a file of the store to ``monitoring.remote`` (nothing without one); raises on failure."""
        if self.remote is not None:
            self.remote.push(path)

    # --- records (drift, performance) -------------------------------------------------------

    def record_path(self, kind: Kind, window: str, version: int) -> Path:
        return self.root / kind / f"{check_window(window)}--v{int(version)}.json"

    def save(self, kind: Kind, window: str, model_name: str, version: int, body: Mapping[str, Any]) -> Path:
        """Write one record (header + ``body``) and return its path; replaces the same window/version."""
        record = {
            "kind": kind,
            "window": check_window(window),
            "model_name": model_name,
            "model_version": int(version),
            "computed_at": now_iso(),
            **body,
        }
        path = self.record_path(kind, window, version)
        # records are read by other users and services: shared whatever the umask
        atomic.write_json(path, record, mode=atomic.SHARED, indent=1, sort_keys=False, default=_json_default)
        self.publish(path)
        return path

    def records(self, kind: Kind) -> list[dict[str, Any]]:
        """Every record of a kind, ordered by window, then model version."""
        folder = self.root / kind
        found = []
        for path in folder.glob("*.json") if folder.is_dir() else []:
            m = _NAME.match(path.name)
            if m:
                found.append((m["window"], int(m["version"]), path))
        return [json.loads(p.read_text(encoding="utf-8")) for _, _, p in sorted(found)]

    def latest(self, kind: Kind) -> dict[str, Any] | None:
        """The record of the newest window (the highest model version if several)."""
        records = self.records(kind)
        return records[-1] if records else None

    # --- review queue ------------------------------------------------------------------------

    def review_path(self, window: str) -> Path:
        return self.root / "review" / f"{check_window(window)}.parquet"

    def save_review(self, window: str, frame: pd.DataFrame) -> Path:
        """Write the review queue of a window (atomically; replaces an earlier one)."""
        path = self.review_path(window)
        with atomic.temp_path(path, mode=atomic.SHARED) as tmp:
            frame.to_parquet(tmp, index=False)
        self.publish(path)
        return path

    # --- retraining decisions ----------------------------------------------------------------

    @property
    def decisions_path(self) -> Path:
        return self.root / "decisions.jsonl"

    def append_decision(self, decision: Mapping[str, Any]) -> dict[str, Any]:
        """Append one decision (one JSON line, one write call with O_APPEND) and return it."""
        record = {"decided_at": now_iso(), **decision}
        line = (json.dumps(record, default=_json_default) + "\n").encode("utf-8")
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.decisions_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        self.publish(self.decisions_path)
        return record

    def decisions(self) -> list[dict[str, Any]]:
        """Every recorded decision, oldest first (a torn last line from a crash is skipped)."""
        return list(self._decision_lines())

    def _decision_lines(self) -> Iterator[dict[str, Any]]:
        if not self.decisions_path.is_file():
            return
        for line in self.decisions_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def _json_default(value: Any) -> Any:
    """NaN-free JSON for numpy scalars and datetimes."""
    if isinstance(value, datetime):
        return value.isoformat()
    item = getattr(value, "item", None)
    if item is not None:
        return item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


__all__ = ["MonitoringStore", "check_window", "now_iso"]
