"""The fault-injection suite's shared parts: one result row per case, and how long the long cases run.

Every case asks for the ``fault_record`` fixture, says which fault it injected, what it checked
and how many rows or requests were lost (and how many of those were counted, e.g. by a metric);
when the case ends a row ``{case, fault, checked, outcome, lost, counted_loss, seconds, figures}``
is appended to a JSON-lines file: ``$FAULTS_RESULTS``, by default
``tests/faults/.results/results.jsonl`` (git-ignored). ``scripts/reliability_report.py`` turns the
newest row of each case into ``docs/reliability.md``.

Fast and long cases: every case carries the ``faults`` marker, long ones also ``slow``;
``make test`` runs the fast ones, ``make faults-ci`` (in ``.ci/run``) the long ones, ``make faults`` all. Nothing here is ever skipped (CI must
run the real thing); the long load case runs ``$FAULTS_LOAD_SECONDS`` seconds, by default
60 s, or 600 s when ``FAULTS_FULL=1`` (the full run, ``make faults``).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DVC_NO_ANALYTICS"] = "1"

DEFAULT_RESULTS = Path(__file__).resolve().parent / ".results" / "results.jsonl"
# The suite's own variables are FAULTS_*, not NORIA_*: NORIA_<SECTION>__<KEY> overrides config
# keys, and any other NORIA_ variable is refused by load_project as a misspelt key.


def results_path() -> Path:
    return Path(os.environ.get("FAULTS_RESULTS") or DEFAULT_RESULTS)


def full_mode() -> bool:
    """``FAULTS_FULL=1``: the long variants (more kill points, a 10-minute load)."""
    return os.environ.get("FAULTS_FULL", "").lower() in ("1", "true", "yes")


def load_seconds() -> float:
    """How long the sustained-load case runs: $FAULTS_LOAD_SECONDS, else 600 s full, 60 s otherwise."""
    raw = os.environ.get("FAULTS_LOAD_SECONDS", "").strip()
    if raw:
        return float(raw)
    return 600.0 if full_mode() else 60.0


@dataclass
class FaultRecord:
    """What one case injected and found; ``lost`` must end 0, or equal ``counted_loss``."""

    case: str
    fault: str = ""
    checked: str = ""
    lost: int | None = 0
    counted_loss: int = 0
    figures: dict[str, Any] = field(default_factory=dict)

    def row(self, outcome: str, seconds: float, detail: str | None) -> dict[str, Any]:
        return {
            "case": self.case,
            "fault": self.fault,
            "checked": self.checked,
            "outcome": outcome,
            "lost": self.lost,
            "counted_loss": self.counted_loss,
            "seconds": round(seconds, 2),
            "figures": self.figures,
            "detail": detail,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


_KEY = pytest.StashKey[FaultRecord]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every case here carries the ``faults`` marker: ``make test`` leaves out the long ones
    (``-m "not (faults and slow)"``), ``make faults-ci`` runs exactly those, ``make faults`` all."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def fault_record(request: pytest.FixtureRequest) -> Iterator[FaultRecord]:
    """The result row of this case (written when the case ends, whatever its outcome)."""
    name = request.node.name
    module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    record = FaultRecord(case=f"{module}::{name}")
    request.node.stash[_KEY] = record
    yield record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    reports = item.stash.setdefault(_REPORTS, {})
    reports[report.when] = report
    if report.when == "teardown" and _KEY in item.stash:
        _write_row(item.stash[_KEY], reports)
    return report


def _write_row(record: FaultRecord, reports: dict[str, pytest.TestReport]) -> None:
    call = reports.get("call")
    failed = [r for r in reports.values() if r.failed]
    detail = None
    if call is not None and hasattr(call, "wasxfail"):
        outcome = "xfailed (known defect)" if call.skipped else "xpassed"
        detail = str(call.wasxfail)
    elif failed:
        outcome = "failed"
        detail = str(failed[0].longrepr).strip().splitlines()[-1][:300] if failed[0].longrepr else None
    elif call is None or call.skipped:
        outcome = "skipped"
    else:
        outcome = "passed"
    seconds = sum(r.duration for r in reports.values())
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:  # under a lock: `make faults-ci` runs two workers
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(record.row(outcome, seconds, detail), default=str) + "\n")


def wait_for(predicate: Any, timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)
