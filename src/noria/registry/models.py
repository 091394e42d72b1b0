"""Model versions: log a LightGBM booster in its native text format, register, resolve, load.

The model is saved by ``mlflow.lightgbm.save_model``, which writes a Booster with
``Booster.save_model`` (LightGBM's text format, ``model.lgb``) next to an MLmodel file; no
pickle anywhere. It is an MLflow 3 *logged model* linked to the run, and registered as a
version of a registered model. :func:`load_model` reads ``model.lgb`` straight into a
Booster, skipping pyfunc and pandas, for serving.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from noria.errors import NotFoundError
from noria.registry._names import CHAMPION, ModelRef, parse_model_ref, validate_model_name
from noria.registry.mlflow_client import error_code, get_client, mlflow_errors, tracking_uri

if TYPE_CHECKING:
    import lightgbm
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from noria.config import Project

MODEL_FILE = "model.lgb"
EVALUATION_TAG = "noria.evaluation"
RELEASE_NOTES_TAG = "noria.release_notes"  # written when the version becomes champion (registry.notes)
ABANDONED_TAG = "noria.abandoned"  # a version a killed register step left (see tracking.close_abandoned)


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version, as Noria shows it."""

    name: str
    version: int
    run_id: str | None
    source: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    description: str = ""

    @classmethod
    def from_mlflow(cls, mv: ModelVersion, aliases: tuple[str, ...] | None = None) -> ModelVersionInfo:
        created = datetime.fromtimestamp((mv.creation_timestamp or 0) / 1000, UTC).isoformat(timespec="seconds")
        return cls(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id or None,
            source=mv.source or "",
            aliases=tuple(sorted(aliases if aliases is not None else (mv.aliases or []))),
            tags=dict(mv.tags or {}),
            created_at=created,
            description=mv.description or "",
        )

    @property
    def metrics(self) -> dict[str, float]:
        """Holdout metrics recorded by the gate (empty if the version was never evaluated)."""
        raw = self.tags.get(EVALUATION_TAG)
        if not raw:
            return {}
        try:
            return {k: float(v) for k, v in json.loads(raw).get("metrics", {}).items()}
        except (ValueError, AttributeError):
            return {}

    @property
    def release_notes(self) -> str:
        """The note written when the version last became @champion ("" if it never did through Noria)."""
        return self.tags.get(RELEASE_NOTES_TAG, "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "aliases": list(self.aliases),
            "metrics": self.metrics,
            "tags": {k: v for k, v in self.tags.items() if k != EVALUATION_TAG},
            "created_at": self.created_at,
            "description": self.description,
        }


@dataclass(frozen=True)
class LoadedModel:
    booster: lightgbm.Booster
    info: ModelVersionInfo


@contextmanager
def _quiet_mlflow_env_logs() -> Iterator[None]:
    # save_model warns that pip is absent from uv-made environments: true, and irrelevant here.
    logger = logging.getLogger("mlflow.utils.environment")
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(old)


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    validate_model_name(name)
    with mlflow_errors(f"create registered model {name!r}"):
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if error_code(exc) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise


def log_lightgbm_model(
    client: MlflowClient,
    *,
    experiment_id: str,
    run_id: str,
    booster: lightgbm.Booster,
    name: str,
    tags: Mapping[str, str] | None = None,
) -> ModelVersionInfo:
    """Log ``booster`` (LightGBM text) as the run's model and register it as a new version of ``name``."""
    import lightgbm as lgb
    import mlflow.lightgbm
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    validate_model_name(name)
    if not isinstance(booster, lgb.Booster):
        raise TypeError(f"expected a lightgbm.Booster, got {type(booster).__name__} (use model.booster_)")
    ensure_registered_model(client, name)
    with mlflow_errors(f"log model {name!r} for run {run_id}"):
        logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, model_type="lightgbm")
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        with tempfile.TemporaryDirectory(prefix="noria-model-") as tmp, _quiet_mlflow_env_logs():
            local = str(Path(tmp) / "model")
            spec = Model(artifact_path=logged.artifact_location, run_id=run_id, model_id=logged.model_id)
            spec.model_uuid = logged.model_id
            mlflow.lightgbm.save_model(
                booster,
                local,
                mlflow_model=spec,
                pip_requirements=[f"lightgbm=={lgb.__version__}"],
                metadata={"noria_format": "lightgbm-text", "model_file": MODEL_FILE},
            )
            client.log_model_artifacts(logged.model_id, local)
        client.finalize_logged_model(logged.model_id, "READY")
        mv = client.create_model_version(
            name,
            # A concrete URI: a "models:/<id>" source makes MLflow's store use its *global* tracking URI.
            source=logged.artifact_location,
            run_id=run_id,
            tags=dict(tags or {}),
            model_id=logged.model_id,
        )
    return ModelVersionInfo.from_mlflow(mv)


