"""Ingest end to end on a tiny project: snapshots, DVC, lineage, atomicity, recovery."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.conftest import flight_rows, write_small_sources

from noria.config import load_project
from noria.data import scan as scan_mod
from noria.data.ingest import ingest
from noria.data.snapshots import get_record, list_snapshots, open_snapshot
from noria.errors import ConfigError, DataError, SnapshotNotFoundError, SourceError


def _files(root: Path) -> dict[str, bytes]:
    dataset = root / "data" / "dataset"
    return {str(p.relative_to(dataset)): p.read_bytes() for p in sorted(dataset.rglob("*")) if p.is_file()}


def test_first_ingest_writes_snapshot_dvc_and_lineage(small_project: Path) -> None:
    project = load_project(small_project, environ={})
    result = ingest(project, "2013-01", "2013-02")
    record = result.record
    assert not result.unchanged
    assert record.months == ["2013-01", "2013-02"]
    assert record.tables["flights"].read == 10 and record.tables["flights"].accepted == 10
    assert record.tables["planes"].rows_in_snapshot == 2
    # the .dvc file names the snapshot id; the remote holds the data
    dvc = yaml.safe_load((small_project / "data" / "dataset.dvc").read_text())
    assert dvc["outs"][0]["md5"] == f"{record.id}.dir"
    assert any((small_project / "data" / "dvc-remote").rglob("*.dir"))
    assert sorted(_files(small_project)) == [
        "flights/month=2013-01/part-0.parquet",
        "flights/month=2013-02/part-0.parquet",
        "planes/part-0.parquet",
    ]
    saved = json.loads((small_project / "data" / "snapshots" / f"{record.id}.json").read_text())
    assert saved["id"] == record.id and saved["range_from"] == "2013-01" and saved["schema_hash"]
    assert saved["git_commit"] is None  # the fixture repo has no commit yet
    # lineage record and .dvc file are staged for the user's next commit
    staged = subprocess.run(
        ["git", "-C", str(small_project), "diff", "--cached", "--name-only"], capture_output=True, text=True
    ).stdout
    assert "data/dataset.dvc" in staged and f"data/snapshots/{record.id}.json" in staged


def test_later_months_add_a_version_and_old_ones_stay_readable(small_project: Path) -> None:
    project = load_project(small_project, environ={})
    first = ingest(project, "2013-01", "2013-01").record
    second = ingest(project, "2013-02", "2013-03").record
    assert second.id != first.id and second.parent == first.id
    assert second.tables["flights"].rows_in_snapshot == 15
    assert [r.id for r in list_snapshots(project)] == [first.id, second.id]
    old = open_snapshot(project, first.id[:6]).read("flights")
    new = open_snapshot(project).read("flights")
    assert sorted(old["month"].unique()) == [1] and sorted(new["month"].unique()) == [1, 2, 3]
    assert str(new["flight"].dtype) == "Int64" and str(new["time_hour"].dtype).startswith("datetime64")
    assert open_snapshot(project).read("flights", months=["2013-02"])["month"].eq(2).all()


def test_same_data_gives_the_same_snapshot_id(small_project: Path) -> None:
    project = load_project(small_project, environ={})
    first = ingest(project, "2013-01", "2013-02")
    again = ingest(project, "2013-01", "2013-02")
    assert again.unchanged and again.record.id == first.record.id
    assert len(again.record.reingested_at) == 1
    assert len(list_snapshots(project)) == 1


def test_reingesting_a_month_replaces_it(small_project: Path) -> None:
    project = load_project(small_project, environ={})
    ingest(project, "2013-01", "2013-02")
    write_small_sources(small_project, flight_rows([1], per_month=3) + flight_rows([2], per_month=5))
    record = ingest(project, "2013-01", "2013-01").record
    assert record.tables["flights"].rows_in_snapshot == 8


def test_bad_rows_are_quarantined_with_accounting(small_project: Path) -> None:
    rows = flight_rows([1], per_month=4)
    rows.append("2013,1,9,UA,900,1,-10,EWR,2013-01-09T10:00:00Z")  # negative distance
    rows.append(rows[0])  # duplicate primary key
    rows.append("2013,1,10,UA,abc,1,10,EWR,2013-01-10T10:00:00Z")  # wrong type
    write_small_sources(small_project, rows)
    record = ingest(load_project(small_project, environ={}), "2013-01", "2013-01").record
    account = record.tables["flights"]
    assert (account.read, account.accepted, account.quarantined) == (7, 4, 3)
    assert account.read == account.accepted + account.quarantined
    quarantine = pd.read_parquet(small_project / account.quarantine_file)
    assert sorted(quarantine["_rule"]) == [
        "distance=-10.0 is below the minimum 1",
        "duplicate primary key (year, month, day, carrier, flight)",
        "flight='abc' is not a valid int",
    ]


def test_interrupted_write_leaves_no_partial_snapshot(small_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(small_project, environ={})
    before = ingest(project, "2013-01", "2013-01").record
    files_before = _files(small_project)
    real_write = scan_mod.write_parquet
    calls = {"n": 0}

    def failing_write(frame: pd.DataFrame, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_write(frame, path)

    monkeypatch.setattr(scan_mod, "write_parquet", failing_write)
    with pytest.raises(OSError, match="disk full"):
        ingest(project, "2013-02", "2013-03")
    assert _files(small_project) == files_before
    assert [r.id for r in list_snapshots(project)] == [before.id]
    assert not list((small_project / "data").glob(".staging-*"))


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from noria.config import load_project
from noria.data import ingest as m, scan
real = scan.write_parquet
def slow(frame, path):
    real(frame, path)
    Path(sys.argv[2]).touch()
    time.sleep(60)
scan.write_parquet = slow
m.ingest(load_project(sys.argv[1], environ={}), "2013-02", "2013-03")
"""


