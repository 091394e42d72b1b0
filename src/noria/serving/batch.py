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
preparation below (model, feature source, descriptions), so their outputs are the same.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria import atomic
from noria.errors import NotFoundError, SourceError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.features.definitions import Definitions
    from noria.serving.config import ExplanationConfig, ServingConfig
    from noria.serving.model import Scored, ServedModel
    from noria.serving.requests import RequestSchema
    from noria.serving.sources import FeatureSource, LoadedVersion
    from noria.tasks import Task

ENGINES = ("local", "spark")


@dataclass
class DeliveryRecord:
    """One batch delivery: what went in, what came out, which model, when, and whether it worked."""

    id: str
    kind: str
    status: str  # "succeeded" or "failed"
    input: str
    output: str
    rows_in: int
    rows_out: int
    model_name: str
    model_version: int | None
    model_alias: str
    run_id: str | None
    started_at: str
    finished_at: str
    seconds: float
    flagged_rows: int = 0  # binary: rows whose decision was positive
    ood_rows: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"  # "local" (chunks in this process) or "spark"; records older than engines lack it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchResult:
    output: Path
    record: DeliveryRecord
    record_path: Path


def _write_record(folder: Path, record: DeliveryRecord) -> Path:
    stamp = record.started_at.replace(":", "").replace("-", "").replace("+0000", "Z")
    return atomic.write_text(
        folder / f"{stamp}-{record.id}.json", json.dumps(record.to_dict(), indent=2, sort_keys=True)
    )


def list_deliveries(project: Project) -> list[DeliveryRecord]:
    """Every delivery record of the project, oldest first."""
    from noria.serving.config import serving_config

    folder = project.path(serving_config(project).batch.deliveries_dir)
    records = []
    for path in sorted(folder.glob("*.json")):
        records.append(DeliveryRecord(**json.loads(path.read_text(encoding="utf-8"))))
    return records


def _inline(frame: pd.DataFrame, features: tuple[str, ...]) -> list[Mapping[str, Any] | None]:
    """Feature columns the file itself holds, per row, missing values as None."""
    import pandas as pd

    cols = [c for c in features if c in frame.columns]
    if not cols:
        return [None] * len(frame)
    part = frame[cols].astype(object)
    records: list[Mapping[str, Any] | None] = []
    for row in part.to_dict("records"):
        records.append({str(k): (None if v is None or v is pd.NA or v != v else v) for k, v in row.items()})
    return records


def score_frame(
    model: ServedModel,
    frame: pd.DataFrame,
    features: FeatureSource | None,
    *,
    request: RequestSchema | None,
    task: Task,
    threshold: float,
    explain: bool = False,
    columns: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, list[Scored]]:
    """``frame`` with the prediction columns added (the scoring of one chunk), and the scored rows.

    ``columns``: the chunk's request columns, when the caller has them already. ``request`` may be
    None only when nothing is looked up (``features`` None, or every model feature in ``frame``).
    """
    import pandas as pd

    inline = _inline(frame, model.features)
    covered = all(row is not None and model.inputs_set <= row.keys() for row in inline)
    looked = None
    if features is not None and not covered and len(frame):
        if columns is None:
            if request is None:
                raise ValueError("score_frame needs the request schema to look features up")
            columns = request_columns(request, frame)
        looked = features.lookup(pd.DataFrame(dict(columns)).reset_index(drop=True))
    scored = model.score(model.encode(inline, looked), threshold, explain)
    out = frame.copy()
    if task.name == "binary":
        out["probability"] = [s.score for s in scored]
        out[task.label_name] = [s.decision for s in scored]
    elif task.name == "multiclass":
        out["predicted_class"] = [s.label for s in scored]
        for j, name in enumerate(task.classes):
            out[f"probability_{name}"] = [(s.probabilities or [])[j] for s in scored]
    else:
        out["prediction"] = [s.score for s in scored]
    out["model_name"] = model.name
    out["model_version"] = model.version
    out["ood"] = [bool(s.ood) for s in scored]
    out["ood_reasons"] = ["; ".join(r["detail"] for r in s.ood) for s in scored]
    if explain:
        out["explanation"] = [
            "; ".join(c["text"] for c in (s.explanation or {}).get("contributions", [])) for s in scored
        ]
    return out, scored


def request_columns(request: RequestSchema, frame: pd.DataFrame) -> dict[str, Any]:
    """The request columns of ``frame`` (as the request table stores them, or mapped from the
    request model's fields), or an error naming what is missing."""
    found = request.frame_columns(frame)
    if found is None:
        wanted = ", ".join(dict.fromkeys([*request.ids, *request.request_columns]))
        raise ValidationError(
            f"the input has neither the request columns ({wanted}) nor the request fields"
            f" ({', '.join(request.field_names)}) (it has: {', '.join(map(str, frame.columns))})",
            fix="give every request column (as the request table holds them) or every field of a request",
        )
    return found


@dataclass
class Prepared:
    """What both engines score with: the chosen model version, prepared, and where features come from."""

    cfg: ServingConfig
    alias: str
    defs: Definitions
    request: RequestSchema
    task: Task
    loaded: LoadedVersion
    model: ServedModel
    features: FeatureSource | None
    words: dict[str, str]  # feature descriptions for the explanations (from the feature store)


