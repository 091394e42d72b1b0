"""The prediction log's rows: what the request path queues and the Arrow table the writer builds of them.

The request path leaves a :class:`ScoredRow` (references, no copies); :func:`record` turns it
into a tuple of plain values in ``RECORD_FIELDS`` order (about a microsecond, cheap to pickle).
:func:`rows_to_table` is the writer process's side: many rows at once into the log's columns
(``COLUMN_TYPES``, then one ``key.<id>`` column per request id and one ``feature.<name>``
column per model feature). The columns are described in :mod:`noria.serving.predlog`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from noria.serving.predlog_keys import EventKeyer

FEATURE_PREFIX = "feature."
KEY_PREFIX = "key."
EVENT_TIME = "event_time"
# The fixed columns of the log and their kinds (see :func:`rows_to_table`).
COLUMN_TYPES: dict[str, str] = {
    "request_id": "string",
    "row": "int32",
    "timestamp": "timestamp",
    "endpoint": "string",
    "status": "int32",
    "model_name": "string",
    "model_version": "int32",
    "arm": "string",
    "served": "bool",
    "input": "string",
    "score": "float64",
    "probability": "float64",
    "raw_score": "float64",
    "decision": "bool",
    "predicted_class": "string",
    "probabilities": "floats",
    "threshold": "float64",
    "ood": "bool",
    "ood_reasons": "list",
    "latency_ms": "float64",
    "lookup_ms": "float64",
    "model_ms": "float64",
    "error": "string",
    EVENT_TIME: "timestamp",
}


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "string": pa.string(),
        "int32": pa.int32(),
        "bool": pa.bool_(),
        "float64": pa.float64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "list": pa.list_(pa.string()),
        "floats": pa.list_(pa.float64()),
        "int64": pa.int64(),
    }[kind]


@dataclass(slots=True)
class ScoredRow:
    """One scored row as the request path leaves it: references to what it already holds, no copies.

    :meth:`PredictionLog.write` turns it into a tuple of plain values (:func:`record`); building
    the log's columns from those is the writer process's work, done for many rows at once.
    :meth:`as_dict` is the same row as a plain dict (what :meth:`PredictionLog.write` also takes).
    """

    request_id: str
    row: int
    timestamp: float  # Unix seconds
    model_name: str
    model_version: int
    arm: str
    served: bool
    input: Any  # the request body (bytes) or one request of a batch (a pydantic model)
    scored: Any  # noria.serving.model.Scored: score, probability, raw, decision, label, probabilities, ood, values
    threshold: float | None
    features: tuple[str, ...]  # the model's feature names, in the order of ``scored.values``
    latency_ms: float | None = None
    lookup_ms: float | None = None
    model_ms: float | None = None
    event_time: float | None = None  # Unix seconds, when the producer knows it (batch scoring)
    keys: dict[str, Any] | None = None  # id -> value, likewise

    def as_dict(self) -> dict[str, Any]:
        return dict(_as_dict(record(self)))


# A scored row as plain values, in this order (what the request path queues; see :func:`record`).
RECORD_FIELDS = (
    "request_id", "row", "timestamp", "model_name", "model_version", "arm", "served", "input",
    "score", "probability", "raw_score", "decision", "predicted_class", "probabilities", "threshold",
    "ood_reasons", "latency_ms", "lookup_ms", "model_ms", "event_time", "keys", "feature_names", "feature_values",
)  # fmt: skip
LogRow = ScoredRow | Mapping[str, Any] | tuple[Any, ...]


def record(row: ScoredRow) -> tuple[Any, ...]:
    """A :class:`ScoredRow` as a tuple of plain values in ``RECORD_FIELDS`` order (cheap to pickle)."""
    scored = row.scored
    body = row.input
    return (
        row.request_id,
        row.row,
        row.timestamp,
        row.model_name,
        row.model_version,
        row.arm,
        row.served,
        body if type(body) is bytes or type(body) is str else _text(body),  # a batch's request: JSON text
        scored.score,
        scored.probability,
        scored.raw,
        scored.decision,
        scored.label,
        scored.probabilities,
        row.threshold,
        [reason["detail"] for reason in scored.ood],
        row.latency_ms,
        row.lookup_ms,
        row.model_ms,
        row.event_time,
        row.keys,
        row.features,
        scored.values,
    )


def rows_to_table(rows: Sequence[LogRow], keyer: EventKeyer | None = None) -> Any:
    """An Arrow table of log rows; feature columns are strings if any value is text, else float64.

    Rows are records (:func:`record`, what the request path queues), :class:`ScoredRow` records
    or plain mappings (failures, tests); a chunk of records only is read column by column,
    without a dict per row. ``keyer`` fills in the event key and time of served rows that do not
    carry them (computed from the logged request).
    """
    import pyarrow as pa

    plain: list[Mapping[str, Any] | tuple[Any, ...]] = [record(r) if isinstance(r, ScoredRow) else r for r in rows]
    if plain and all(type(r) is tuple for r in plain):
        values, vectors = _record_columns(plain)  # type: ignore[arg-type]
    else:
        dicts = [_as_dict(r) for r in plain]
        values = {name: [r.get(name) for r in dicts] for name in (*COLUMN_TYPES, "keys")}
        vectors = [r.get("features") for r in dicts]
    keys: list[Any] = list(values.get("keys") or [None] * len(plain))
    computed = _fill_keys(values, keys, keyer) if keyer is not None else None
    columns: dict[str, Any] = {}
    for name, kind in COLUMN_TYPES.items():
        column = values[name]
        if kind == "timestamp":  # epoch seconds -> microseconds, no datetime objects
            column = [None if v is None else round(v * 1_000_000) for v in column]
        elif name == "input":
            column = [_text(v) for v in column]
        columns[name] = pa.array(column, type=_arrow_type(kind))
    for name, column in _key_columns(keys, keyer, computed).items():
        columns[KEY_PREFIX + name] = column
    for feature, column in _feature_columns(vectors).items():
        columns[FEATURE_PREFIX + feature] = _feature_array(column)
    return pa.table(columns)


def _fill_keys(values: dict[str, list[Any]], keys: list[Any], keyer: EventKeyer) -> dict[str, list[Any]] | None:
    """Event times and keys of rows that lack them, from their logged requests (in place). When
    every row was keyed here (the service's rows), the key columns are returned as the keyer
    computed them instead of one dict per row (a tenth of the writer's time on the flights log)."""
    times = values[EVENT_TIME]
    status = values.get("status") or [200] * len(times)
    todo = [i for i, t in enumerate(times) if t is None and status[i] == 200 and values["input"][i] is not None]
    if not todo:
        return None
    found_times, columns, keyed = keyer.compute_columns([values["input"][i] for i in todo])
    if len(todo) == len(times) and not any(keys):
        values[EVENT_TIME] = found_times
        return columns
    for j, i in enumerate(todo):
        times[i] = found_times[j]
        if keyed[j]:
            keys[i] = {name: column[j] for name, column in columns.items()}
    return None


def _key_columns(keys: list[Any], keyer: EventKeyer | None, computed: dict[str, list[Any]] | None) -> dict[str, Any]:
    """One Arrow column per id (typed by the request table when known, else by Arrow)."""
    import pyarrow as pa

    names: dict[str, None] = dict.fromkeys(keyer.ids) if keyer is not None else {}
    if computed is None:
        for key in keys:
            if key:
                for name in key:
                    names.setdefault(name, None)
    out: dict[str, Any] = {}
    for name in names:
        column = computed[name] if computed is not None else [None if not key else key.get(name) for key in keys]
        kind = keyer.arrow_kind(name) if keyer is not None else None
        if kind == "timestamp":
            column = [None if v is None else round(v * 1_000_000) for v in column]
        try:
            out[name] = pa.array(column, type=_arrow_type(kind) if kind else None)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            out[name] = pa.array([None if v is None else str(v) for v in column], type=pa.string())
    return out


def _as_dict(row: Mapping[str, Any] | tuple[Any, ...]) -> Mapping[str, Any]:
    if type(row) is not tuple:
        return row  # type: ignore[return-value]
    fields = dict(zip(RECORD_FIELDS, row, strict=True))
    fields.update(
        endpoint="/predict",
        status=200,
        ood=bool(fields["ood_reasons"]),
        features=(fields.pop("feature_names"), fields.pop("feature_values")),
    )
    return fields


def _record_columns(rows: Sequence[tuple[Any, ...]]) -> tuple[dict[str, list[Any]], list[Any]]:
    """The fixed columns and feature vectors of records, one list per column."""
    n = len(rows)
    by_field = dict(zip(RECORD_FIELDS, (list(column) for column in zip(*rows, strict=True)), strict=True))
    columns: dict[str, list[Any]] = {name: by_field[name] for name in RECORD_FIELDS[:-2]}
    columns.update(
        endpoint=["/predict"] * n,
        status=[200] * n,
        ood=[bool(reasons) for reasons in by_field["ood_reasons"]],
        error=[None] * n,
    )
    return columns, list(zip(by_field["feature_names"], by_field["feature_values"], strict=True))


def _feature_array(values: list[Any]) -> Any:
    """float64 unless a value is text (then every value as text): Arrow's own conversion decides.

    A column with no value at all is Arrow's null type, which files of other types merge with
    (a text feature missing from every row of one file must not make it "double" there).
    """
    import pyarrow as pa

    if all(v is None for v in values):
        return pa.nulls(len(values))
    try:
        return pa.array(values, type=pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # text among the values (or something not a number)
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _feature_columns(vectors: list[Any]) -> dict[str, list[Any]]:
    """Feature vectors (mappings, or (names, values) as the request path leaves them) as columns.

    Rows of one model have the same names: their values are transposed in one step. (The rows
    of one frame share one names tuple; frames unpickled apart have equal ones: compared by value,
    or every merged batch of frames took the slow way, one dict per row: 20 us a row against 15.)
    """
    first = vectors[0] if vectors else None
    if isinstance(first, tuple) and all(isinstance(v, tuple) and v[0] == first[0] for v in vectors):
        names = first[0]
        return dict(zip(names, (list(col) for col in zip(*(v[1] for v in vectors), strict=True)), strict=True))
    mappings = [_features(v) for v in vectors]
    keys: dict[str, None] = {}
    for mapping in mappings:
        for key in mapping:
            keys.setdefault(key, None)
    return {key: [m.get(key) for m in mappings] for key in keys}


def _text(value: Any) -> str | None:
    """The request input as JSON text: bytes of a body, a pydantic model, or text already."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    dump = getattr(value, "model_dump_json", None)
    return str(dump(exclude_none=True)) if dump is not None else str(value)


def _features(value: Any) -> dict[str, Any]:
    """A feature vector given as a mapping, or as (names, values) as the request path leaves it."""
    if not value:
        return {}
    if isinstance(value, tuple):
        names, values = value
        return dict(zip(names, values, strict=True))
    return dict(value)


__all__ = [
    "COLUMN_TYPES",
    "EVENT_TIME",
    "FEATURE_PREFIX",
    "KEY_PREFIX",
    "RECORD_FIELDS",
    "LogRow",
    "ScoredRow",
    "record",
    "rows_to_table",
]
