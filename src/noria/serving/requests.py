"""What a prediction request looks like, built from the project's configuration.

By default the service's request model is generated from the request table's declared
columns: the event key (``features.request.ids``) and the request columns
(``features.request.columns``), each with its declared type and rules (nullable, min/max,
allowed values, pattern), strict (no coercion, no unknown field, a time zone on every
timestamp), plus optional inline ``features``. A batch is ``{"<batch_key>": [...]}``.

A project may instead bring its own public model (``serving.request.model``, a pydantic
class in the project folder) and a mapping (``serving.request.mapping``) from its fields to the
request columns and ids, computed on arrays like every feature function
(``fn(columns: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]``), so one call maps one
request or a whole file. ``serving.request.inverse`` (request-table rows -> public bodies) lets
Noria build requests from data: the OpenAPI example and ``noria replay``.

The same :class:`RequestSchema` serves the online lookup (request rows), the prediction log's
writer (event key and event time of each logged request, off the request path), batch
scoring and the OpenAPI document.
"""

from __future__ import annotations

import keyword
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, create_model

from noria.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from noria.config import Project
    from noria.features.definitions import Definitions
    from noria.features.transform import RequestColumns

log = logging.getLogger("noria.serving")

FEATURE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
MAX_INLINE_FEATURES = 1000
FeatureValue = Annotated[float, Field(allow_inf_nan=False)] | Annotated[str, Field(max_length=200)] | None
INLINE = "features"
_RESERVED = frozenset(dir(BaseModel)) | {INLINE}


INLINE_DESCRIPTION = "Feature values by name; when every model feature is given, no lookup is made."


def inline_features_field() -> Any:
    return (
        dict[Annotated[str, Field(pattern=FEATURE_NAME)], FeatureValue] | None,
        Field(default=None, max_length=MAX_INLINE_FEATURES, description=INLINE_DESCRIPTION),
    )