def test_sigkill_mid_write_then_next_ingest_recovers(small_project: Path, tmp_path: Path) -> None:
    project = load_project(small_project, environ={})
    before = ingest(project, "2013-01", "2013-01").record
    files_before = _files(small_project)
    marker = tmp_path / "wrote-one"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(small_project), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the ingest died before writing"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list((small_project / "data").glob(".staging-*"))  # the killed run left its staging
    assert _files(small_project) == files_before  # ...but the dataset is untouched
    assert get_record(project).id == before.id
    after = ingest(project, "2013-02", "2013-03").record  # recovers and completes
    assert after.parent == before.id and after.tables["flights"].rows_in_snapshot == 15
    assert not list((small_project / "data").glob(".staging-*"))


def test_old_snapshot_is_fetched_from_the_remote_when_cache_is_gone(small_project: Path) -> None:
    project = load_project(small_project, environ={})
    first = ingest(project, "2013-01", "2013-01").record
    ingest(project, "2013-02", "2013-02")
    shutil.rmtree(small_project / ".dvc" / "cache")
    frame = open_snapshot(project, first.id).read("flights")
    assert len(frame) == 5


def test_errors_are_clear(small_project: Path) -> None:
    project = load_project(small_project, environ={})
    with pytest.raises(ConfigError, match="--from '2013-1' is not a month"):
        ingest(project, "2013-1", None)
    with pytest.raises(ConfigError, match="--from 2013-05 is after --to 2013-02"):
        ingest(project, "2013-05", "2013-02")
    with pytest.raises(DataError, match="no rows between 2014-01 and 2014-02"):
        ingest(project, "2014-01", "2014-02")
    with pytest.raises(SnapshotNotFoundError, match="no data snapshot yet"):
        open_snapshot(project)
    (small_project / "raw" / "planes.csv").write_text("tailnum\nN1\n")
    with pytest.raises(SourceError, match="planes.csv lacks declared column"):
        ingest(project, "2013-01", "2013-01")
    assert not (small_project / "data" / "dataset").exists()  # nothing half-written


def test_snapshot_references(small_project: Path) -> None:
    project = load_project(small_project, environ={})
    record = ingest(project, "2013-01", "2013-01").record
    assert get_record(project, "latest").id == record.id
    assert get_record(project, record.id[:4]).id == record.id
    with pytest.raises(SnapshotNotFoundError, match="not a snapshot id"):
        get_record(project, "../../etc")
    with pytest.raises(SnapshotNotFoundError, match="no snapshot 'ffff'"):
        get_record(project, "ffff" if not record.id.startswith("ffff") else "0000")
    with pytest.raises(SnapshotNotFoundError, match="has no table 'nope'"):
        open_snapshot(project).read("nope")
