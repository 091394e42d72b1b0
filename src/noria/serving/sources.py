"""Where the service gets its model and its features: two small interfaces and their adapters.

``ModelSource`` resolves an alias to a version and loads it; :class:`RegistryModelSource` is
the MLflow registry (``noria.registry``). ``FeatureSource`` turns request rows into feature
values; :class:`OnlineFeatureSource` is the Feast online store through ``noria.features``, the
same transformation code the training sets use. Both adapters import their package lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from noria.errors import NoriaError

if TYPE_CHECKING:
    import lightgbm
    import pandas as pd

    from noria.config import Project
    from noria.serving.config import FeatureCacheConfig

log = logging.getLogger("noria.serving")
FEATURE_HASH_TAG = "noria.features.definition_hash"  # noria.registry.lineage.TAGS["feature_definition_hash"]


@dataclass(frozen=True)
class VersionRef:
    """What an alias points at right now."""

    name: str
    version: int
    run_id: str | None = None


@dataclass(frozen=True)
class LoadedVersion:
    """A model version ready to serve: the booster and where it came from."""

    ref: VersionRef
    alias: str
    booster: lightgbm.Booster
    feature_definition_hash: str | None = None
    profile: Any = None  # a noria.monitoring ReferenceProfile, when the version has one
    descriptions: dict[str, str] = field(default_factory=dict)
    trained_at: float | None = None  # Unix seconds: the training run's start (else the version's creation)
    holdout_metrics: dict[str, float] = field(default_factory=dict)  # recorded by the promotion gate


class ModelSource(Protocol):
    def resolve(self, alias: str) -> VersionRef:
        """The version ``alias`` points at (NotFoundError if it points nowhere)."""
        ...

    def load(self, ref: VersionRef, alias: str) -> LoadedVersion: ...


@dataclass
class LookedUp:
    """Feature values of a batch of request rows: arrays by name, and what is missing per row."""

    values: dict[str, np.ndarray]
    missing: list[list[str]]


class FeatureSource(Protocol):
    kind: str  # shown by /ready, e.g. "sqlite" or "redis"

    def lookup(self, rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> LookedUp: ...

    def descriptions(self) -> dict[str, str]: ...


class RegistryModelSource:
    """Model versions from the project's MLflow registry (``noria.registry``)."""

    def __init__(self, project: Project, name: str) -> None:
        from noria.registry import validate_model_name
        from noria.registry.mlflow_client import get_client

        self.project = project
        self.name = validate_model_name(name)
        self.client = get_client(project)

    def resolve(self, alias: str) -> VersionRef:
        from noria.registry import get_version

        info = get_version(self.project, f"{self.name}@{alias}", client=self.client)
        return VersionRef(info.name, info.version, info.run_id)

    def load(self, ref: VersionRef, alias: str) -> LoadedVersion:
        from noria.registry import load_model

        loaded = load_model(self.project, f"{ref.name}/{ref.version}", client=self.client)
        run_id = loaded.info.run_id
        tags: dict[str, str] = {}
        trained_at = _timestamp(loaded.info.created_at)
        if run_id:
            try:
                run = self.client.get_run(run_id)
                tags = dict(run.data.tags)
                trained_at = run.info.start_time / 1000 if run.info.start_time else trained_at
            except Exception as exc:  # the run may be gone; the model still serves
                log.warning("cannot read run %s of %s/%s: %s", run_id, ref.name, ref.version, exc)
        return LoadedVersion(
            ref=VersionRef(loaded.info.name, loaded.info.version, run_id),
            alias=alias,
            booster=loaded.booster,
            feature_definition_hash=tags.get(FEATURE_HASH_TAG) or loaded.info.tags.get(FEATURE_HASH_TAG),
            profile=self._profile(run_id) if run_id else None,
            trained_at=trained_at,
            holdout_metrics=loaded.info.metrics,
        )

    def _profile(self, run_id: str) -> Any:
        """The version's reference profile, if its run stored one as an artifact."""
        from noria.monitoring.window import run_profile

        try:
            return run_profile(self.client, run_id)
        except NoriaError as exc:
            log.warning("reference profile of run %s is unusable (%s); using the model's ranges", run_id, exc)
        except Exception:  # an unreachable artifact store: serve with the model's own ranges
            pass
        return None


def _timestamp(iso: str) -> float | None:
    from datetime import datetime

    try:
        seconds = datetime.fromisoformat(iso).timestamp() if iso else 0.0
    except ValueError:
        return None
    return seconds if seconds > 0 else None  # an unknown creation time reads as the epoch


class OnlineFeatureSource:
    """The project's Feast online store, through ``noria.features.online_features``."""

    def __init__(self, project: Project, service: str | None = None, cache: FeatureCacheConfig | None = None) -> None:
        from noria.features.lookup import ReadCache
        from noria.features.online import open_online_store
        from noria.serving.config import FeatureCacheConfig

        cache = cache if cache is not None else FeatureCacheConfig()
        read_cache = None
        if cache.seconds > 0 or cache.until_changed:
            read_cache = ReadCache(cache.seconds or None, cache.max_entries, until_changed=cache.until_changed)
        self.store = open_online_store(project, service, cache=read_cache)
        self.kind = str(self.store.defs.config.online_store.type)

    def lookup(self, rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> LookedUp:
        from noria.features.online import online_features

        vectors = online_features(self.store, rows)
        return LookedUp(values=vectors.values, missing=vectors.missing)

    def descriptions(self) -> dict[str, str]:
        return {name: info.description for name, info in self.store.defs.features.items()}


def open_feature_source(
    project: Project, mode: str, service: str | None, cache: FeatureCacheConfig | None = None
) -> tuple[FeatureSource | None, str]:
    """The online store for ``mode`` ("auto", "on", "off") and a word on why (for /ready)."""
    if mode == "off":
        return None, "off (inline features only)"
    try:
        source = OnlineFeatureSource(project, service, cache)
    except NoriaError as exc:
        if mode == "on":
            raise
        log.warning("online feature store not used: %s", exc)
        return None, f"not available ({exc.message})"
    return source, source.kind


__all__ = [
    "FeatureSource",
    "LoadedVersion",
    "LookedUp",
    "ModelSource",
    "OnlineFeatureSource",
    "RegistryModelSource",
    "VersionRef",
    "open_feature_source",
]
