"""What the online store holds: the last materialize's snapshot, definitions and time, kept in the store.

``noria features materialize --until T`` runs hourly on a cluster (the ``noria-features``
CronJob), each time in a fresh pod that knows nothing of the run before. So the state lives where
the values live: in Redis under ``noria:<feast project>:materialized``, or for a SQLite store in a
file beside the database (``<db>.materialized.json``). It records the snapshot the values came
from, the definitions' hash and, per view, the time loaded up to.

A materialize is *incremental* when that record says the store already holds this snapshot's
values under these definitions up to an earlier time: only events after it are loaded (Feast's
``materialize`` from that time). Anything else (a new snapshot: its rows may have any time; new
definitions; another view; an earlier ``until``, which would have to take values back) reloads
every view from the beginning, as before. With nothing new at all, nothing is loaded.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from noria import atomic

STATE_FILE_SUFFIX = ".materialized.json"


def _key(store: Any) -> str:
    return f"noria:{store.config.project}:materialized"


def _sqlite_file(store: Any) -> Path:
    return Path(str(store.config.online_store.path) + STATE_FILE_SUFFIX)


def _redis(store: Any) -> Any:
    from feast.infra.online_stores.helpers import get_online_store_from_config

    online: Any = get_online_store_from_config(store.config.online_store)
    return online._get_client(store.config.online_store)  # Feast's own client: same address and password


def read_state(store: Any) -> dict[str, Any] | None:
    """The record the last materialize left in ``store`` (a ``feast.FeatureStore``), or None."""
    kind = store.config.online_store.type
    try:
        if kind == "redis":
            raw = _redis(store).get(_key(store))
            return json.loads(raw) if raw else None
        path = _sqlite_file(store)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (ValueError, OSError):
        return None  # unreadable: treated as unknown, so the next run reloads everything


def write_state(store: Any, record: dict[str, Any]) -> None:
    text = json.dumps(record, sort_keys=True)
    if store.config.online_store.type == "redis":
        _redis(store).set(_key(store), text)
    else:
        atomic.write_text(_sqlite_file(store), text + "\n")


def _same(state: dict[str, Any] | None, snapshot_id: str, definition_hash: str) -> bool:
    return (
        state is not None
        and state.get("snapshot_id") == snapshot_id
        and state.get("definition_hash") == definition_hash
    )


def plan(
    state: dict[str, Any] | None, snapshot_id: str, definition_hash: str, views: list[str], until: datetime
) -> dict[str, datetime | None]:
    """Per view, the time to load from: None for everything (a full load), else its last ``until``."""
    same = _same(state, snapshot_id, definition_hash)
    loaded = (state or {}).get("views") or {}
    out: dict[str, datetime | None] = {}
    for view in views:
        start = None
        if same and view in loaded:
            try:
                previous = datetime.fromisoformat(str(loaded[view]))
            except ValueError:
                previous = None
            start = previous if previous is not None and previous <= until else None
        out[view] = start
    return out


def next_state(
    state: dict[str, Any] | None, snapshot_id: str, definition_hash: str, views: list[str], until: datetime
) -> dict[str, Any]:
    """The record after loading ``views`` up to ``until`` (other views kept if nothing else changed)."""
    same = _same(state, snapshot_id, definition_hash)
    loaded = dict((state or {}).get("views") or {}) if same else {}
    loaded.update(dict.fromkeys(views, until.isoformat()))
    return {"snapshot_id": snapshot_id, "definition_hash": definition_hash, "views": loaded}


__all__ = ["next_state", "plan", "read_state", "write_state"]
