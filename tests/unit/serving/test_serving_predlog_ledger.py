"""The prediction log's ledger: a writer killed with its pod leaves a count that the next one reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from noria.serving.predlog import PredictionLog
from noria.serving.predlog_ledger import Ledger, loss_records, settle_dead

SERVICE = textwrap.dedent(
    """
    import json, sys, time
    from noria.serving.predlog import PredictionLog

    log = PredictionLog(sys.argv[1], roll_rows=1000, roll_seconds=3600)
    rows = [
        dict(request_id=f"r{i}", row=0, timestamp=time.time(), endpoint="/predict", status=200,
             model_name="m", model_version=1, arm="champion", served=True, input=b"{}",
             probability=0.5, ood_reasons=[], features=(("temp",), [float(i)]))
        for i in range(int(sys.argv[2]))
    ]
    log.write(rows)
    while log._writer.sent < len(rows):
        time.sleep(0.01)
    print(json.dumps({"writer": log._writer.proc.pid}), flush=True)
    time.sleep(600)
    """
)


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _received(folder: Path) -> int:
    return sum(
        int(line.split()[1])
        for path in folder.glob(".ledger-*")
        for line in path.read_text().splitlines()
        if line.startswith("r ")
    )


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_a_writer_killed_with_its_pod_is_reported_by_the_next_one_and_its_loss_recorded(tmp_path: Path) -> None:
    """The service and its writer are SIGKILLed together (a container's kill); a new service on the
    same folder (the restarted container on the same emptyDir) counts and records the loss."""
    service = subprocess.Popen([sys.executable, "-c", SERVICE, str(tmp_path), "30"], stdout=subprocess.PIPE)
    assert service.stdout is not None
    writer = json.loads(service.stdout.readline())["writer"]
    _wait(lambda: _received(tmp_path) == 30)  # in the writer, in no file yet
    os.kill(writer, signal.SIGKILL)
    service.kill()
    service.wait(10)
    _wait(lambda: _gone(writer))
    assert not list(tmp_path.rglob("*.parquet"))

    dropped: list[int] = []
    log = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=3600, on_drop=dropped.append)
    _wait(lambda: log.dropped == 30)
    log.close()
    assert sum(dropped) == 30
    [loss] = loss_records(tmp_path)
    assert (loss.rows, loss.received, loss.written, loss.counted) == (30, 30, 0, 0)
    assert loss.first_at <= loss.last_at and loss.host
    assert not list(tmp_path.glob(".ledger-*"))  # settled once: the next start reports nothing
    again = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=3600)
    again.close()
    assert again.dropped == 0 and len(loss_records(tmp_path)) == 1


def test_a_clean_close_leaves_no_ledger_and_no_loss(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, roll_rows=7, roll_seconds=3600)
    log.write(
        {
            "request_id": f"r{i}",
            "row": 0,
            "timestamp": time.time(),
            "status": 200,
            "model_name": "m",
            "model_version": 1,
        }
        for i in range(20)
    )
    log.close()
    assert log.rows_written == 20 and not list(tmp_path.glob(".ledger-*")) and not loss_records(tmp_path)


def test_a_live_writers_ledger_is_left_alone(tmp_path: Path) -> None:
    """Two services share one folder (workers): the second must not settle the first's open ledger."""
    first = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=3600)
    first.write([{"request_id": "a", "row": 0, "timestamp": time.time(), "status": 200}])
    _wait(lambda: _received(tmp_path) == 1)
    second = PredictionLog(tmp_path, roll_rows=1000, roll_seconds=3600)
    second.close()
    first.close()
    assert second.dropped == 0 and first.dropped == 0 and first.rows_written == 1
    assert not loss_records(tmp_path)


def test_a_ledger_counts_written_and_lost_rows_and_only_the_rest_is_a_loss(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "x-1-0")
    ledger.received(10)
    ledger.received(5)
    ledger.written(8)
    ledger.counted(2)
    assert settle_dead(tmp_path) == []  # locked: its writer is alive
    os.close(ledger._fd)  # the process dies: the lock goes, the file stays
    with ledger.path.open("a") as torn:
        torn.write("r 1")  # a line cut by a crash counts for nothing
    [(loss, record)] = settle_dead(tmp_path)
    assert (loss.rows, loss.received, loss.written, loss.counted) == (5, 15, 8, 2)
    assert json.loads(record.read_text())["rows"] == 5 and not ledger.path.exists()


def test_a_dead_ledger_of_the_same_log_was_counted_by_its_service_and_is_only_removed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "inst-1-0")
    ledger.received(4)
    os.close(ledger._fd)
    assert settle_dead(tmp_path, counted_by="inst") == []
    assert not ledger.path.exists() and not loss_records(tmp_path)
