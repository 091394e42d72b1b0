"""Where MLflow lives for a project, and a client pointed at it.

The tracking URI and artifact location come from ``tracking:`` in noria.yaml. Relative
paths (``sqlite:///.noria/mlflow.db``, ``.noria/mlartifacts``) resolve against the project
folder, never the current directory, so every command sees the same store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from noria.errors import ExternalToolError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from noria.config import Project

_SQLITE = "sqlite:///"


def disable_telemetry() -> None:
    """MLflow must never phone home from Noria (set before MLflow is imported or started)."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


disable_telemetry()  # every module of this package that uses MLflow imports this one first


def tracking_uri(project: Project) -> str:
    """The configured tracking URI with relative SQLite / file paths made absolute."""
    uri = project.config.tracking.uri.strip()
    if uri.startswith(_SQLITE):
        rest = uri[len(_SQLITE) :]
        if rest and rest != ":memory:" and not rest.startswith("/"):
            return _SQLITE + str((project.root / rest).resolve())
        return uri
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        return str(project.path(uri).resolve())  # a bare folder: MLflow's file store
    return uri


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https", "databricks")


def backend_kind(uri: str) -> str:
    """The tracking backend's kind only (``sqlite``, ``postgresql``, ``http``...): never the credentials."""
    scheme = urlparse(uri).scheme
    return scheme.split("+", 1)[0] if scheme else "file"


def artifact_location(project: Project) -> str | None:
    """The artifact root for the project's experiment, or None to let an MLflow server choose.

    A relative path is a local folder under the project; with a remote tracking server it
    would name a folder on *this* machine, so the server's own artifact root is used instead.
    """
    location = project.config.tracking.artifact_location.strip()
    if "://" in location or location.startswith(("mlflow-artifacts:", "file:")):
        return location
    if is_remote(tracking_uri(project)) and not Path(location).is_absolute():
        return None
    return project.path(location).resolve().as_uri()


def get_client(project: Project) -> MlflowClient:
    """An MlflowClient for the project's tracking server and registry (the same store)."""
    disable_telemetry()
    from mlflow import MlflowClient

    uri = tracking_uri(project)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, project: Project) -> str:
    """The id of the project's experiment (named after the project), created on first use."""
    from mlflow.exceptions import MlflowException

    name = project.config.project
    with mlflow_errors(f"open experiment {name!r}"):
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(name, artifact_location=artifact_location(project)))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            again = client.get_experiment_by_name(name)  # another process created it first
            if again is None:
                raise
            return str(again.experiment_id)


def error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


@contextmanager
def mlflow_errors(action: str) -> Iterator[None]:
    """Turn MLflow failures other than 'not found' into ExternalToolError with a fix."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ExternalToolError(
            f"MLflow failed to {action}: {exc.message}",
            fix="check tracking.uri in noria.yaml and that the MLflow server or database is reachable",
        ) from exc