class RequestSchema:
    """The request model of one project and the ways from a request to request columns."""

    def __init__(
        self,
        model: type[BaseModel],
        *,
        request_columns: Sequence[str],
        ids: Sequence[str],
        column_types: Mapping[str, tuple[str, bool]],
        batch_key: str = "requests",
        mapping: Callable[..., Any] | None = None,
        inverse: Callable[..., Any] | None = None,
        timestamp: Callable[..., Any] | None = None,
        example: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        self.model = model
        self.request_columns = list(request_columns)
        self.ids = list(ids)
        self.column_types = dict(column_types)  # column -> (type, nullable), for ids and request columns
        self.batch_key = batch_key
        self.mapping = mapping
        self.inverse = inverse
        self.timestamp = timestamp
        self._example = dict(example) if example else None
        self.description = description
        # attribute name -> field name on the wire (aliases where a column is not a Python identifier)
        self.fields = [
            (name, info.alias or name) for name, info in model.model_fields.items() if (info.alias or name) != INLINE
        ]
        self.field_names = [wire for _, wire in self.fields]

    # --- parsing ---------------------------------------------------------------------------

    def adapter(self, max_batch: int) -> TypeAdapter[Any]:
        """Validates a /predict body: one request, or ``{batch_key: [...]}``."""
        key = self.batch_key
        many: Any = list.__class_getitem__(self.model)  # list[<the request model>], built at run time
        batch = create_model(  # type: ignore[call-overload]
            "PredictBatch",
            __config__=ConfigDict(
                extra="forbid", strict=True, json_schema_extra={"examples": [{key: [self.example()]}]}
            ),
            __doc__=f"Up to {max_batch} requests scored in one call.",
            **{key: (many, Field(min_length=1, max_length=max_batch))},
        )

        def kind(value: Any) -> str:
            return "batch" if isinstance(value, dict) and key in value else "one"

        one: Any = Annotated.__class_getitem__((self.model, Tag("one")))  # type: ignore[attr-defined]
        many_: Any = Annotated.__class_getitem__((batch, Tag("batch")))  # type: ignore[attr-defined]
        union: Any = Annotated.__class_getitem__((one | many_, Discriminator(kind)))  # type: ignore[attr-defined]
        return TypeAdapter(union)

    def split(self, parsed: Any) -> list[Any]:
        """The requests of a parsed body (one, or the batch's)."""
        if isinstance(parsed, self.model):
            return [parsed]
        return list(getattr(parsed, self.batch_key))

    # --- request columns ------------------------------------------------------------------------

    def field_columns(self, requests: Sequence[Any]) -> dict[str, np.ndarray]:
        """The requests' fields as arrays (numbers as numbers, the rest as Python objects)."""
        out: dict[str, np.ndarray] = {}
        for attr, wire in self.fields:
            values = [getattr(r, attr) for r in requests]
            out[wire] = _array(values)
        return out

    def columns(self, requests: Sequence[Any]) -> dict[str, np.ndarray]:
        """Request columns and ids of the requests, as arrays (the mapping applied, if any)."""
        fields = self.field_columns(requests)
        if self.mapping is None:
            return fields
        return self.map_columns(fields, len(requests))

    def map_columns(self, fields: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """The project's mapping from public fields to request columns and ids, checked."""
        if self.mapping is None:
            return dict(fields)
        result = self.mapping(dict(fields))
        if not isinstance(result, Mapping):
            raise ConfigError(
                f"serving.request.mapping returned {type(result).__name__}",
                fix="return a dict of arrays: one per request column and id",
            )
        wanted = list(dict.fromkeys([*self.ids, *self.request_columns]))
        missing = [c for c in wanted if c not in result]
        if missing:
            raise ConfigError(
                f"serving.request.mapping returned no {', '.join(missing)}",
                fix=f"return every request column and id: {', '.join(wanted)}",
            )
        out = {name: np.asarray(result[name]) for name in wanted}
        for name, values in out.items():
            if values.shape != (n,):
                raise ConfigError(
                    f"serving.request.mapping returned {values.shape} values of {name} for {n} requests",
                    fix="return one value per request",
                )
        return out

    def rows(self, requests: Sequence[Any]) -> RequestColumns:
        """Request columns (and ids) of the requests, as the online lookup takes them: as columns,
        which also read as one mapping per request."""
        from noria.features.transform import RequestColumns

        if self.mapping is None:
            fields = {wire: [getattr(r, attr) for r in requests] for attr, wire in self.fields}
            return RequestColumns(fields, len(requests))
        columns = self.columns(requests)
        # datetime64 -> datetime (tolist of nanoseconds gives integers)
        lists = {
            name: (values.astype("datetime64[us]") if values.dtype.kind == "M" else values).tolist()
            for name, values in columns.items()
        }
        return RequestColumns(lists, len(requests))

    def event_keys(
        self, defs: Definitions, columns: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, list[Any]]]:
        """(event times as datetime64[ns] UTC, id values per id column) of request columns."""
        import pandas as pd

        from noria.features.transform import prediction_times, request_arrays

        frame = pd.DataFrame(
            {
                name: pd.Series(values) if values.dtype.kind == "M" else pd.Series(values, dtype=object)
                for name, values in columns.items()
            }
        )
        times = prediction_times(defs, request_arrays(defs, frame))
        keys = {name: _python_list(columns[name]) for name in self.ids}
        return times, keys

    def frame_columns(self, frame: pd.DataFrame) -> dict[str, np.ndarray] | None:
        """Request columns of a file's rows: as they are (the table's shape), or through the mapping
        (the public model's shape); None when the frame has neither shape."""
        wanted = dict.fromkeys([*self.ids, *self.request_columns])
        if all(c in frame.columns for c in wanted):
            return {c: frame[c].to_numpy(dtype=object) for c in wanted}
        if self.mapping is not None and all(f in frame.columns for f in self._required_fields()):
            fields = {}
            for name in self.field_names:
                values = frame[name].tolist() if name in frame.columns else [None] * len(frame)
                fields[name] = _array([_python(v) for v in values])
            return self.map_columns(fields, len(frame))
        return None

    def _required_fields(self) -> list[str]:
        return [wire for attr, wire in self.fields if self.model.model_fields[attr].is_required()]

    # --- examples ---------------------------------------------------------------------------

    def example(self) -> dict[str, Any]:
        """A valid request body: the configured example, one built from data, or from the types."""
        if self._example is not None:
            return dict(self._example)
        return _synthetic(self.model)

    def set_example(self, body: Mapping[str, Any]) -> None:
        self._example = dict(body)

    def bodies(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Request bodies for rows of the request table (the inverse mapping for a public model)."""
        if self.mapping is None:
            out: list[dict[str, Any]] = []
            for record in frame[self.field_names].to_dict("records"):
                out.append({str(k): _json_value(v) for k, v in record.items()})
            return out
        if self.inverse is None:
            raise ConfigError(
                "the project serves its own request model but declares no serving.request.inverse",
                fix="add serving.request.inverse: module:function (request-table rows -> request bodies)",
            )
        bodies = self.inverse(frame)
        return [dict(b) for b in bodies]


def _array(values: list[Any]) -> np.ndarray:
    if values and all(type(v) is int for v in values):
        return np.asarray(values, dtype=np.int64)
    if values and all(type(v) in (int, float) for v in values):
        return np.asarray(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _python_list(values: np.ndarray) -> list[Any]:
    """``[_python(v) for v in values]``, in one ``tolist`` for arrays of numbers, booleans or times."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return list(values.tolist())  # the same Python values as .item() one by one
    return [_python(v) for v in values]


def _python(value: Any) -> Any:
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes, datetime)):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


