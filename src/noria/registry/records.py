"""What the registry remembers beyond MLflow's own fields, and the lock that guards changes.

- a version's holdout evaluation (tag ``noria.evaluation``), so the gate can re-judge later;
- the champion history of a registered model (tag ``noria.champion_history``): the stack
  of champions that rollback walks back, and an audit trail of who moved it, why and when;
- the per-model promotion lock, a file lock under ``registry.lock_dir``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import ExternalToolError, ValidationError
from noria.registry._names import CHAMPION, ModelRef, parse_version, validate_model_name
from noria.registry.config import registry_config
from noria.registry.gate import Evaluation
from noria.registry.mlflow_client import file_lock, get_client, mlflow_errors
from noria.registry.models import EVALUATION_TAG, ModelVersionInfo, get_registered, resolve

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from noria.config import Project

HISTORY_TAG = "noria.champion_history"
MAX_EVENTS = 500  # audit entries kept in the tag (the rollback stack is kept whole)
MAX_TAG_CHARS = 100_000  # MLflow's limit for registry tag values


class PromotionBusyError(ExternalToolError):
    """Another promotion or rollback of the same model held the lock for too long."""


@dataclass
class ChampionHistory:
    stack: list[int] = field(default_factory=list)  # champions in order; the last is current
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        text = json.dumps({"stack": self.stack, "events": self.events[-MAX_EVENTS:]}, sort_keys=True)
        while len(text) > MAX_TAG_CHARS and self.events:
            self.events = self.events[len(self.events) // 2 :]
            text = json.dumps({"stack": self.stack, "events": self.events}, sort_keys=True)
        return text


def current_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def registry_lock(project: Project, name: str) -> Iterator[None]:
    """Hold the per-model promotion lock (a file lock under ``registry.lock_dir``)."""
    validate_model_name(name)  # the name becomes part of a file name
    config = registry_config(project)
    folder = project.path(config.lock_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"registry-{name}.lock"

    def busy() -> PromotionBusyError:
        return PromotionBusyError(
            f"another promotion or rollback of {name!r} held {path} for over {config.lock_timeout_s:g} s",
            fix="wait for it to finish and retry (or raise registry.lock_timeout_s)",
        )

    with file_lock(path, config.lock_timeout_s, busy):
        yield


# --- recorded state -------------------------------------------------------------------------


def record_evaluation(
    project: Project, name: str, version: int, evaluation: Evaluation, *, client: MlflowClient | None = None
) -> None:
    """Store a version's holdout evaluation with it (a version tag) for later gating and listing."""
    ref = ModelRef(validate_model_name(name), version=parse_version(version, name))
    client = client or get_client(project)
    resolve(client, ref)
    text = json.dumps(evaluation.to_dict(), sort_keys=True)
    if len(text) > MAX_TAG_CHARS:
        raise ValidationError(
            f"the evaluation of {name}/{version} is {len(text):,} characters of JSON; "
            f"MLflow keeps at most {MAX_TAG_CHARS:,}",
            fix="report fewer slices (group rare ones)",
        )
    with mlflow_errors(f"record the evaluation of {name}/{version}"):
        client.set_model_version_tag(name, str(version), EVALUATION_TAG, text)


def recorded_evaluation(info: ModelVersionInfo) -> Evaluation | None:
    raw = info.tags.get(EVALUATION_TAG)
    return Evaluation.from_dict(json.loads(raw)) if raw else None


def champion_history(project: Project, name: str, *, client: MlflowClient | None = None) -> ChampionHistory:
    validate_model_name(name)
    registered = get_registered(client or get_client(project), name)
    raw = (registered.tags or {}).get(HISTORY_TAG)
    if not raw:
        return ChampionHistory()
    data = json.loads(raw)
    return ChampionHistory([int(v) for v in data.get("stack", [])], list(data.get("events", [])))


def champion_state(
    project: Project,
    name: str,
    *,
    client: MlflowClient | None = None,
    before_promotion_of: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """Who is @champion of ``name`` now and the newest change of it (one registry read).

    Equal states mean nothing moved the champion in between: a promotion, a rollback or an
    alias set by hand each change the alias or the history's newest event. The training
    pipeline keys its cached gate decision on this.

    ``before_promotion_of=(version, note)``: when the newest change is the promotion of
    ``version`` recorded with ``note`` (the gate's own decision), the state as it was just
    before it, which is what that decision was judged against. A re-run of the gate that
    promoted then finds the state it was keyed on and reuses its decision; any later change
    (a rollback, another promotion) is the newest event and gives a new state.
    """
    validate_model_name(name)
    if client is None:
        fast = _champion_state_sqlite(project, name, before_promotion_of)
        if fast is not None:
            return fast
    registered = get_registered(client or get_client(project), name)
    aliases = dict(registered.aliases or {})
    champion = int(aliases[CHAMPION]) if CHAMPION in aliases else None
    return _state(name, champion, (registered.tags or {}).get(HISTORY_TAG), before_promotion_of)


def _state(
    name: str, champion: int | None, history: str | None, before_promotion_of: tuple[int, str] | None = None
) -> dict[str, Any]:
    events = json.loads(history).get("events", []) if history else []
    if before_promotion_of is not None and events and champion == before_promotion_of[0]:
        last = events[-1]
        if (last.get("action"), last.get("version"), last.get("reason")) == ("promote", *before_promotion_of):
            events = events[:-1]
            champion = last.get("from")
    return {
        "name": name,
        "champion": champion,
        "history_events": len(events),
        "last_event": events[-1] if events else None,
    }


def _champion_state_sqlite(
    project: Project, name: str, before_promotion_of: tuple[int, str] | None = None
) -> dict[str, Any] | None:
    """:func:`champion_state` read straight from a local SQLite tracking database.

    Opening an MLflow client on SQLite costs seconds (imports, engine, schema check) and the
    training pipeline asks this on every run, so a local database is read with the standard
    library: MLflow's own ``registered_models``, ``registered_model_aliases`` and
    ``registered_model_tags`` tables, read-only. The layout is pinned against MLflow by
    ``tests/unit/registry/test_champion_state.py``. None (use the client) for another backend,
    a missing model or anything unexpected.
    """
    import sqlite3

    from noria.registry.mlflow_client import tracking_uri

    uri = tracking_uri(project)
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == prefix + ":memory:":
        return None
    db = Path(uri[len(prefix) :])
    if not db.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=10)) as con:
            models = con.execute("SELECT workspace FROM registered_models WHERE name = ?", (name,)).fetchall()
            aliases = con.execute(
                "SELECT version, workspace FROM registered_model_aliases WHERE name = ? AND alias = ?",
                (name, CHAMPION),
            ).fetchall()
            tags = con.execute(
                "SELECT value, workspace FROM registered_model_tags WHERE name = ? AND key = ?", (name, HISTORY_TAG)
            ).fetchall()
    except sqlite3.Error:
        return None
    if len(models) != 1 or len(aliases) > 1 or len(tags) > 1:
        return None  # no such model (the client says so properly), or several workspaces
    workspace = models[0][0]
    if any(row[-1] != workspace for row in (*aliases, *tags)):
        return None
    return _state(name, int(aliases[0][0]) if aliases else None, tags[0][0] if tags else None, before_promotion_of)


def push_history(client: MlflowClient, name: str, history: ChampionHistory, event: dict[str, Any]) -> None:
    history.events.append(event)
    with mlflow_errors(f"record the champion history of {name!r}"):
        client.set_registered_model_tag(name, HISTORY_TAG, history.to_json())
