"""The cases of the join-engine contract, and the code that runs them on one engine.

Imported by test_join_engine_contract.py (the DuckDB engine, in the project's venv) and run as a
script in the Spark test venv (the Spark engine: one SparkSession for every case):

    python join_contract.py WORK_DIR OUT.json [--engine spark]

A tiny project (three feature views: a string-keyed view with a 1 h TTL, a day-bucketed one with a
2 d TTL, an int-keyed one without TTL) is joined through the :class:`~noria.features.join_engine.JoinEngine`
interface both ways the platform uses it: ``lookup`` (rows in memory, as ``historical_features``)
and ``join_files`` read back chunk by chunk (as a training-set build). The entity rows go through
the request code and the feature rows through ``view_table``, as in production, so a case sees
exactly what an engine sees there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# Run as a script in the Spark venv too: the repository root makes the tests package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from noria.config import Project, load_project
from noria.errors import NoriaError
from noria.features.config import FeaturesConfig
from noria.features.definitions import Definitions, load_definitions
from noria.features.join_engine import join_engine
from noria.features.join_rows import entity_schema, entity_table, prediction_window, view_values
from noria.features.offline import entity_keys, request_stage
from noria.features.sources import view_table
from noria.features.staged import JoinedRows

T0 = pd.Timestamp("2024-03-01T12:00:00Z")
VIEWS = ["obs", "daily", "by_num"]
FEATURES = {"obs": ["value", "tag", "count"], "daily": ["level"], "by_num": ["score"]}
# The JVM compiles less eagerly: these short jobs run about twice as fast (as in features_spark_job.py).
SPARK_CONF = {"spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1"}
CHUNK_ROWS = 2  # entity rows read back per step: several steps even for a few rows

NORIA_YAML = textwrap.dedent(
    """\
    project: join-contract
    data:
      source: {kind: directory, path: raw}
      tables:
        events:
          file: events.csv
          primary_key: [id]
          columns:
            id: {type: int}
            key: {type: str, nullable: true}
            num: {type: int, nullable: true}
            ts: {type: timestamp}
            outcome: {type: float, nullable: true}
        obs:
          file: obs.csv
          primary_key: [key, ts]
          columns:
            key: {type: str}
            num: {type: int}
            ts: {type: timestamp}
            value: {type: float}
    model:
      target: {table: events, column: outcome, threshold: 0}
    """
)
CODE = textwrap.dedent(
    """\
    def when(columns):
        return columns["ts"]


    def rows(tables):
        return tables["obs"]
    """
)
FEATURES_CONFIG = {
    "request": {"table": "events", "columns": ["key", "num", "ts"], "timestamp": "contract_features:when"},
    "entities": {"key": {}, "num": {"type": "int"}},
    "sources": {"rows": {"function": "contract_features:rows", "tables": {"obs": ["key", "num", "ts", "value"]}}},
    "feature_views": {
        "obs": {
            "source": "rows",
            "entities": ["key"],
            "ttl": "1h",
            "features": {"value": {}, "tag": {"type": "str"}, "count": {"type": "int"}},
        },
        "daily": {"source": "rows", "entities": ["key"], "ttl": "2d", "bucket": "day", "features": {"level": {}}},
        "by_num": {"source": "rows", "entities": ["num"], "features": {"score": {}}},
    },
    "services": {"s": {"features": VIEWS}},
}


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


@dataclass
class Case:
    """Feature rows per view, entity rows, and what every engine must give back (missing = None)."""

    name: str
    events: list[tuple[str | None, int | None, pd.Timestamp]]  # (key, num, prediction time)
    obs: list[tuple[str, pd.Timestamp, float | None, str | None, int | None]] = field(default_factory=list)
    daily: list[tuple[str, pd.Timestamp, float]] = field(default_factory=list)
    by_num: list[tuple[int, pd.Timestamp, float]] = field(default_factory=list)
    expected: dict[str, list[Any]] = field(default_factory=dict)  # feature -> values (unlisted: all missing)
    matched: dict[str, int] = field(default_factory=dict)  # view -> rows with a value (unlisted: 0)
    raw_null_keys: bool = False  # add rows with a null key to the view files themselves (view_table drops them)
    error: str | None = None  # the error every engine's path stops with, before the join


# Every view always has a row of another entity, so no view file is empty.
FILLER_OBS = ("other", at(0), 9.0, "o", 9)
FILLER_DAILY = ("other", at(0), 9.0)
FILLER_NUM = (999, at(0), 9.0)

CASES = [
    Case(
        "event_at_feature_time_is_included_and_newer_rows_never_used",
        events=[("a", 1, at(0)), ("a", 1, at(5)), ("a", 1, at(10)), ("a", 1, at(-1))],
        obs=[("a", at(0), 1.0, "x", 1), ("a", at(10), 2.0, "y", 2)],
        by_num=[(1, at(0), 10.0), (1, at(10), 20.0)],
        expected={
            "value": [1.0, 1.0, 2.0, None],
            "tag": ["x", "x", "y", None],
            "count": [1, 1, 2, None],
            "score": [10.0, 10.0, 20.0, None],
        },
        matched={"obs": 3, "by_num": 3},
    ),
    Case(
        "beyond_ttl_is_missing_and_the_ttl_bound_is_included",
        events=[("a", 1, at(30)), ("a", 1, at(60)), ("a", 1, at(60) + pd.Timedelta(seconds=1)), ("a", 1, at(600))],
        obs=[("a", at(0), 1.0, "x", 1)],
        by_num=[(1, at(0), 10.0)],  # no TTL: found however old
        expected={
            "value": [1.0, 1.0, None, None],
            "tag": ["x", "x", None, None],
            "count": [1, 1, None, None],
            "score": [10.0, 10.0, 10.0, 10.0],
        },
        matched={"obs": 2, "by_num": 4},
    ),
    Case(
        "an_unknown_entity_is_missing",
        events=[("zz", 7, at(5)), ("a", 1, at(5))],
        obs=[("a", at(0), 1.0, "x", 1)],
        by_num=[(1, at(0), 10.0)],
        expected={"value": [None, 1.0], "tag": [None, "x"], "count": [None, 1], "score": [None, 10.0]},
        matched={"obs": 1, "by_num": 1},
    ),
    Case(
        "null_keys_match_nothing",
        events=[(None, None, at(5)), ("a", 1, at(5))],
        obs=[("a", at(0), 1.0, "x", 1)],
        by_num=[(1, at(0), 10.0)],
        expected={"value": [None, 1.0], "tag": [None, "x"], "count": [None, 1], "score": [None, 10.0]},
        matched={"obs": 1, "by_num": 1},
    ),
    Case(
        "null_keys_match_nothing_even_in_the_view_files",
        events=[(None, None, at(5)), ("a", 1, at(5))],
        obs=[("a", at(0), 1.0, "x", 1)],
        by_num=[(1, at(0), 10.0)],
        raw_null_keys=True,
        expected={"value": [None, 1.0], "tag": [None, "x"], "count": [None, 1], "score": [None, 10.0]},
        matched={"obs": 1, "by_num": 1},
    ),
    Case(
        "duplicate_feature_rows_at_one_timestamp_are_refused",
        events=[("a", 1, at(5))],
        obs=[("a", at(0), 1.0, "x", 1), ("a", at(0), 2.0, "y", 2)],
        error="returned 1 rows with the same keys and event_timestamp",
    ),
    Case(
        "duplicate_entity_rows_all_get_the_value_in_their_order",
        events=[("a", 1, at(5)), ("b", 2, at(5)), ("a", 1, at(5)), ("a", 1, at(-5))],
        obs=[("a", at(0), 1.0, "x", 1), ("b", at(0), 3.0, "z", 3)],
        by_num=[(1, at(0), 10.0), (2, at(0), 30.0)],
        expected={
            "value": [1.0, 3.0, 1.0, None],
            "tag": ["x", "z", "x", None],
            "count": [1, 3, 1, None],
            "score": [10.0, 30.0, 10.0, None],
        },
        matched={"obs": 3, "by_num": 3},
    ),
    Case(
        "a_row_with_missing_values_is_a_match_with_missing_values",
        events=[("a", 1, at(5)), ("a", 1, at(15))],
        obs=[("a", at(0), 1.0, "x", 1), ("a", at(10), None, None, None)],
        expected={"value": [1.0, None], "tag": ["x", None], "count": [1, None]},
        matched={"obs": 2},
    ),
    Case(
        "day_buckets_carry_rows_across_days_within_the_ttl",
        # 10:00 on 1 March; the TTL (2 d) ends 10:00 on 3 March.
        events=[
            ("a", 1, at(-180)),  # 09:00 on 1 March: before the row
            ("a", 1, at(-120) + pd.Timedelta(days=1)),  # 10:00 on 2 March: carried into the next day
            ("a", 1, at(-121) + pd.Timedelta(days=2)),  # 09:59 on 3 March: carried, within the TTL
            ("a", 1, at(-120) + pd.Timedelta(days=2)),  # 10:00 on 3 March: the TTL bound, included
            ("a", 1, at(-119) + pd.Timedelta(days=2)),  # 10:01 on 3 March: beyond the TTL
        ],
        daily=[("a", at(-120), 5.0)],
        expected={"level": [None, 5.0, 5.0, 5.0, None]},
        matched={"daily": 3},
    ),
    Case("an_empty_event_table_gives_empty_columns", events=[], obs=[("a", at(0), 1.0, "x", 1)]),
]


def make_project(root: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "noria.yaml").write_text(NORIA_YAML)
    (root / "contract_features.py").write_text(CODE)
    return load_project(root, environ={})


def definitions(project: Project) -> Definitions:
    return load_definitions(project, FeaturesConfig.model_validate(FEATURES_CONFIG))


def view_files(defs: Definitions, case: Case, folder: Path) -> dict[str, Path]:
    """Each view's Parquet as the platform writes it (``view_table``), from the case's rows."""
    frames = {
        "obs": pd.DataFrame(
            [*case.obs, FILLER_OBS], columns=["key", "event_timestamp", "value", "tag", "count"]
        ).astype({"value": "float64", "count": "Int64"}),
        "daily": pd.DataFrame([*case.daily, FILLER_DAILY], columns=["key", "event_timestamp", "level"]),
        "by_num": pd.DataFrame([*case.by_num, FILLER_NUM], columns=["num", "event_timestamp", "score"]),
    }
    paths = {}
    folder.mkdir(parents=True, exist_ok=True)
    for view, frame in frames.items():
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        table, _ = view_table(defs, view, frame)
        if case.raw_null_keys:  # a row whose key is null, at the very same time as the events, in every view
            table = _with_null_key_row(table, defs.join_keys(view), min(e[2] for e in case.events))
        paths[view] = folder / f"{view}.parquet"
        pq.write_table(table, paths[view], coerce_timestamps="us")
    return paths


def _with_null_key_row(table: pa.Table, keys: list[str], stamp: pd.Timestamp) -> pa.Table:
    row = table.slice(0, 1).to_pylist()[0]
    row.update({k: None for k in keys if k != "noria_day"})
    row["event_timestamp"] = stamp.to_pydatetime()
    if "noria_day" in row:
        row["noria_day"] = (stamp - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)
    return pa.concat_tables([pa.Table.from_pylist([row], schema=table.schema), table])


def events_frame(case: Case) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": pd.Series([e[0] for e in case.events], dtype=object),
            "num": pd.array([e[1] for e in case.events], dtype="Int64"),
            "ts": pd.to_datetime(pd.Series([e[2] for e in case.events], dtype=object), utc=True),
        }
    )


def _plain(values: np.ndarray) -> list[Any]:
    """Values as JSON can hold them exactly: missing (NaN, None) as None."""
    out: list[Any] = []
    for v in values.tolist():
        out.append(None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    return out


def _answer(arrays: dict[str, np.ndarray], matched: dict[str, int]) -> dict[str, Any]:
    return {
        "values": {f: _plain(a) for f, a in arrays.items()},
        "dtypes": {f: str(a.dtype) for f, a in arrays.items()},
        "matched": matched,
    }


def run_case(engine_name: str, defs: Definitions, case: Case, work: Path) -> dict[str, Any]:
    """The case joined by the engine both ways: ``lookup`` (in memory) and ``join_files`` read back
    chunk by chunk (as a build does)."""
    plan = defs.service()
    engine = join_engine(engine_name)
    try:
        paths = view_files(defs, case, work / case.name / "views")
    except NoriaError as exc:
        return {"error": type(exc).__name__, "message": exc.message}
    cols, ts, values = request_stage(defs, plan, events_frame(case))
    keys = entity_keys(defs, plan, cols, values, ts)
    timings: dict[str, float] = {}
    details: dict[str, Any] = {}

    matched: dict[str, int] = {}
    in_memory = engine.lookup(defs, VIEWS, keys, ts, paths, matched, timings=timings, details=details)
    answer: dict[str, Any] = {"lookup": _answer(in_memory, matched), "details": details}
    if len(ts) == 0:  # a build with no entity rows stops before the join (DataError): nothing to stage
        return answer

    folder = work / case.name / "staged"
    folder.mkdir(parents=True)
    entity_path = folder / "entity_rows.parquet"
    pq.write_table(entity_table(keys, ts, schema=entity_schema(defs, VIEWS, paths)), entity_path)
    joined = engine.join_files(
        defs, VIEWS, entity_path, paths, prediction_window(ts), folder, timings=timings, details=details
    )
    values: dict[str, list[Any]] = {}
    dtypes: dict[str, list[str]] = {}
    matched = {}
    for view in VIEWS:
        cursor = JoinedRows(view, joined[view], len(ts), CHUNK_ROWS)
        for first in range(0, len(ts), CHUNK_ROWS):  # as a build reads them: chunk by chunk
            n = min(CHUNK_ROWS, len(ts) - first)
            counted: dict[str, int] = {}
            chunk = view_values(defs, view, cursor.take(n), ts[first : first + n], counted)
            matched[view] = matched.get(view, 0) + counted[view]
            for feature, array in chunk.items():
                values.setdefault(feature, []).extend(_plain(array))
                dtypes.setdefault(feature, []).append(str(array.dtype))
        cursor.finish()
    answer["join_files"] = {"values": values, "dtypes": dtypes, "matched": matched}
    return answer


def run_all(engine_name: str, work: Path) -> dict[str, Any]:
    """Every case on one engine, with the seconds each took."""
    out: dict[str, Any] = {}
    defs = definitions(make_project(work / engine_name / "project"))
    for case in CASES:
        started = time.perf_counter()
        out[case.name] = run_case(engine_name, defs, case, work / engine_name)
        out[case.name]["seconds"] = round(time.perf_counter() - started, 3)
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--engine", default="spark")
    args = parser.parse_args(argv)
    session = None
    started = time.perf_counter()
    if args.engine == "spark":  # one session for every case: the engine uses the active one and leaves it running
        from noria.features.config import SparkSpec
        from noria.features.spark import pyspark_modules, session_settings

        sql, _, _ = pyspark_modules()
        spec = SparkSpec(app_name="noria-join-contract", conf=SPARK_CONF)
        builder = sql.SparkSession.builder.appName(spec.app_name).master(str(spec.master))
        for key, value in session_settings(spec).items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
    session_seconds = time.perf_counter() - started
    try:
        results = run_all(args.engine, args.work)
    finally:
        if session is not None:
            session.stop()
    args.out.write_text(json.dumps({"session_seconds": round(session_seconds, 3), "cases": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