def _json_value(value: Any) -> Any:
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).isoformat()
    return _python(value)


def _synthetic(model: type[BaseModel]) -> dict[str, Any]:
    """A body that satisfies the model's types and bounds, for projects without data yet."""
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        wire = info.alias or name
        if wire == INLINE or not info.is_required():
            continue
        schema = model.model_json_schema()["properties"].get(wire, {})
        body[wire] = _value_for(schema)
    return body


def _value_for(schema: Mapping[str, Any]) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _value_for(option)
    kind = schema.get("type")
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", schema.get("exclusiveMinimum", 0.0) + 1.0))
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return "2020-01-01T00:00:00Z"
    return "x"


# --- building the schema of a project -------------------------------------------------------------

_PY_TYPES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "timestamp": AwareDatetime}


def generated_model(defs: Definitions, name: str = "PredictRequest") -> type[BaseModel]:
    """A strict pydantic model of the event key and the request columns, with inline ``features``."""
    project = defs.project
    request = defs.request
    table = project.config.data.tables[request.table]
    from noria.features.training_set import request_ids

    names = list(dict.fromkeys([*request_ids(defs), *request.columns]))
    fields: dict[str, Any] = {}
    for column in names:
        if column == INLINE:
            raise ConfigError(
                f"request column {column!r} clashes with the request's inline features field",
                fix="rename the column (source_column keeps the file's name)",
            )
        spec = table.columns[column]
        kind: Any = _PY_TYPES[spec.type]
        if spec.type == "str" and spec.allowed:
            kind = Literal[tuple(spec.allowed)]
        extra: dict[str, Any] = {"description": spec.description or f"{column} ({spec.type})"}
        if spec.min is not None:
            extra["ge"] = int(spec.min) if spec.type == "int" else spec.min
        if spec.max is not None:
            extra["le"] = int(spec.max) if spec.type == "int" else spec.max
        if spec.pattern is not None and spec.type == "str" and not spec.allowed:
            extra["pattern"] = spec.pattern
        if spec.type == "float":
            extra["allow_inf_nan"] = False
        attr = column if column.isidentifier() and not keyword.iskeyword(column) and column not in _RESERVED else None
        if attr is None:
            attr = f"field_{len(fields)}"
            extra["alias"] = column
        if spec.nullable:
            fields[attr] = (kind | None, Field(default=None, **extra))
        else:
            fields[attr] = (kind, Field(**extra))
    public = create_model(
        name + "Fields",
        __config__=ConfigDict(extra="forbid", strict=True, populate_by_name=True),
        __doc__=f"One {request.table} event to predict: its key and what is known at prediction time.",
        **fields,
    )
    return _with_inline_features(public, name)


