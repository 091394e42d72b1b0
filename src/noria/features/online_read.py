"""One online-store read per lookup, across all of a service's feature views.

Feast's ``OnlineStore.online_read`` reads one feature view per call: a service over five views
paid five SQLite statements (or five Redis round trips) per request, each with its own entity
key protos, serialisation and result parsing, and that was most of a request's time. A
:class:`Reader` reads every view's keys at once:

- **SQLite** (:class:`SqliteReader`): the one place Noria reads Feast's storage directly.
  Feast's SQLite online store keeps a table per feature view, named by Feast's
  ``compute_table_id`` (``<project>_<view>``), with a row per (entity key, feature):
  ``entity_key`` (the key as Feast's ``serialize_entity_key`` writes it, with the repo's
  ``entity_key_serialization_version``), ``feature_name``, ``value`` (a serialised
  ``ValueProto``) and ``event_ts`` (what Feast's ``timestamp`` adapter stored). Its
  ``online_read`` is one ``SELECT ... WHERE entity_key IN (...)`` per view; here the views'
  selects are joined by ``UNION ALL`` into one statement, on a connection of our own to the
  same file. Keys are serialised by Feast's own function, table names come from Feast's own
  helper, and the stamp is converted by Feast's own ``convert_timestamp``, so the values are
  exactly those of ``online_read``.
- **Redis** (:class:`RedisReader`): through Feast's Redis store itself. Its ``online_read``
  already sends one pipeline, of one view; the store's own helpers build the keys
  (``_redis_key``: the serialised entity key and the project), the hash fields (mmh3 of
  ``<view>:<feature>``, and ``_ts:<view>``) and send one pipeline of HMGETs for any list of
  (key, fields) (``_read_hash_fields``, which is also what its ``get_online_features`` uses to
  batch several views). Noria hands it every view's commands at once and decodes the replies
  as ``online_read`` does.
- **Any other online store**: Feast's ``online_read``, once per view (:class:`FeastReader`).

The layout read directly is pinned against Feast itself by
``tests/integration/test_online_layout.py``: values materialized by Feast, including a missing
key and a value past its TTL, must read back exactly as Feast's ``online_read`` and
``get_online_features`` give them, on SQLite and on a real Redis server. If Feast changes the
layout, that test fails; if a SQLite table lacks a column read here, the reader falls back to
Feast's ``online_read`` at open (and says so in the log).
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger("noria.features")

Key = tuple[Any, ...]  # one entity key's values, in the view's join-key order
Entry = tuple[int, list[Any]]  # a key's stamp (ns since the epoch) and its values, in the view's feature order
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SQLITE_COLUMNS = ("entity_key", "feature_name", "value", "event_ts")  # what SqliteReader reads of Feast's tables
MEMO_KEYS = 200_000  # entries a memo below holds (keys per view, values, stamps) before it starts over


@dataclass(frozen=True)
class View:
    """A feature view as a lookup reads it: Feast's view, its join keys and features, its TTL."""

    name: str
    table: Any  # feast.FeatureView from the registry
    keys: list[str]
    key_is_int: list[bool]
    features: list[str]
    is_str: list[bool]
    ttl_ns: int | None


Wanted = Sequence[tuple[View, Sequence[Key]]]  # per view, the distinct complete keys to read
Found = list[dict[Key, Entry | None]]  # per view (same order), each key's entry; None: not in the store


class Reader(Protocol):
    """Reads every view's keys at once. A reader of a store that can say cheaply whether it changed
    also has ``version() -> int``: a number that changes whenever the store's data does (SQLite's
    ``data_version``), which lets a read cache keep reads exactly as long as they stay true."""

    kind: str  # how the store is read (shown in logs and tests): "sqlite", "redis" or "feast"

    def read(self, wanted: Wanted) -> Found:
        """Every wanted key of every view, in one read where the store allows it."""
        ...


