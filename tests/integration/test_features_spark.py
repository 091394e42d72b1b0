"""The Spark offline engine (PySpark, local mode) builds the same training set as DuckDB, value for value.

pyspark is not a project dependency: the Spark build runs in the venv of spark_support.py
(pyspark only, built once under ~/.cache/noria/) with the project's source and venv on
PYTHONPATH, so it uses the very same pandas, pyarrow and Noria as the DuckDB build here.
Data: the reference project on four weeks of the real flights, weather and planes (1-14 January
and 20 October - 3 November 2013, around the two gaps in the weather records).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.integration.spark_support import PYSPARK_VERSION, require_java, spark_env, spark_venv

sys.path.insert(0, str(Path(__file__).resolve().parent))

import features_spark_job as job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IDS = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]  # flights' primary key


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same training set built by DuckDB (here) and by Spark (in the Spark venv), with timings."""
    require_java()  # Spark needs Java 17+: skips locally naming the package, fails in CI
    timings: dict[str, float] = {}
    started = time.perf_counter()
    venv = spark_venv()
    timings["venv"] = time.perf_counter() - started

    root = tmp_path_factory.mktemp("spark") / "flights"
    project = job.make_project(root)
    started = time.perf_counter()
    duck = job.build(project.root, root / "duckdb.parquet", "duckdb")
    timings["duckdb_build"] = time.perf_counter() - started

    env = spark_env()
    started = time.perf_counter()
    done = subprocess.run(
        [str(venv / "bin" / "python"), job.__file__, str(root), str(root / "spark.parquet"), "--engine", "spark"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    timings["spark_build"] = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    spark_record = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\ntimings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    print(f"spark build timings (s): {json.dumps(spark_record['timings'])}")
    whole = job.build(
        project.root, root / "one_chunk.parquet", "duckdb", {"NORIA_FEATURES__BUILD_CHUNK_ROWS": "1000000"}
    )
    return {"duck": duck, "whole": whole, "spark_record": spark_record, "spark_path": root / "spark.parquet"}


@pytest.mark.timeout(900)  # the first build of the Spark venv, on a busy machine
def test_spark_builds_the_same_training_set_as_duckdb(builds: dict[str, Any]) -> None:
    duck, record = builds["duck"], builds["spark_record"]
    ours = pd.read_parquet(duck.record.path)
    spark = pd.read_parquet(builds["spark_path"])
    assert len(ours) > 12_000
    # Same rows in the same order (both keep the entity rows' order), same columns, same dtypes ...
    pd.testing.assert_frame_equal(spark[IDS], ours[IDS])
    # ... and, sorted by the flights' key, every value identical (floats bit for bit).
    ours = ours.sort_values(IDS).reset_index(drop=True)
    spark = spark.sort_values(IDS).reset_index(drop=True)
    pd.testing.assert_frame_equal(spark, ours, check_exact=True)
    # Both builds went chunk by chunk (Spark wrote each join as sorted part files, merged back); in one chunk,
    # the very same file.
    assert len(ours) > 3 * job.CHUNK_ROWS
    whole = builds["whole"]
    pd.testing.assert_frame_equal(pd.read_parquet(whole.record.path), pd.read_parquet(duck.record.path))
    assert whole.record.matched == duck.record.matched

    assert record["engine"] == "spark-window-asof" and duck.record.engine == "duckdb-asof"
    assert record["extra"]["spark"] == {
        "pyspark": PYSPARK_VERSION,
        "spark": PYSPARK_VERSION,
        "master": "local[2]",
        "session": "started",
    }
    assert record["sources_reused"]  # both joined the very same feature tables
    assert record["definition_hash"] == duck.record.definition_hash
    assert record["matched"] == duck.record.matched
    # The slice exercises what a join can get wrong: planes missing from the registry (and flights
    # without a tail number), routes and carriers without a departed flight yet, and the TTL: late
    # flights in the two real gaps of the weather records find only observations older than 3 h.
    assert record["unmatched"]["plane"] > 1000 and spark["tailnum"].isna().any()
    assert record["unmatched"]["route_delay_rates"] > 0 and record["unmatched"]["carrier_delay_rates"] > 0
    expired = spark["temp"].isna()
    assert record["unmatched"]["origin_weather"] == expired.sum() > 0
    assert set(spark.loc[expired, "event_timestamp"].dt.strftime("%Y-%m-%d")) <= {"2013-10-26", "2013-11-03"}
