"""``noria predict --engine spark`` (PySpark, local mode) writes what the local engine writes, value for value.

The reference flights project on eight days of real January flights: its feature store applied,
a LightGBM model trained on its training set and registered. The input is that training set
(every model feature in it, as the offline point-in-time join gives them), with a few carriers
the model never saw, as a folder of three Parquet files of small row groups, so that Spark
splits it into several partitions. The local engine scores it here; the Spark engine in the
venv of spark_support.py (pyspark only), with the project's source and venv on PYTHONPATH, so
both use the very same pandas, pyarrow, LightGBM and Noria.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from tests.integration.spark_support import PYSPARK_VERSION, require_java, spark_env, spark_venv
from tests.unit.serving.serving_support import flights_project, make_migrated_db, model_matrix, register

from noria.config import load_project
from noria.errors import ValidationError
from noria.serving.batch import list_deliveries, score_file

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOB = Path(__file__).with_name("batch_spark_job.py")
IDS = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]  # flights' primary key
# Small input splits (the files hold row groups of 500 rows) so that the job has several partitions,
# and a JVM that compiles less eagerly (these short jobs run about twice as fast).
SPARK_CONF = {"spark.sql.files.maxPartitionBytes": "65536", "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same input scored by the local engine (here) and by the Spark engine (in the Spark venv)."""
    from noria.features.definitions import load_definitions
    from noria.features.repo import apply
    from noria.features.training_set import build_training_set

    require_java()  # Spark needs Java 17+: skips locally naming the package, fails in CI
    venv = spark_venv()
    tmp = tmp_path_factory.mktemp("batch_spark")
    project, snap = flights_project(tmp / "flights", make_migrated_db(None, tmp))
    config = yaml.safe_load((project.root / "noria.yaml").read_text(encoding="utf-8"))
    config["features"] = {"spark": {"conf": SPARK_CONF}}
    (project.root / "noria.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = load_project(project.root, environ={})
    apply(project, snapshot=snap)  # the feature store is there: the engines must not need it
    frame = build_training_set(project, "2013-01", "2013-01", snapshot=snap).frame
    features = [c for c in frame.columns if c in set(load_definitions(project).service().features)]
    labeled = frame[frame["label"].notna()]
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "num_leaves": 15, "min_data_in_leaf": 20},
        lgb.Dataset(model_matrix(labeled, features), labeled["label"].astype(int)),
        num_boost_round=30,
    )
    register(project, lgb.Booster(model_str=booster.model_to_string()))

    requests = frame.drop(columns=["label"]).reset_index(drop=True)
    requests.loc[requests.index % 97 == 5, "carrier"] = "ZZ"  # a carrier the model never saw: out of distribution
    folder = tmp / "requests"
    folder.mkdir()
    table = pa.Table.from_pandas(requests, preserve_index=False)
    for i, part in enumerate(np.array_split(np.arange(table.num_rows), 3)):
        # Microseconds, as snapshots store timestamps: Spark cannot read Parquet's nanoseconds.
        pq.write_table(table.take(part), folder / f"part-{i}.parquet", row_group_size=500, coerce_timestamps="us")

    started = time.perf_counter()
    local = score_file(project, folder, tmp / "local.parquet", explain=True, engine="local")
    local_seconds = time.perf_counter() - started
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            str(JOB),
            str(project.root),
            str(folder),
            str(tmp / "spark.parquet"),
            "--explain",
        ],
        env=spark_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    spark_seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    spark = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"\n{len(requests):,} rows: local engine {local.record.seconds:.1f} s in the run ({local_seconds:.1f} s with"
        f" loading), Spark engine {spark['record']['seconds']:.1f} s in the run ({spark_seconds:.1f} s with the"
        f" interpreter and session start), {spark['record']['extra']['partitions']} partitions"
    )
    return {"project": project, "requests": requests, "folder": folder, "local": local, "spark": spark, "tmp": tmp}


@pytest.mark.timeout(1200)  # the first build of the Spark venv, on a busy machine
def test_spark_scores_the_same_rows_as_the_local_engine(scored: dict[str, Any]) -> None:
    tmp = scored["tmp"]
    ours = pd.read_parquet(tmp / "local.parquet")
    spark = pd.read_parquet(tmp / "spark.parquet")  # a folder: Spark's part files
    assert (tmp / "spark.parquet" / "_SUCCESS").is_file()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".spark.parquet")]  # no temp folder left
    assert len(ours) == len(scored["requests"]) > 2000
    assert list(spark.columns) == list(ours.columns)
    assert {"probability", "late", "ood", "ood_reasons", "explanation", "model_version"} <= set(ours.columns)
    # Same rows (Spark may write partitions in another order): sorted by the flights' key, every
    # value identical, the probabilities bit for bit.
    ours = ours.sort_values(IDS).reset_index(drop=True)
    spark = spark.sort_values(IDS).reset_index(drop=True)
    for name in ours.columns:
        if isinstance(ours[name].dtype, pd.DatetimeTZDtype):  # Spark keeps microseconds: compare instants
            assert (spark[name].dt.tz_convert("UTC") == ours[name].dt.tz_convert("UTC")).all(), name
            continue
        pd.testing.assert_series_equal(spark[name], ours[name], check_exact=True, check_dtype=False, obj=name)
    assert ours["ood"].any() and ours.loc[ours["carrier"] == "ZZ", "ood_reasons"].str.contains("carrier").all()
    assert ours["explanation"].str.len().gt(0).all() and ours["late"].any()


def test_spark_records_the_same_delivery(scored: dict[str, Any]) -> None:
    local, spark = scored["local"].record, scored["spark"]["record"]
    assert spark["engine"] == "spark" and local.engine == "local" and spark["status"] == "succeeded"
    counts = ("rows_in", "rows_out", "flagged_rows", "ood_rows", "model_name", "model_version", "model_alias")
    assert {k: spark[k] for k in counts} == {k: getattr(local, k) for k in counts}
    assert local.rows_in == local.rows_out == len(scored["requests"]) and local.ood_rows > 0
    assert spark["extra"]["partitions"] > 1 and spark["extra"]["chunk_size"] == 10_000
    assert spark["extra"]["spark"] == {
        "pyspark": PYSPARK_VERSION,
        "spark": PYSPARK_VERSION,
        "master": "local[2]",
        "session": "started",
    }
    assert spark["output"] == str((scored["tmp"] / "spark.parquet").resolve())
    assert [d.id for d in list_deliveries(scored["project"])][-2:] == [local.id, spark["id"]]


def test_spark_refuses_an_input_whose_features_only_the_online_store_has(scored: dict[str, Any]) -> None:
    """With the feature store applied, a missing feature is one the local engine would look up."""
    tmp = scored["tmp"]
    lacking = scored["requests"].drop(columns=["temp"]).head(50)
    lacking.to_parquet(tmp / "lacking.parquet", index=False)
    with pytest.raises(ValidationError, match="lacks 1 of the") as info:
        score_file(scored["project"], tmp / "lacking.parquet", tmp / "refused", engine="spark")
    assert "temp" in info.value.message and "--engine local" in str(info.value.fix)
    assert not (tmp / "refused").exists()