def open_reader(config: Any, online: Any, views: Sequence[View]) -> Reader:
    """The fastest faithful reader of ``online`` (a Feast online store) for ``views``."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    if type(online) is SqliteOnlineStore:  # exactly Feast's: a subclass may store differently
        reader = SqliteReader.open(config, views)
        if reader is not None:
            return reader
    elif type(online) is _redis_store():
        return RedisReader(config, online, views)
    return FeastReader(config, online)


def _redis_store() -> type | None:
    try:
        from feast.infra.online_stores.redis import RedisOnlineStore
    except ImportError:  # Feast without its redis extra (then no store is a Redis one)
        return None
    return RedisOnlineStore


def entity_key_proto(view: View, key: Key) -> Any:
    """Feast's EntityKey proto of one key (int64 or string values, as the view's entities declare)."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(
        join_keys=view.keys,
        entity_values=[
            Value(int64_val=value) if is_int else Value(string_val=value)
            for value, is_int in zip(key, view.key_is_int, strict=True)
        ],
    )


class KeyMemo:
    """The store's bytes for entity keys, computed once per key by Feast's own function.

    Building the EntityKey proto and serialising it cost more than reading the row; a service
    sees the same few thousand entities again and again, so each is encoded once (per view; the
    memo starts over past ``limit`` keys).
    """

    def __init__(self, encode: Callable[[Any], bytes], limit: int = MEMO_KEYS) -> None:
        self.encode = encode
        self.limit = limit
        self._memo: dict[str, dict[Key, bytes]] = {}  # per view

    def get(self, view: View, key: Key) -> bytes:
        memo = self._memo.get(view.name)
        if memo is None:
            memo = self._memo[view.name] = {}
        found = memo.get(key)
        if found is None:
            if len(memo) >= self.limit:
                memo.clear()
            found = memo[key] = self.encode(entity_key_proto(view, key))
        return found


class ValueMemo:
    """Python values of serialised ValueProtos, memoised by their bytes.

    A service reads the same values again and again (an airport's weather, a plane's seats):
    one dict look-up instead of parsing a message per value. Only scalars are kept (immutable,
    and the only types Noria's features have); the memo starts over past ``limit`` values.
    """

    def __init__(self, limit: int = MEMO_KEYS) -> None:
        from feast.protos.feast.types.Value_pb2 import Value

        self.limit = limit
        self._parse = Value.FromString
        self.known: dict[bytes, Any] = {}  # serialised value -> its Python value

    def get(self, blob: bytes | None) -> Any:
        if not blob:  # unset (Redis: no such field; an empty message): no value
            return None
        found = self.known.get(blob, _UNSEEN)
        if found is not _UNSEEN:
            return found
        memo = self.known
        found = python_value(self._parse(blob))
        if found is None or type(found) in _SCALARS:
            if len(memo) >= self.limit:
                memo.clear()
            memo[blob] = found
        return found


_SCALARS = frozenset({int, float, str, bool, bytes})
_UNSEEN = object()


def python_value(value: Any) -> Any:
    """A Feast ValueProto's Python value (None when unset or null)."""
    if value is None:
        return None
    field = value.WhichOneof("val")
    if field is None or field == "null_val":
        return None
    return getattr(value, field)


def stamp_ns(stamp: datetime) -> int:
    """Nanoseconds since the epoch of a datetime (naive = UTC), exact to the microsecond."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    delta = stamp - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


class FeastReader:
    """Feast's ``online_read``, one call per view: the reader of any online store."""

    kind = "feast"

    def __init__(self, config: Any, online: Any) -> None:
        self.config = config
        self.online = online

    def read(self, wanted: Wanted) -> Found:
        out: Found = []
        for view, keys in wanted:
            found: dict[Key, Entry | None] = {}
            if keys:
                read = self.online.online_read(
                    config=self.config,
                    table=view.table,
                    entity_keys=[entity_key_proto(view, key) for key in keys],
                    requested_features=list(view.features),  # a copy: Redis appends to the list it gets
                )
                for key, (stamp, data) in zip(keys, read, strict=True):
                    entry = None
                    if data is not None and stamp is not None:
                        entry = (stamp_ns(stamp), [python_value(data.get(feature)) for feature in view.features])
                    found[key] = entry
            out.append(found)
        return out


