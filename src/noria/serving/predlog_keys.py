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
    reading back requests the service already validated: Noria's inline ``features`` field taken
    as parsed, not checked value by value again, which was a third of the time on a body with
    every feature inline. A field of that name the project's model declares itself is validated
    as the project wrote it."""
    from pydantic import create_model

    from noria.serving.requests import INLINE, INLINE_DESCRIPTION

    info = schema.model.model_fields.get(INLINE)
    if info is None or info.description != INLINE_DESCRIPTION:
        return schema.model
    return create_model(  # type: ignore[call-overload]
        schema.model.__name__ + "Keyed", __base__=schema.model, **{INLINE: (Any, None)}
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
        self._strip = model is not self.schema.model  # Noria's own inline features field: not read here
        self._inline, self._needle = INLINE, f'"{INLINE}"'.encode()
        self._single = TypeAdapter(model)
        self._many = TypeAdapter(list[model])  # type: ignore[valid-type]
        self.unkeyed = 0

    def arrow_kind(self, name: str) -> str | None:
        kind = self._types.get(name, ("", False))[0]
        return {"int": "int64", "float": "float64", "str": "string", "bool": "bool", "timestamp": "timestamp"}.get(kind)

    def compute(self, inputs: Sequence[Any]) -> tuple[list[float | None], list[dict[str, Any] | None]]:
        """(event time in Unix seconds, {id: value}) per logged request; None where it cannot be read."""
        requests: list[Any] = []
        where: list[int] = []
        if inputs and all(isinstance(text, bytes) for text in inputs):
            # The usual case, the bodies of single requests: one JSON array validated in one call,
            # about a third of the cost of validating them one by one (pydantic's per-call overhead).
            try:
                requests = self._many.validate_json(b"[" + b",".join(map(self._lean, inputs)) + b"]")
                where = list(range(len(inputs)))
            except Exception:  # a batch body or a refused one among them: one at a time, below
                requests = []
        for i, text in enumerate(inputs if not where else ()):
            try:
                requests.append(self._single.validate_json(text if isinstance(text, bytes | str) else str(text)))
                where.append(i)
            except Exception:  # a batch body logged whole, or a body that was refused: no single request
                continue
        times: list[float | None] = [None] * len(inputs)
        keys: list[dict[str, Any] | None] = [None] * len(inputs)
        if not requests:
            return times, keys
        try:
            found = self._compute(requests)
        except Exception:  # one bad request must not cost the others their key: one at a time
            found = []
            for request in requests:
                try:
                    found.extend(self._compute([request]))
                except Exception:
                    log.exception("cannot compute the event key of a logged request")
                    self.unkeyed += 1
                    found.append((None, None))
        for i, (when, key) in zip(where, found, strict=True):
            times[i], keys[i] = when, key
        return times, keys

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

    def _compute(self, requests: list[Any]) -> list[tuple[float | None, dict[str, Any] | None]]:
        columns = self.schema.columns(requests)
        stamps, values = self.schema.event_keys(self.defs, columns)
        seconds = stamps.astype("datetime64[us]").astype("int64") / 1_000_000
        ids = self.ids
        plain = [_plain_column(values[name]) for name in ids]
        rows = list(zip(*plain, strict=True)) if ids else [()] * len(requests)
        return [(when, dict(zip(ids, key, strict=True))) for when, key in zip(seconds.tolist(), rows, strict=True)]


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
