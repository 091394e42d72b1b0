"""Batch scoring on Spark: ``noria predict --engine spark``, for inputs that outgrow one machine.

The same scoring as the local engine (:mod:`noria.serving.batch`), distributed: Spark reads the
input (a Parquet file or a folder of them) and ``mapInPandas`` hands each partition to the
executors' Python in Arrow batches of ``serving.batch.chunk_size`` rows, where the very same
:func:`~noria.serving.batch_scoring.score_frame` scores them. The driver resolves and loads the model
version from the registry once, and ships it to the executors as a broadcast variable (the
pickled booster, its reference profile and the feature descriptions): each executor's Python
worker builds the model once and keeps it for every later batch and task, nothing is read from
the registry on the executors. Spark writes the output Parquet files into a hidden folder next
to ``output``, which is renamed to ``output`` when the job has succeeded (a reader never sees a
half-written result), and the delivery record counts the rows Spark wrote.

What the Spark engine does not do, and why:

- Online lookups. The local engine reads features the input lacks from the online store, row
  by row. A Spark job should not: the online store holds only the latest values (not those at
  each row's time), it is sized for serving traffic, and executors cannot be assumed to reach
  it. So the input must hold every model feature (the offline point-in-time join gives them:
  ``noria features build``, on Spark too), or the online store must be off
  (``serving.online_features: off``: missing features are missing values, on both engines).
  Otherwise the run is refused before Spark starts, naming ``--engine local``.
- The prediction log. It is a folder written by one writer process on one machine; a Spark job
  at this scale would double its data into it. The output itself holds every prediction with
  its model version, and the delivery record is written as for the local engine.

The Spark session is the project's (``features.spark``: master, driver memory, ``conf``), or
the active one under ``spark-submit``; input and output paths must be on storage every
executor reads and writes at the same path (a shared file system), as ``features.repo_dir``
must for the Spark feature engine, and every executor needs Noria with its dependencies.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import ValidationError
from noria.serving.batch_records import BatchResult, finish_record
from noria.serving.batch_scoring import (
    Prepared,
    build_model,
    new_record,
    open_input,
    output_schema,
    prepare,
    request_columns,
    score_frame,
)

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.features.config import SparkSpec
    from noria.serving.config import ExplanationConfig
    from noria.serving.model import ServedModel
    from noria.serving.sources import LoadedVersion
    from noria.tasks import Task

ENGINE_NAME = "noria predict --engine spark"
# Arrow types of the prediction columns -> Spark SQL types (the only types output_schema adds).
_SPARK_TYPES = {"double": "DoubleType", "bool": "BooleanType", "string": "StringType", "int64": "LongType"}


def check_pyspark() -> None:
    """Fail at once, naming the install command, when pyspark (4.0+) cannot be imported."""
    from noria.features.spark import pyspark_modules

    pyspark_modules(ENGINE_NAME, "score on one machine with --engine local (serving.batch.engine: local)")


@dataclass(frozen=True)
class _Recipe:
    """Everything an executor needs to build the model exactly as the driver did (pickled once)."""

    loaded: LoadedVersion  # the booster pickles as its model text, the reference profile as data
    task: Task
    words: dict[str, str]
    explanations: ExplanationConfig


# Per Python worker: the model built from the broadcast, by digest. Spark reuses its Python workers
# across tasks (spark.python.worker.reuse), so each worker builds the model once per job.
_BUILT: dict[str, ServedModel] = {}


def _worker_model(shipped: Any, digest: str) -> ServedModel:
    model = _BUILT.get(digest)
    if model is None:
        recipe: _Recipe = pickle.loads(shipped.value)  # the driver's own bytes, never user input
        model = build_model(recipe.loaded, recipe.task, recipe.words, recipe.explanations)
        _BUILT.clear()  # one job's model at a time: a long-lived worker does not pile up versions
        _BUILT[digest] = model
    return model


def score_partition(
    batches: Iterator[pd.DataFrame],
    *,
    shipped: Any,
    digest: str,
    task: Task,
    threshold: float,
    explain: bool,
    names: list[str],
) -> Iterator[pd.DataFrame]:
    """The executors' side: every Arrow batch of a partition through :func:`score_frame`, as locally."""
    model = _worker_model(shipped, digest)
    for frame in batches:
        scored, _ = score_frame(model, frame, None, request=None, task=task, threshold=threshold, explain=explain)
        yield scored[names]  # mapInPandas takes the columns in the order of the declared schema