def _padded(n: int) -> int:
    """``n`` rounded up to a power of two: batches of any size share a few statement shapes (and
    sqlite3's cache of prepared statements), the extra places repeating the last key."""
    size = 1
    while size < n:
        size *= 2
    return size


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class SqliteReader:
    """Every view's rows in Feast's SQLite online store, read by one statement (see the module doc)."""

    kind = "sqlite"

    def __init__(self, path: str, tables: dict[str, str], version: int, views: Sequence[View] = ()) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key

        self.path = path
        self.tables = tables  # view name -> Feast's table name
        self._feature_positions: dict[str, dict[str, int]] = {}  # view name -> feature -> position in the view
        for view in views:
            self._positions(view)
        self.keys = KeyMemo(lambda proto: serialize_entity_key(proto, entity_key_serialization_version=version))
        # No detect_types: event_ts arrives as stored and is converted once per key (below), not once per row.
        self._conn = sqlite3.connect(path, check_same_thread=False, cached_statements=512)
        self._lock = threading.Lock()  # one statement at a time on the connection
        self.values = ValueMemo()
        self._stamps: dict[Any, int] = {}
        self._sql: dict[tuple[tuple[int, str, int], ...], str] = {}

    @classmethod
    def open(cls, config: Any, views: Sequence[View]) -> SqliteReader | None:
        """A reader of Feast's tables for ``views``, or None (logged) when a table does not look as read here."""
        from feast.infra.online_stores.helpers import compute_table_id
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        path = SqliteOnlineStore._get_db_path(config)
        versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
        tables = {view.name: compute_table_id(config.project, view.table, versioning) for view in views}
        reader = cls(path, tables, config.entity_key_serialization_version, views)
        for view, table in tables.items():
            columns = {row[1] for row in reader._conn.execute(f"PRAGMA table_info({_quote(table)})")}
            if not set(SQLITE_COLUMNS) <= columns:
                log.warning(
                    "online store table %s of view %s lacks the columns Noria reads (%s): reading it "
                    "through Feast's online_read, one view at a time",
                    table,
                    view,
                    ", ".join(sorted(set(SQLITE_COLUMNS) - columns)),
                )
                reader.close()
                return None
        return reader

    def close(self) -> None:
        self._conn.close()

    def version(self) -> int:
        """SQLite's ``data_version`` on this connection: it changes whenever another connection (Feast
        materializing, in this process or another) commits to the file, and only then. Reads made
        while it keeps one value are what reading the store again would return."""
        with self._lock:
            found: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
        return found

    def _statement(self, shape: tuple[tuple[int, str, int], ...]) -> str:
        """The statement for (position in the read, view, number of keys) of each view read."""
        sql = self._sql.get(shape)
        if sql is None:
            parts = []
            for index, view, size in shape:
                table = _quote(self.tables[view])
                parts.append(
                    f"SELECT {index}, entity_key, feature_name, value, event_ts FROM {table} "
                    f"WHERE entity_key IN ({','.join('?' * size)})"
                )
            sql = self._sql[shape] = " UNION ALL ".join(parts)
        return sql

    def _positions(self, view: View) -> dict[str, int]:
        found = self._feature_positions.get(view.name)
        if found is None:
            found = self._feature_positions[view.name] = {name: i for i, name in enumerate(view.features)}
        return found

    def _stamp(self, raw: Any) -> int:
        """Feast's reading of an ``event_ts`` (its sqlite3 converter for ``timestamp``, then UTC), memoised."""
        found = self._stamps.get(raw)
        if found is None:
            from feast.infra.online_stores.sqlite import convert_timestamp

            text = raw if isinstance(raw, bytes) else str(raw).encode()  # as sqlite3 hands it to a converter
            if len(self._stamps) >= MEMO_KEYS:
                self._stamps.clear()
            found = self._stamps[raw] = stamp_ns(convert_timestamp(text))
        return found

    def read(self, wanted: Wanted) -> Found:
        shape: list[tuple[int, str, int]] = []
        params: list[bytes] = []
        blobs_of: list[dict[bytes, Key]] = []
        for index, (view, keys) in enumerate(wanted):
            blobs = {self.keys.get(view, key): key for key in keys}
            blobs_of.append(blobs)
            if not blobs:
                continue
            listed = list(blobs)
            size = _padded(len(listed))
            params.extend(listed)
            params.extend(listed[-1:] * (size - len(listed)))
            shape.append((index, view.name, size))
        # Per view: serialised key -> [raw event_ts, values in the view's order]
        rows_of: list[dict[bytes, list[Any]]] = [{} for _ in wanted]
        if shape:
            positions = [self._positions(view) for view, _ in wanted]
            widths = [len(view.features) for view, _ in wanted]
            with self._lock:
                rows = self._conn.execute(self._statement(tuple(shape)), params).fetchall()
            decode, known = self.values.get, self.values.known  # known: the memo itself, looked up inline
            for index, blob, feature, data, raw_ts in rows:
                slot = rows_of[index].get(blob)
                if slot is None:
                    slot = rows_of[index][blob] = [raw_ts, [None] * widths[index]]
                else:
                    slot[0] = raw_ts  # as online_read: the stamp of the key's last row
                position = positions[index].get(feature)
                if position is not None:  # a row of a feature the view no longer has is not one of its values
                    value = known.get(data, _UNSEEN)
                    slot[1][position] = decode(data) if value is _UNSEEN else value
        out: Found = []
        for blobs, found_rows in zip(blobs_of, rows_of, strict=True):
            found: dict[Key, Entry | None] = {}
            for blob, key in blobs.items():
                slot = found_rows.get(blob)
                found[key] = None if slot is None else (self._stamp(slot[0]), slot[1])
            out.append(found)
        return out


