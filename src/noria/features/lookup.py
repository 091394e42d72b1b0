"""Reading feature views from Feast's online store for a batch of requests.

:class:`OnlineLookup` is prepared once: the Feast ``FeatureStore``, the online store it is
configured with (SQLite, Redis, ...), the registry's feature views and a reader
(:mod:`noria.features.online_read`) that reads every view's keys in one read per lookup: one
SQL statement on SQLite, one pipeline on Redis, Feast's ``online_read`` per view on any other
store. It skips ``FeatureStore.get_online_features``'s per-call registry resolution and
protobuf response assembly, which cost more than the reads for a one-row request. On every
value Noria applies the offline join's rule: present, stamped at or before the prediction
time, and within the view's TTL; anything else is missing.

Each distinct entity key is read once per lookup, and an optional :class:`ReadCache` keeps
reads, so a service answering many requests of the same entity (a store, a customer, a sensor)
reads each from the store once: on SQLite until the store changes (a cached answer is exactly a
fresh read), on any store for a few seconds if asked (a value materialized meanwhile shows up
when its cached read expires).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from noria.errors import ConfigError
from noria.features.definitions import Definitions
from noria.features.offline import plan_join_keys
from noria.features.online_read import Entry, Key, View, open_reader
from noria.features.repo import open_store
from noria.features.transform import Arrays

_NAN = float("nan")
log = logging.getLogger("noria.features")


class OnlineLookup:
    """Feature definitions + an open Feast store + what each lookup needs, prepared once."""

    def __init__(self, defs: Definitions, service: str | None = None, *, cache: ReadCache | None = None) -> None:
        from feast.infra.online_stores.helpers import get_online_store_from_config

        self.defs = defs
        self.plan = defs.service(service)
        self.feast = open_store(defs)
        specs = defs.config.feature_views
        offline_only = [v for v in self.plan.batch_views if not specs[v].online]
        if offline_only:
            raise ConfigError(
                f"feature view {offline_only[0]!r} is used by service {self.plan.name!r} but has online: false",
                fix="set online: true on the view, or drop it from the service",
            )
        self.refs = [f"{v}:{f}" for v in self.plan.batch_views for f in specs[v].features]
        self.join_keys = plan_join_keys(defs, self.plan)
        self.online = get_online_store_from_config(self.feast.config.online_store)
        self.views: list[View] = []
        for name in self.plan.batch_views:
            spec, keys = specs[name], defs.join_keys(name)
            ttl = spec.ttl_delta
            self.views.append(
                View(
                    name=name,
                    table=self.feast.get_feature_view(name),
                    keys=keys,
                    key_is_int=[k == "noria_day" or _entity_type(defs, name, k) == "int" for k in keys],
                    features=list(spec.features),
                    is_str=[fs.type == "str" for fs in spec.features.values()],
                    ttl_ns=int(ttl.total_seconds()) * 10**9 if ttl else None,
                )
            )
        self.reader = open_reader(self.feast.config, self.online, self.views)
        # The store's version before each read, when the cache keeps reads until the store changes.
        self._version: Callable[[], int] | None = None
        if cache is not None and cache.until_changed:
            self._version = getattr(self.reader, "version", None)
            if self._version is None and cache.seconds is None:
                log.info(
                    "online store %s cannot say when it changed: no read cache (set serving.feature_cache.seconds "
                    "to reuse reads for a while)",
                    self.reader.kind,
                )
                cache = None
            elif self._version is not None:  # versions are per connection: what the cache held, another's
                cache.reset()
        self.cache = cache

    def read(self, keys: Arrays, ts: np.ndarray) -> Arrays:
        """Every feature of the plan's views for each row: arrays, NaN/None where missing.

        Each distinct entity key is read once per call (rows of a coalesced batch often share an
        entity, and a day-bucketed view's key and day), or not at all while a read of it is in
        the cache, and every view's keys are read together (one read of the store); the
        usability rule is then applied per row, at its own time.
        """
        n = len(ts)
        if self._version is not None:
            cast(ReadCache, self.cache).validate(self._version())
        ts_ns = ts.astype(np.int64).tolist()
        columns = {k: arr.tolist() for k, arr in keys.items()}
        views = self.views
        rows: list[list[Key]] = []
        known: list[dict[Key, Entry | None]] = []
        wanted: list[tuple[View, list[Key]]] = []
        for view in views:
            row_keys = list(zip(*(columns[k] for k in view.keys), strict=True))
            entries, unread = self._known(view, row_keys)
            rows.append(row_keys)
            known.append(entries)
            wanted.append((view, unread))
        if any(unread for _, unread in wanted):
            cache = self.cache
            for (view, _), entries, found in zip(wanted, known, self.reader.read(wanted), strict=True):
                entries.update(found)
                if cache is not None:
                    for key, entry in found.items():
                        cache.put(view.name, key, entry)
        out: Arrays = {}
        numeric_names: list[str] = []
        numbers: list[list[float]] = []
        for view, row_keys, entries in zip(views, rows, known, strict=True):
            ttl_ns = view.ttl_ns
            nothing = [None] * len(view.features)
            found_rows: list[list[Any]] = []
            for key, at_ns in zip(row_keys, ts_ns, strict=True):
                entry = entries.get(key)
                if entry is not None and _usable(entry[0], at_ns, ttl_ns):
                    found_rows.append(entry[1])
                else:
                    found_rows.append(nothing)
            # The rows' values feature by feature (a transposition in C; no rows: an empty column each).
            by_feature = zip(*found_rows, strict=True) if n else ([] for _ in view.features)
            for feature, is_str, values in zip(view.features, view.is_str, by_feature, strict=True):
                if is_str:
                    out[feature] = np.array(values, dtype=object)
                else:
                    numeric_names.append(feature)
                    numbers.append([_NAN if v is None else float(v) for v in values])
        if numeric_names:
            # One array for all numeric features (a row each): one allocation instead of one per feature.
            matrix = np.array(numbers, dtype=np.float64).reshape(len(numeric_names), n)
            for position, name in enumerate(numeric_names):
                out[name] = matrix[position]
        return out

    def _known(self, view: View, row_keys: list[Key]) -> tuple[dict[Key, Entry | None], list[Key]]:
        """The distinct complete keys' cached entries, and the keys to read from the store."""
        cache = self.cache
        if cache is None:  # every distinct complete key is read (None: a placeholder until then)
            unread = list(dict.fromkeys(key for key in row_keys if None not in key))
            return dict.fromkeys(unread), unread
        entries: dict[Key, Entry | None] = {}
        unread = []
        for key in row_keys:
            if key in entries or None in key:
                continue
            cached = cache.get(view.name, key)
            if cached is _UNKNOWN:
                unread.append(key)
                entries[key] = None
            else:
                entries[key] = cached  # type: ignore[assignment]
        return entries, unread


_UNKNOWN = object()


class ReadCache:
    """Online reads, by feature view and entity key, answered again without the store.

    A read-through cache in front of the online store (Feast has none). A cached read is good for
    as long as one of these says so:

    - ``until_changed``: on a store that says when its data changed (SQLite: its
      ``data_version``, :meth:`noria.features.online_read.SqliteReader.version`), the lookup hands
      the store's version to :meth:`validate` before every read and every cached read is
      forgotten the moment it changes (Feast materialized, from any process). A cached answer is
      then exactly what reading the store would give. A store that cannot say (Redis) gets no
      such cache.
    - ``seconds``: each read is reused for that long, on any store: a value materialized meanwhile
      is seen up to ``seconds`` later, and so is a key that was absent.

    The usability rule (stamped at or before the prediction time, within the view's TTL) is
    applied on every lookup, at the request's own time, never cached. Entries expire in the order
    they were read (one lifetime for all), so the oldest goes first when ``max_entries`` are held.
    Reads and writes come from one thread at a time (the service's lookup batcher).
    """

    def __init__(
        self,
        seconds: float | None = None,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        *,
        until_changed: bool = True,
    ) -> None:
        if (seconds is not None and seconds <= 0) or (seconds is None and not until_changed) or max_entries < 1:
            raise ValueError("a read cache needs seconds > 0 or until_changed, and max_entries >= 1")
        self.seconds = seconds  # None: no time limit (kept until the store changes)
        self.until_changed = until_changed
        self.clock = clock
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self.changes = 0  # times the store changed and every cached read was dropped
        self._version: int | None = None
        self._entries: dict[tuple[str, tuple[Any, ...]], tuple[float, Entry | None]] = {}

    def reset(self) -> None:
        """Forget every read and the last version seen (a new connection's versions start here)."""
        self._entries.clear()
        self._version = None

    def validate(self, version: int) -> None:
        """The store's version now: every cached read is dropped when it differs from the last one."""
        if version != self._version:
            if self._version is not None:
                self.changes += 1
            self._entries.clear()
            self._version = version

    def get(self, view: str, key: tuple[Any, ...]) -> Entry | object | None:
        """The cached read of ``key`` in ``view`` (None: absent from the store), or ``_UNKNOWN``."""
        held = self._entries.get((view, key))
        if held is None or (self.seconds is not None and held[0] <= self.clock()):
            self.misses += 1
            return _UNKNOWN
        self.hits += 1
        return held[1]

    def put(self, view: str, key: tuple[Any, ...], entry: Entry | None) -> None:
        entries = self._entries
        entries.pop((view, key), None)  # re-inserted at the end: insertion order stays expiry order
        while len(entries) >= self.max_entries:  # the first entry is the oldest read
            del entries[next(iter(entries))]
        entries[(view, key)] = (math.inf if self.seconds is None else self.clock() + self.seconds, entry)

    def __len__(self) -> int:
        return len(self._entries)


def _entity_type(defs: Definitions, view: str, key: str) -> str:
    for entity in defs.config.feature_views[view].entities:
        spec = defs.config.entities[entity]
        if spec.key(entity) == key:
            return spec.type
    return "str"


def _usable(stamp_ns: int, at_ns: int, ttl_ns: int | None) -> bool:
    """The offline join's rule: stamped at or before the prediction time, and within the TTL."""
    return stamp_ns <= at_ns and (ttl_ns is None or stamp_ns >= at_ns - ttl_ns)