def prepare(project: Project, alias: str | None = None) -> Prepared:
    """Resolve and load the model version ``alias`` (default ``serving.alias``) and open the feature source."""
    from noria.features.definitions import load_definitions
    from noria.serving.config import serving_config
    from noria.serving.requests import request_schema
    from noria.serving.sources import RegistryModelSource, open_feature_source
    from noria.tasks import task_of

    cfg = serving_config(project)
    chosen = alias or cfg.alias
    defs = load_definitions(project)
    request = request_schema(project, defs)
    task = task_of(project)
    source = RegistryModelSource(project, cfg.model or project.config.model.name)
    loaded = source.load(source.resolve(chosen), chosen)
    features, _ = open_feature_source(project, cfg.online_features, cfg.feature_service)
    words = features.descriptions() if features is not None else {}
    model = build_model(loaded, task, words, cfg.explanations)
    return Prepared(cfg, chosen, defs, request, task, loaded, model, features, words)


def build_model(
    loaded: LoadedVersion, task: Task, words: Mapping[str, str], explanations: ExplanationConfig
) -> ServedModel:
    """The one way batch scoring prepares a version, as the service does (the Spark executors call it too)."""
    from noria.serving.model import ServedModel

    return ServedModel.build(
        loaded,
        task=task,
        descriptions=words,
        texts=explanations.features,
        top=explanations.top,
        method=explanations.method,
    )


def new_record(prepared: Prepared, src: Path, dst: Path, engine: str, extra: dict[str, Any]) -> DeliveryRecord:
    """A delivery record that says "failed" until the run says otherwise."""
    model = prepared.model
    return DeliveryRecord(
        id=uuid.uuid4().hex[:12],
        kind="batch_predict",
        status="failed",
        input=str(src.resolve()),
        output=str(dst.resolve()),
        rows_in=0,
        rows_out=0,
        model_name=model.name,
        model_version=model.version,
        model_alias=prepared.alias,
        run_id=model.loaded.ref.run_id,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        finished_at="",
        seconds=0.0,
        extra=extra,
        engine=engine,
    )


def finish_record(project: Project, cfg: ServingConfig, record: DeliveryRecord, clock: float) -> Path:
    """Stamp the end of the run and write the record (failed runs too)."""
    record.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    record.seconds = round(time.perf_counter() - clock, 3)
    return _write_record(project.path(cfg.batch.deliveries_dir), record)


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


@dataclass
class BatchInput:
    """A Parquet file, or a folder of them (a dataset), read in batches: what both engines start from."""

    path: Path
    schema: Any  # pyarrow.Schema (a folder's: its first file's)
    files: list[Path]

    def rows(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    def batches(self, size: int) -> Iterator[Any]:
        """Record batches of at most ``size`` rows, file by file in name order.

        Read by :func:`noria.data.scan.parquet_batches`: memory stays flat whatever the row
        groups' size.
        """
        from noria.data.scan import parquet_batches

        yield from parquet_batches(self.files, None, size)

    def head(self) -> pd.DataFrame | None:
        """The first row as pandas reads it (None when the input has no rows)."""
        for batch in self.batches(1):
            if batch.num_rows:
                first: pd.DataFrame = batch.slice(0, 1).to_pandas()
                return first
        return None


def open_input(input: Path | str) -> BatchInput:
    """``input`` opened for reading, or a clear error when it is missing or not Parquet."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    src = Path(input)
    if not src.is_file() and not src.is_dir():
        raise NotFoundError(f"no input file {src}", fix="pass a Parquet file (or a folder of them) with --input")
    try:
        if src.is_file():
            return BatchInput(src, pq.read_schema(src), [src])
        data = ds.dataset(src, format="parquet")  # files starting with "_" or "." are skipped, as Spark does
        files = sorted(Path(f) for f in data.files)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{src} is not a readable Parquet file: {exc}", fix="convert it to Parquet first") from None
    if not files:
        raise NotFoundError(f"no Parquet files in {src}", fix="pass a Parquet file (or a folder of them) with --input")
    return BatchInput(src, data.schema, files)


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


def output_schema(input_schema: Any, explain: bool, task: Task | None = None) -> Any:
    """The input's columns (types kept, pandas metadata dropped) and the prediction columns."""
    import pyarrow as pa

    from noria.tasks import BinaryTask

    task = task or BinaryTask()
    if task.name == "binary":
        answer = [pa.field("probability", pa.float64()), pa.field(task.label_name, pa.bool_())]
    elif task.name == "multiclass":
        answer = [pa.field("predicted_class", pa.string())]
        answer += [pa.field(f"probability_{c}", pa.float64()) for c in task.classes]
    else:
        answer = [pa.field("prediction", pa.float64())]
    ours = [
        *answer,
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.int64()),
        pa.field("ood", pa.bool_()),
        pa.field("ood_reasons", pa.string()),
    ]
    if explain:
        ours.append(pa.field("explanation", pa.string()))
    names = {f.name for f in ours}
    kept = [f for f in input_schema.remove_metadata() if f.name not in names and not f.name.startswith("__index")]
    return pa.schema([*kept, *ours])


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