def refuse_lookups(prepared: Prepared, columns: list[str], has_rows: bool) -> None:
    """Refuse an input whose missing model features the local engine would read from the online store."""
    if prepared.features is None or not has_rows:
        return
    missing = [name for name in prepared.model.features if name not in set(columns)]
    if not missing:
        return
    shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
    raise ValidationError(
        f"the input lacks {len(missing)} of the {len(prepared.model.features)} features of model"
        f" {prepared.model.name} version {prepared.model.version} ({shown}): only the local engine reads"
        " missing features from the online store (one lookup per row, latest values only), a Spark job does not",
        fix="score this file with --engine local, or give the input every model feature (the offline"
        " point-in-time join, `noria features build`, gives them), or set serving.online_features: off"
        " to score missing features as missing values",
    )


def refuse_nanoseconds(schema: Any) -> None:
    """Spark cannot read Parquet timestamps in nanoseconds (pandas' default): say so before it starts."""
    import pyarrow as pa

    found = [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]
    if found:
        raise ValidationError(
            f"Spark cannot read the input's timestamps in nanoseconds ({', '.join(found)})",
            fix="write them in microseconds (pandas: to_parquet(..., coerce_timestamps='us',"
            " allow_truncated_timestamps=True)), or score the file with --engine local",
        )


def score_file_spark(
    project: Project,
    input: Path | str,
    output: Path | str,
    *,
    chunk_size: int | None = None,
    alias: str | None = None,
    explain: bool = False,
) -> BatchResult:
    """Score ``input`` (a Parquet file or folder) into the Parquet folder ``output`` on Spark; record the delivery."""
    source, dst = open_input(input), Path(output)
    src = source.path
    prepared = prepare(project, alias)
    head = source.head()
    if head is not None:
        request_columns(prepared.request, head)  # the local engine's check of the request columns, same words
    refuse_lookups(prepared, list(source.schema.names), head is not None)
    refuse_nanoseconds(source.schema)
    check_pyspark()

    cfg, task = prepared.cfg, prepared.task
    size = chunk_size or cfg.batch.chunk_size
    clock = time.perf_counter()
    record = new_record(prepared, src, dst, "spark", {"chunk_size": size})
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{record.id}.tmp")
    payload = pickle.dumps(
        _Recipe(prepared.loaded, task, dict(prepared.words), cfg.explanations), protocol=pickle.HIGHEST_PROTOCOL
    )
    timings: dict[str, float] = {}
    record.extra["timings"] = timings
    try:
        started = time.perf_counter()
        with _spark(prepared.defs.config.spark, size) as (session, details):
            record.extra["spark"] = details
            timings["session"] = round(time.perf_counter() - started, 3)
            _, F, _ = _modules()  # noqa: N806 (pyspark's conventional name)
            frame = session.read.parquet(src.resolve().as_uri())
            # pandas' index columns: the local reader turns them back into the index, never into output.
            frame = frame.drop(*[c for c in frame.columns if c.startswith("__index")])
            schema = _output_struct(frame.schema, explain, task)
            names = [f.name for f in schema.fields]
            shipped = session.sparkContext.broadcast(payload)
            scorer = functools.partial(
                score_partition,
                shipped=shipped,
                digest=hashlib.sha256(payload).hexdigest(),
                task=task,
                threshold=cfg.decision_threshold,
                explain=explain,
                names=names,
            )
            record.extra["partitions"] = frame.rdd.getNumPartitions()
            scored = frame.mapInPandas(scorer, schema)
            started = time.perf_counter()
            scored.write.mode("errorifexists").option("compression", "zstd").parquet(tmp.resolve().as_uri())
            timings["score_and_write"] = round(time.perf_counter() - started, 3)
            shipped.unpersist()
            started = time.perf_counter()
            record.rows_in = frame.count()
            # The counts of what was written, read back from the output (two columns): exact, and
            # true even if Spark re-ran a task.
            written = session.read.parquet(tmp.resolve().as_uri())
            flagged = F.col(f"`{task.label_name}`").cast("long") if task.name == "binary" else F.lit(0)
            counts = written.agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum(flagged).alias("flagged"),
                F.sum(F.col("ood").cast("long")).alias("ood"),
            ).first()
            record.rows_out = int(counts["rows"])
            record.flagged_rows = int(counts["flagged"] or 0)
            record.ood_rows = int(counts["ood"] or 0)
            timings["count"] = round(time.perf_counter() - started, 3)
        _commit(tmp, dst, record.id)
        record.status = "succeeded"
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        record_path = finish_record(project, cfg, record, clock)
    return BatchResult(dst, record, record_path)