class RedisReader:
    """Every view's keys in Feast's Redis online store, in one pipeline sent by Feast's own store."""

    kind = "redis"

    def __init__(self, config: Any, online: Any, views: Sequence[View]) -> None:
        from feast.infra.online_stores.helpers import _redis_key
        from feast.infra.online_stores.redis import _versioned_fv_name

        self.config = config
        self.online = online
        project, version = config.project, config.entity_key_serialization_version
        self.keys = KeyMemo(lambda proto: _redis_key(project, proto, entity_key_serialization_version=version))
        # Per view: the hash fields of its features, in the view's order, then its stamp's ("_ts:<view>").
        self.fields: dict[str, list[str | bytes]] = {}
        for view in views:
            _, fields = online._generate_hset_keys_for_features(
                view.table, list(view.features), fv_name_override=_versioned_fv_name(view.table, config)
            )
            self.fields[view.name] = fields
        self.values = ValueMemo()
        self._stamps: dict[bytes, int] = {}

    def read(self, wanted: Wanted) -> Found:
        commands: list[tuple[bytes, list[str | bytes]]] = []
        for view, keys in wanted:
            fields = self.fields[view.name]
            commands.extend((self.keys.get(view, key), fields) for key in keys)
        replies = self.online._read_hash_fields(self.config, commands) if commands else []
        out: Found = []
        at = 0
        for _, keys in wanted:
            found: dict[Key, Entry | None] = {}
            for key in keys:
                found[key] = self._entry(replies[at])
                at += 1
            out.append(found)
        return out

    def _entry(self, reply: Sequence[bytes | None]) -> Entry | None:
        """One HMGET reply decoded as Feast's ``_get_features_for_entity`` does; None when nothing is stored."""
        *data, ts = reply
        if not ts and not any(data):
            return None  # online_read gives empty values at the epoch here: the same missing values
        decode = self.values.get
        return (self._stamp(ts) if ts else 0, [decode(blob) for blob in data])

    def _stamp(self, ts: bytes) -> int:
        """Feast's reading of a ``_ts:<view>`` field (a Timestamp proto, as float seconds), memoised."""
        found = self._stamps.get(ts)
        if found is None:
            stamp = _timestamp_type().FromString(ts)
            seconds = stamp.seconds + stamp.nanos / 1_000_000_000.0  # as Feast computes it
            if len(self._stamps) >= MEMO_KEYS:
                self._stamps.clear()
            found = self._stamps[ts] = stamp_ns(datetime.fromtimestamp(seconds, tz=UTC))
        return found


def _timestamp_type() -> Any:
    """protobuf's Timestamp message (imported by name: protobuf ships no type stubs here)."""
    return importlib.import_module("google.protobuf.timestamp_pb2").Timestamp


__all__ = [
    "Entry",
    "FeastReader",
    "Key",
    "KeyMemo",
    "Reader",
    "RedisReader",
    "SqliteReader",
    "ValueMemo",
    "View",
    "entity_key_proto",
    "open_reader",
    "python_value",
    "stamp_ns",
]
