"""Batch scoring: a Parquet file of requests in, the same file with predictions out.

The same code as the service: the request columns (the file holds them as the request table
does, or in the shape of the project's own request model, mapped), the online feature lookup
(``noria.features``), the model's feature order and category codes, the out-of-distribution
check, the answer in the task's terms. The file is streamed in chunks (memory stays flat),
the output appears atomically (temp file, then rename), every scored row goes to the
prediction log with its event key and time (monitoring sees batch predictions like served
ones), and every run leaves a *delivery record* (rows in and out, model version, time,
status) under ``.noria/deliveries/`` so that continuity of delivery can be monitored
(maturity item 42).

That is the ``local`` engine. ``engine="spark"`` (``--engine spark``,
``serving.batch.engine: spark``) runs the same :func:`score_frame` on Spark executors instead,
for inputs that outgrow one machine (:mod:`noria.serving.batch_spark`); both engines share the
preparation (model, feature source, descriptions) and the scoring of a chunk
(:mod:`noria.serving.batch_scoring`), so their outputs are the same. The delivery records are
in :mod:`noria.serving.batch_records`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria import atomic
from noria.errors import ValidationError
from noria.serving.batch_records import BatchResult, DeliveryRecord, finish_record, list_deliveries
from noria.serving.batch_scoring import (
    BatchInput,
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
    from noria.serving.model import Scored, ServedModel
    from noria.serving.requests import RequestSchema
    from noria.tasks import Task

ENGINES = ("local", "spark")


def score_file(
    project: Project,
    input: Path | str,
    output: Path | str,
    *,
    chunk_size: int | None = None,
    alias: str | None = None,
    explain: bool = False,
    progress: bool = False,
    engine: str | None = None,
) -> BatchResult:
    """Score every request of ``input`` (Parquet) into ``output`` (Parquet) and record the delivery.

    ``engine``: ``local`` streams the file in chunks here; ``spark`` runs the same scoring as a
    Spark job (:func:`noria.serving.batch_spark.score_file_spark`; ``output`` is then a folder of
    Parquet files). Default: ``serving.batch.engine``.
    """
    from noria.serving.config import serving_config

    chosen = engine or serving_config(project).batch.engine
    if chosen not in ENGINES:
        raise ValidationError(f"unknown batch scoring engine {chosen!r}", fix=f"use one of: {', '.join(ENGINES)}")
    if chosen == "spark":
        from noria.serving.batch_spark import score_file_spark

        return score_file_spark(project, input, output, chunk_size=chunk_size, alias=alias, explain=explain)
    return _score_local(project, input, output, chunk_size=chunk_size, alias=alias, explain=explain, progress=progress)


def _score_local(
    project: Project,
    input: Path | str,
    output: Path | str,
    *,
    chunk_size: int | None,
    alias: str | None,
    explain: bool,
    progress: bool,
) -> BatchResult:
    """The local engine: stream ``input`` in chunks of ``chunk_size`` rows through :func:`score_frame`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, dst = open_input(input), Path(output)
    src = source.path
    prepared = prepare(project, alias)
    cfg, request, task, model = prepared.cfg, prepared.request, prepared.task, prepared.model
    features = prepared.features
    size = chunk_size or cfg.batch.chunk_size
    clock = time.perf_counter()
    record = new_record(prepared, src, dst, "local", {"chunk_size": size})
    schema = output_schema(source.schema, explain, task)
    writer: Any = None
    log = _open_log(project, cfg)
    try:
        with atomic.temp_path(dst) as tmp:
            try:
                with _Progress(progress, source.rows() if progress else 0, src.name) as advance:
                    for batch in source.batches(size):
                        frame = batch.to_pandas()
                        record.rows_in += len(frame)
                        columns = request_columns(request, frame) if len(frame) else {}
                        scored_frame, scored = score_frame(
                            model,
                            frame,
                            features,
                            request=request,
                            task=task,
                            threshold=cfg.decision_threshold,
                            explain=explain,
                            columns=columns,
                        )
                        table = pa.Table.from_pandas(scored_frame, schema=schema, preserve_index=False)
                        if writer is None:
                            writer = pq.ParquetWriter(tmp, schema, compression="zstd")
                        writer.write_table(table)
                        record.rows_out += len(scored_frame)
                        record.flagged_rows += sum(1 for s in scored if s.decision)
                        record.ood_rows += int(scored_frame["ood"].sum())
                        if log is not None and len(frame):
                            _log_chunk(
                                log,
                                record,
                                model,
                                scored,
                                request,
                                prepared.defs,
                                columns,
                                frame,
                                cfg.decision_threshold,
                                task,
                            )
                        advance(len(frame))
                if writer is None:  # an empty file: its columns and ours, no rows
                    pq.write_table(schema.empty_table(), tmp)
                else:
                    writer.close()
                    writer = None
            finally:
                if writer is not None:  # closed before the temporary file is renamed or removed
                    writer.close()
        record.status = "succeeded"
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if log is not None:
            log.close()
        record_path = finish_record(project, cfg, record, clock)
    return BatchResult(dst, record, record_path)


