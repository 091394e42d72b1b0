"""The event key and event time of logged requests, computed in the prediction log's writer process.

The request path does not pay for them: the writer process (:mod:`noria.serving.predlog_writer`)
reads each logged request back with the project's own request mapping and timestamp function.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

log = logging.getLogger("noria.serving")


def keying_model(schema: Any) -> Any:
    """The request model of ``schema`` (a :class:`noria.serving.requests.RequestSchema`) for
    reading back requests the service already validated, without Noria's inline ``features``.

    The event key never reads them, and parsing them was most of the keying time on a body that
    brings every feature inline (2,000 flights bodies: 8.5 us a row as parsed values, 5.8 us with
    them cut out by orjson first, 2.5 us skipped by the parser). So the model is the one Noria
    extended with the field (the project's own class, its validators included), told to ignore
    fields it does not declare. A ``features`` field the project's model declares itself is
    validated as the project wrote it; a model that keeps unknown fields (``extra="allow"``) gets
    the field as parsed, unchecked.
    """
    from pydantic import BaseModel, ConfigDict, create_model

    from noria.serving.requests import INLINE, INLINE_DESCRIPTION

    model = schema.model
    info = model.model_fields.get(INLINE)
    if info is None or info.description != INLINE_DESCRIPTION:
        return model
    base = model.__bases__[0]
    if (
        issubclass(base, BaseModel)
        and base is not BaseModel
        and set(base.model_fields) == set(model.model_fields) - {INLINE}
        and base.model_config.get("extra") != "allow"
    ):
        name = base.__name__ + "Keyed"
        namespace = {"model_config": ConfigDict(extra="ignore"), "__module__": __name__, "__qualname__": name}
        return type(name, (base,), namespace)
    return create_model(  # type: ignore[call-overload]
        model.__name__ + "Keyed", __base__=model, **{INLINE: (Any, None)}
    )


class EventKeyer:
    """The event key and event time of logged requests: the project's request mapping and timestamp function.

    Built in the writer process from the project folder. A request that cannot be keyed (it
    cannot happen for a request the service validated, short of a bug in the project's own
    functions) is logged without a key, and counted in the log of the writer.
    """

    def __init__(self, project: Any) -> None:
        from pydantic import TypeAdapter

        from noria.features.definitions import load_definitions
        from noria.serving.requests import INLINE, request_schema

        self.defs = load_definitions(project)
        self.schema = request_schema(project, self.defs)
        self.ids = list(self.schema.ids)
        self._types = self.schema.column_types
        model = keying_model(self.schema)
        # Noria's inline features in a model that keeps unknown fields: cut out before validating
        self._strip = model is not self.schema.model and INLINE in model.model_fields
        self._inline, self._needle = INLINE, f'"{INLINE}"'.encode()
        self._single = TypeAdapter(model)
        self._many = TypeAdapter(list[model])  # type: ignore[valid-type]
        self.unkeyed = 0

    def arrow_kind(self, name: str) -> str | None:
        kind = self._types.get(name, ("", False))[0]
        return {"int": "int64", "float": "float64", "str": "string", "bool": "bool", "timestamp": "timestamp"}.get(kind)

    def compute(self, inputs: Sequence[Any]) -> tuple[list[float | None], list[dict[str, Any] | None]]:
        """(event time in Unix seconds, {id: value}) per logged request; None where it cannot be read."""
        times, columns, keyed = self.compute_columns(inputs)
        keys = [{name: columns[name][i] for name in self.ids} if keyed[i] else None for i in range(len(inputs))]
        return times, keys

    def compute_columns(self, inputs: Sequence[Any]) -> tuple[list[float | None], dict[str, list[Any]], list[bool]]:
        """Event times (Unix seconds), one list of values per id, and whether each request was keyed
        (its times and ids are None otherwise): columns, as the log stores them, not a dict per row."""
        n = len(inputs)
        requests: list[Any] = []
        where: list[int] = []
        if inputs and all(isinstance(text, bytes) for text in inputs):
            # The usual case, the bodies of single requests: one JSON array validated in one call,
            # about a third of the cost of validating them one by one (pydantic's per-call overhead).
            try:
                requests = self._many.validate_json(b"[" + b",".join(map(self._lean, inputs)) + b"]")
                where = list(range(n))
            except Exception:  # a batch body or a refused one among them: one at a time, below
                requests = []
        for i, text in enumerate(inputs if not where else ()):
            try:
                requests.append(self._single.validate_json(text if isinstance(text, bytes | str) else str(text)))
                where.append(i)
            except Exception:  # a batch body logged whole, or a body that was refused: no single request
                continue
        times: list[float | None] = [None] * n
        columns: dict[str, list[Any]] = {name: [None] * n for name in self.ids}
        keyed = [False] * n
        if not requests:
            return times, columns, keyed
        try:
            seconds, values = self._compute(requests)
        except Exception:  # one bad request must not cost the others their key: one at a time
            found: list[tuple[list[int], tuple[list[float | None], dict[str, list[Any]]]]] = []
            for i, request in zip(where, requests, strict=True):
                try:
                    found.append(([i], self._compute([request])))
                except Exception:
                    log.exception("cannot compute the event key of a logged request")
                    self.unkeyed += 1
        else:
            if len(where) == n:  # every request keyed in one go: the columns as they are
                return seconds, values, [True] * n
            found = [(where, (seconds, values))]
        for rows, (seconds, values) in found:
            for j, i in enumerate(rows):
                times[i], keyed[i] = seconds[j], True
                for name in self.ids:
                    columns[name][i] = values[name][j]
        return times, columns, keyed

    def _lean(self, body: bytes) -> bytes:
        """A body without Noria's inline ``features``, which the event key does not read: parsing
        them was most of the writer's time on bodies that bring every feature inline (a 929-byte
        flights body: 19.5 us a row validated whole, 5.9 us without them). A body orjson cannot
        read goes as it is."""
        if not self._strip or self._needle not in body:
            return body
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(doc, dict):
            return body
        doc.pop(self._inline, None)
        return orjson.dumps(doc)

    def _compute(self, requests: list[Any]) -> tuple[list[float | None], dict[str, list[Any]]]:
        columns = self.schema.columns(requests)
        stamps, values = self.schema.event_keys(self.defs, columns)
        seconds = stamps.astype("datetime64[us]").astype("int64") / 1_000_000
        return seconds.tolist(), {name: _plain_column(values[name]) for name in self.ids}


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _plain_column(values: Sequence[Any]) -> list[Any]:
    """``_plain_key`` of every value; a column of plain values (the usual: text, numbers) as it is."""
    if all(type(v) in _PLAIN for v in values):
        return list(values)
    return [_plain_key(v) for v in values]


def _plain_key(value: Any) -> Any:
    """An id value as Arrow takes it: timestamps as Unix seconds, numpy scalars as Python values."""
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        return float(value.astype("datetime64[us]").astype("int64")) / 1_000_000
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo is not None else value.replace(tzinfo=UTC).timestamp()
    item = getattr(value, "item", None)
    return item() if item is not None else value


__all__ = ["EventKeyer"]