def _modules() -> tuple[Any, Any, Any]:
    from noria.features.spark import pyspark_modules

    return pyspark_modules(ENGINE_NAME, "score on one machine with --engine local")


def _output_struct(input_struct: Any, explain: bool, task: Task) -> Any:
    """The output's Spark schema: the input's columns (less those the prediction columns replace), then ours."""
    import importlib

    import pyarrow as pa

    types = importlib.import_module("pyspark.sql.types")
    ours = output_schema(pa.schema([]), explain, task)
    taken = set(ours.names)
    fields = [f for f in input_struct.fields if f.name not in taken]
    for field in ours:
        spark_type = getattr(types, _SPARK_TYPES[str(field.type)])()
        fields.append(types.StructField(field.name, spark_type, True))
    return types.StructType(fields)


def _commit(tmp: Path, dst: Path, run: str) -> None:
    """Put the finished output folder at ``dst`` by renames; a previous output is replaced."""
    if not dst.exists() and not dst.is_symlink():
        tmp.replace(dst)
        return
    old = dst.with_name(f".{dst.name}.{run}.old")
    dst.replace(old)  # a file or a folder: moved aside, then the new one takes its name
    try:
        tmp.replace(dst)
    except OSError:
        old.replace(dst)  # put the previous output back
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


@contextmanager
def _spark(spec: SparkSpec, chunk_size: int) -> Iterator[tuple[Any, dict[str, str]]]:
    """The project's Spark session (or the active one), set up for this job, and what runs it."""
    from noria.features.spark import _pyspark_version, spark_session

    _modules()
    if spec.app_name == type(spec).model_fields["app_name"].default:
        spec = spec.model_copy(update={"app_name": "noria-predict"})
    with _worker_python(spec.master), spark_session(spec) as (session, started_here):
        settings = {
            # mapInPandas hands the scorer batches of this many rows: memory per task stays bounded.
            "spark.sql.execution.arrow.maxRecordsPerBatch": str(chunk_size),
            # Timestamps as Parquet's standard INT64 microseconds (UTC), not Spark's legacy INT96.
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        }
        with _runtime_conf(session, settings):
            yield (
                session,
                {
                    "pyspark": _pyspark_version(),
                    "spark": str(session.version),
                    "master": str(session.conf.get("spark.master", "unknown")),
                    "session": "started" if started_here else "active",
                },
            )


@contextmanager
def _worker_python(master: str | None) -> Iterator[None]:
    """In local mode, Spark's Python workers run this interpreter (Spark's default is ``python3`` on
    PATH, which may not have Noria); PYSPARK_PYTHON, when set, and a cluster decide for themselves."""
    if "PYSPARK_PYTHON" in os.environ or not (master or "").startswith("local"):
        yield
        return
    os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        yield
    finally:
        os.environ.pop("PYSPARK_PYTHON", None)


@contextmanager
def _runtime_conf(session: Any, settings: Mapping[str, str]) -> Iterator[None]:
    """Set SQL settings for the job and put the previous values back (an active session is the user's)."""
    previous = {key: session.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        session.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                session.conf.unset(key)
            else:
                session.conf.set(key, value)


__all__ = ["check_pyspark", "refuse_lookups", "refuse_nanoseconds", "score_file_spark", "score_partition"]