def request_schema(project: Project, defs: Definitions | None = None) -> RequestSchema:
    """The request schema of a project (generated, or the project's own model and mapping)."""
    from noria.features.definitions import load_definitions, resolve_function
    from noria.features.training_set import request_ids

    defs = defs or load_definitions(project)
    cfg = project.config.serving.request
    table = project.config.data.tables[defs.request.table]
    ids = request_ids(defs)
    types = {
        c: (table.columns[c].type, table.columns[c].nullable) for c in dict.fromkeys([*ids, *defs.request.columns])
    }
    if cfg.model is None:
        model = generated_model(defs)
        mapping = inverse = None
    else:
        found = resolve_function(project.root, cfg.model, "serving.request.model")
        if not (isinstance(found, type) and issubclass(found, BaseModel)):
            raise ConfigError(
                f"serving.request.model {cfg.model} is not a pydantic model class",
                fix="name a class deriving from pydantic.BaseModel (module:Class)",
            )
        model = _with_inline_features(found)
        assert cfg.mapping is not None  # checked by the config
        mapping = resolve_function(project.root, cfg.mapping, "serving.request.mapping")
        inverse = resolve_function(project.root, cfg.inverse, "serving.request.inverse") if cfg.inverse else None
    return RequestSchema(
        model,
        request_columns=defs.request.columns,
        ids=ids,
        column_types=types,
        batch_key=cfg.batch_key,
        mapping=mapping,
        inverse=inverse,
        timestamp=defs.functions.get(defs.request.timestamp),
        example=cfg.example,
        description=project.config.description,
    )


def _with_inline_features(model: type[BaseModel], name: str | None = None) -> type[BaseModel]:
    """The project's model, with the inline ``features`` field added unless it declares one (a
    subclass: :func:`noria.serving.predlog_keys.keying_model` reads requests with the model it extends)."""
    if INLINE in model.model_fields:
        return model
    return create_model(
        name or model.__name__ + "Request",
        __base__=model,
        __doc__=model.__doc__,
        **{INLINE: inline_features_field()},
    )


def example_from_data(project: Project, schema: RequestSchema) -> dict[str, Any] | None:
    """A request body from the newest snapshot's request table (None without data)."""
    from noria.data.snapshots import open_snapshot
    from noria.errors import NoriaError
    from noria.features.definitions import load_definitions

    try:
        defs = load_definitions(project)
        snapshot = open_snapshot(project)
        months = snapshot.record.months
        table = defs.request.table
        columns = list(dict.fromkeys([*schema.ids, *schema.request_columns]))
        frame = snapshot.read(table, columns=columns, months=months[-1:] if months else None)
        if frame.empty:
            return None
        bodies = schema.bodies(frame.tail(1))
    except (NoriaError, OSError, KeyError, ValueError) as exc:
        log.info("no example request from data: %s", exc)
        return None
    body = bodies[0] if bodies else None
    if body is None:
        return None
    try:
        schema.model.model_validate_json(__import__("json").dumps(body))
    except Exception as exc:  # an example that does not validate would mislead every reader
        log.warning("the example request built from data does not validate: %s", exc)
        return None
    return body


__all__ = ["RequestSchema", "example_from_data", "generated_model", "request_schema"]
