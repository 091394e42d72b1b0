"""What both batch engines share: the model version prepared, the input opened, a chunk scored.

:func:`prepare` resolves and loads the model version and opens the feature source;
:func:`open_input` opens a Parquet file or a folder of them; :func:`score_frame` scores one
chunk exactly as the service scores a request (the request columns, the online feature lookup,
the model's feature order and category codes, the out-of-distribution check, the answer in the
task's terms); :func:`output_schema` is the output's columns. The local engine
(:mod:`noria.serving.batch`) and the Spark engine (:mod:`noria.serving.batch_spark`) both call
them, so their outputs are the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import NotFoundError, SourceError, ValidationError
from noria.serving.batch_records import DeliveryRecord

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.features.definitions import Definitions
    from noria.serving.config import ExplanationConfig, ServingConfig
    from noria.serving.model import Scored, ServedModel
    from noria.serving.requests import RequestSchema
    from noria.serving.sources import FeatureSource, LoadedVersion
    from noria.tasks import Task


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
    features, _ = open_feature_source(project, cfg.online_features, cfg.feature_service, cfg.feature_cache)
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
        started_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        finished_at="",
        seconds=0.0,
        extra=extra,
        engine=engine,
    )


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


__all__ = [
    "BatchInput",
    "Prepared",
    "build_model",
    "new_record",
    "open_input",
    "output_schema",
    "prepare",
    "request_columns",
    "score_frame",
]