def _registered_names(client: MlflowClient) -> list[str]:
    return sorted(rm.name for rm in client.search_registered_models(max_results=1000))


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    out: list[ModelVersion] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(f"name = '{name}'", max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return sorted(out, key=lambda mv: int(mv.version))


def _listing(items: list[str], empty: str) -> str:
    if not items:
        return empty
    shown = ", ".join(items[:20])
    return shown + (f" and {len(items) - 20} more" if len(items) > 20 else "")


def get_registered(client: MlflowClient, name: str) -> Any:
    """The MLflow RegisteredModel called ``name``, or NotFoundError listing the registered ones."""
    from mlflow.exceptions import MlflowException

    validate_model_name(name)
    with mlflow_errors(f"look up model {name!r}"):
        try:
            return client.get_registered_model(name)
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
            names = _registered_names(client)
    raise NotFoundError(
        f"no registered model named {name!r} (registered: {_listing(names, 'none yet')})",
        fix="check the spelling, or train one first with `noria pipeline run training`; `noria models list` shows them",
    )


def resolve(client: MlflowClient, ref: ModelRef) -> ModelVersionInfo:
    """The version a reference points at, or NotFoundError naming what does exist."""
    from mlflow.exceptions import MlflowException

    registered = get_registered(client, ref.name)
    with mlflow_errors(f"look up model {ref}"):
        aliases: dict[str, int] = {a: int(v) for a, v in (registered.aliases or {}).items()}
        if ref.version is None:
            alias = ref.alias or CHAMPION
            if alias not in aliases:
                known = [f"@{a} -> {v}" for a, v in sorted(aliases.items())]
                raise NotFoundError(
                    f"model {ref.name!r} has no @{alias} alias (aliases: {_listing(known, 'none')})",
                    fix=f"use {ref.name}/<version>, or promote one: `noria promote {ref.name} VERSION`",
                )
            version = aliases[alias]
        else:
            version = ref.version
        try:
            mv = client.get_model_version(ref.name, str(version))
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
            known_versions = [str(v.version) for v in _versions(client, ref.name)]
            raise NotFoundError(
                f"model {ref.name!r} has no version {version} (versions: {_listing(known_versions, 'none')})",
                fix=f"pick one of the listed versions; `noria models list {ref.name}` shows them",
            ) from None
    mine = tuple(a for a, v in aliases.items() if v == int(mv.version))
    return ModelVersionInfo.from_mlflow(mv, aliases=mine)


def get_version(project: Project, ref: str | ModelRef, *, client: MlflowClient | None = None) -> ModelVersionInfo:
    """Resolve ``name`` (the champion), ``name@alias`` or ``name/version``."""
    parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
    return resolve(client or get_client(project), parsed)


def load_model(project: Project, ref: str | ModelRef, *, client: MlflowClient | None = None) -> LoadedModel:
    """The LightGBM Booster of a version (``name@champion``, ``name/3``) and what it is."""
    import lightgbm as lgb

    parsed = parse_model_ref(ref) if isinstance(ref, str) else ref  # before any path or MLflow call
    client = client or get_client(project)
    info = resolve(client, parsed)
    with mlflow_errors(f"find the artifacts of {info.name}/{info.version}"):
        uri = client.get_model_version_download_uri(info.name, str(info.version))
    location = urlparse(uri)
    if location.scheme in ("", "file"):
        path = Path(url2pathname(location.path)) / MODEL_FILE
        if not path.is_file():
            raise _no_text_model(info, uri)
        return LoadedModel(lgb.Booster(model_file=str(path)), info)
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="noria-load-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/{MODEL_FILE}",
                dst_path=tmp,
                tracking_uri=tracking_uri(project),
            )
        except (MlflowException, OSError) as exc:
            raise _no_text_model(info, uri) from exc
        return LoadedModel(lgb.Booster(model_file=local), info)


def _no_text_model(info: ModelVersionInfo, uri: str) -> NotFoundError:
    return NotFoundError(
        f"model {info.name} version {info.version} has no LightGBM text model ({MODEL_FILE}) at {uri}",
        fix="register models through Noria's training (it stores LightGBM text), or pick another version",
    )


@dataclass(frozen=True)
class RegisteredModelSummary:
    name: str
    aliases: dict[str, int]
    versions: list[ModelVersionInfo]
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": self.aliases,
            "description": self.description,
            "versions": [v.to_dict() for v in self.versions],
        }


def list_models(
    project: Project, name: str | None = None, *, client: MlflowClient | None = None
) -> list[RegisteredModelSummary]:
    """Registered models (or one, by name) with every version, its aliases and holdout metrics."""
    if name is not None:
        validate_model_name(name)
    client = client or get_client(project)
    with mlflow_errors("list registered models"):
        names = [name] if name is not None else _registered_names(client)
    out = []
    for model_name in names:
        registered = get_registered(client, model_name)
        with mlflow_errors(f"list versions of {model_name!r}"):
            found = _versions(client, model_name)
        aliases = {a: int(v) for a, v in (registered.aliases or {}).items()}
        versions = [
            ModelVersionInfo.from_mlflow(mv, tuple(a for a, v in aliases.items() if v == int(mv.version)))
            for mv in found
        ]
        out.append(RegisteredModelSummary(model_name, aliases, versions, registered.description or ""))
    return out