def _open_log(project: Project, cfg: Any) -> Any:
    """The prediction log batch predictions go to (None when the project turned it off)."""
    if not cfg.prediction_log.enabled:
        return None
    from noria.serving.predlog import PredictionLog

    return PredictionLog(
        project.path(cfg.prediction_log.dir),
        roll_rows=cfg.prediction_log.roll_rows,
        roll_seconds=cfg.prediction_log.roll_seconds,
        # Two chunks at most, and _log_chunk waits for room: memory stays bounded whatever the
        # input's size, and a slow writer slows the scoring down instead of losing rows.
        max_queue_rows=cfg.batch.chunk_size * 2,
        # the writer types the event key's columns by the request table's declared types
        project_root=project.root,
        profile=project.profile,
        remote=cfg.prediction_log.remote,
    )


def _log_chunk(
    log: Any,
    record: DeliveryRecord,
    model: ServedModel,
    scored: list[Scored],
    request: RequestSchema,
    defs: Any,
    columns: Mapping[str, Any],
    frame: pd.DataFrame,
    threshold: float,
    task: Task,
) -> None:
    """The chunk's predictions to the prediction log, with the event key and time computed here."""
    import numpy as np

    from noria.serving.predlog import ScoredRow

    stamps, keys = request.event_keys(defs, {k: np.asarray(v) for k, v in columns.items()})
    seconds = stamps.astype("datetime64[us]").astype("int64") / 1_000_000
    now = time.time()
    rows = []
    ids = request.ids
    names = list(columns)
    for i, item in enumerate(scored):
        key = {name: _plain(keys[name][i]) for name in ids}
        given = {name: _plain(columns[name][i]) for name in names}
        rows.append(
            ScoredRow(
                f"batch-{record.id}",
                record.rows_out - len(scored) + i,
                now,
                model.name,
                model.version,
                "champion",
                True,
                json.dumps(given, default=str),
                item,
                threshold if task.name == "binary" else None,
                model.features,
                event_time=float(seconds[i]),
                keys=key,
            )
        )
    log.wait_for_room(len(rows))
    log.write(rows)


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.datetime64):
        return float(value.astype("datetime64[us]").astype("int64")) / 1_000_000
    from datetime import datetime

    if isinstance(value, datetime):
        return value.timestamp()
    item = getattr(value, "item", None)
    return item() if item is not None else value


class _Progress:
    """A rich progress bar over rows (or nothing), as a context manager yielding ``advance(n)``."""

    def __init__(self, enabled: bool, total: int, name: str) -> None:
        self.enabled, self.total, self.name = enabled, total, name
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn(f"scoring {self.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        )
        self._bar.start()
        self._task = self._bar.add_task("rows", total=self.total)
        return lambda n: self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = [
    "ENGINES",
    "BatchInput",
    "BatchResult",
    "DeliveryRecord",
    "Prepared",
    "build_model",
    "list_deliveries",
    "open_input",
    "output_schema",
    "prepare",
    "request_columns",
    "score_file",
    "score_frame",
]
