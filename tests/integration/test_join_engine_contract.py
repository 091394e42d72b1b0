"""The join-engine contract: DuckDB and Spark give the same values on the same small frames, edge cases included.

The cases (join_contract.py) go through the :class:`~noria.features.join_engine.JoinEngine` interface
both ways the platform uses it (``lookup`` in memory, ``join_files`` read back chunk by chunk) and
are checked against values written out by hand from the rule: the latest row of the same keys
stamped at or before the prediction time (a row stamped exactly then is used, a later one never),
missing beyond the TTL (its bound included), for an unknown entity or a null key (also when a view
file itself holds a null key), duplicate entity rows each answered, duplicate feature rows at one
timestamp refused before any engine runs, no entity row at all giving empty columns.

DuckDB runs here. Spark runs every case in one process of the Spark test venv (spark_support.py:
pyspark only, with the project's source and venv on PYTHONPATH) sharing one SparkSession; it
needs Java 17+ (skips locally naming the package, fails in CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.spark_support import PYSPARK_VERSION, require_java, spark_env, spark_venv

sys.path.insert(0, str(Path(__file__).resolve().parent))

import join_contract as contract

SPARK = pytest.param("spark", marks=[pytest.mark.integration, pytest.mark.slow])
ENGINES = ["duckdb", SPARK]
ENGINE_NAMES = ("duckdb", "spark")
CASES = {case.name: case for case in contract.CASES}

Results = Callable[[str], dict[str, Any]]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """Every case's answers by engine, each engine run once per module (Spark: one process, one session)."""
    cache: dict[str, dict[str, Any]] = {}

    def get(engine: str) -> dict[str, Any]:
        if engine not in cache:
            work = tmp_path_factory.mktemp(f"contract-{engine}")
            started = time.perf_counter()
            cache[engine] = _spark(work) if engine == "spark" else contract.run_all(engine, work)
            print(f"\n{engine}: every case in {time.perf_counter() - started:.1f} s")
        return cache[engine]

    return get


def _spark(work: Path) -> dict[str, Any]:
    require_java()  # Spark needs Java 17+: skips locally naming the package, fails in CI
    venv = spark_venv()
    out = work / "spark.json"
    done = subprocess.run(
        [str(venv / "bin" / "python"), contract.__file__, str(work), str(out), "--engine", "spark"],
        env=spark_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    answer = json.loads(out.read_text())
    seconds = {name: case["seconds"] for name, case in answer["cases"].items()}
    print(f"\nspark session start {answer['session_seconds']} s, cases (s): {json.dumps(seconds)}")
    cases: dict[str, Any] = answer["cases"]
    return cases


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("engine", ENGINES)
def test_the_engine_keeps_the_contract(results: Results, engine: str, name: str) -> None:
    case, answer = CASES[name], results(engine)[name]
    if case.error is not None:
        assert answer["error"] == "FeatureDefinitionError" and case.error in answer["message"]
        return
    assert "error" not in answer, answer
    rows = len(case.events)
    every = [f for view in contract.VIEWS for f in contract.FEATURES[view]]
    expected = {f: case.expected.get(f, [None] * rows) for f in every}
    matched = {v: case.matched.get(v, 0) for v in contract.VIEWS} if rows else {}
    ways = ["lookup", "join_files"] if rows else ["lookup"]  # a build with no entity rows stops before the join
    for way in ways:
        got = answer[way]
        assert got["values"] == expected, way
        assert got["matched"] == matched, way
    # Types as the feature declares them: text as objects, numbers as floats once a value is missing.
    assert answer["lookup"]["dtypes"]["tag"] == ("object" if rows else "float64")
    assert answer["lookup"]["dtypes"]["value"] == answer["lookup"]["dtypes"]["level"] == "float64"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_duckdb_and_spark_give_the_very_same_answers(results: Results, name: str) -> None:
    duck, spark = ({k: v for k, v in results(e)[name].items() if k not in ("seconds", "details")} for e in ENGINE_NAMES)
    assert spark == duck  # values, types chunk by chunk, match counts, errors


@pytest.mark.integration
@pytest.mark.slow
def test_spark_ran_every_case_in_one_shared_session(results: Results) -> None:
    answers = results("spark")
    details = [a["details"]["spark"] for a in answers.values() if a.get("details")]
    joined = [c for c in CASES.values() if c.events and c.error is None]  # the others stop before the join
    assert len(details) == len(joined)
    assert all(d == {**details[0], "session": "active"} for d in details)
    assert details[0]["pyspark"] == details[0]["spark"] == PYSPARK_VERSION
