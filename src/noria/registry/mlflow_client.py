"""Where MLflow lives for a project, and a client pointed at it.

The tracking URI and artifact location come from ``tracking:`` in noria.yaml. Relative
paths (``sqlite:///.noria/mlflow.db``, ``.noria/mlartifacts``) resolve against the project
folder, never the current directory, so every command sees the same store.

An MLflow *server* (``http(s)://``) is probed once per process before the first call: when
nothing answers, MLflow's own client would retry for minutes; Noria stops within seconds
with an error naming the URI, where it was configured, and how to fix it.
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import ParseResult, urlparse, urlunparse

from noria.errors import ExternalToolError, NoriaError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from mlflow import MlflowClient

    from noria.config import Project

_SQLITE = "sqlite:///"
PROBE_TIMEOUT_S = 5.0  # a server that cannot answer /health within this is treated as down
_REACHABLE: set[str] = set()  # servers that answered in this process (probed once each)
_CREATED: set[str] = set()  # SQLite databases this process has opened once (created if new)
SQLITE_LOCK_TIMEOUT_S = 120.0  # the longest wait for another process creating the same database


def disable_telemetry() -> None:
    """MLflow must never phone home from Noria (set before MLflow is imported or started).

    It also keeps MLflow off Noria's stdout unless the user asked otherwise: with a tracking
    server, MLflow prints "View run ... at: URL" when a run ends, which would corrupt
    ``--json`` output; and the artifact download bar would clutter service logs.
    """
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _quiet()


def _quiet() -> None:
    """MLflow's housekeeping is not the user's business: its SQLite store logs "Creating initial MLflow
    database tables..." at INFO on every new process, and SQLAlchemy warns about a loader strategy
    MLflow uses (nothing a Noria user can act on). Real warnings and errors still show."""
    import logging
    import warnings

    for name in ("mlflow.store.db.utils", "alembic.runtime.migration", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated")


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


def _host(parts: ParseResult) -> str:
    """``host[:port]`` of a parsed URL, IPv6 in brackets, without any ``user:password@``."""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return host + (f":{parts.port}" if parts.port else "")


def redact(uri: str) -> str:
    """``uri`` without a password (``http://user:secret@host`` -> ``http://user:***@host``)."""
    parts = urlparse(uri)
    if parts.password is None:
        return uri
    return urlunparse(parts._replace(netloc=f"{parts.username}:***@{_host(parts)}"))


def check_server(uri: str, *, configured_in: str = "tracking.uri", timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise ExternalToolError at once if the MLflow server at ``uri`` does not answer.

    Any HTTP reply (even 401/403/404) counts as an answer; so does a TLS problem, which
    MLflow's client reports itself with its own certificate settings. Only a name that does
    not resolve, a refused connection or silence for ``timeout`` seconds fail here, and a
    server with authentication that refuses the credentials (see :func:`_check_credentials`).
    Other URIs (SQLite, PostgreSQL, folders) are not probed.
    """
    parts = urlparse(uri)
    if parts.scheme not in ("http", "https") or uri in _REACHABLE:
        return
    health = urlunparse(parts._replace(netloc=_host(parts), path=parts.path.rstrip("/") + "/health", query=""))
    try:
        with urllib.request.urlopen(health, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # the server answered
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        why = _unreachable(reason, timeout)
        if why is not None:
            raise ExternalToolError(
                f"cannot reach the MLflow tracking server at {redact(uri)} ({configured_in}): {why}",
                fix=(
                    "start the MLflow server (deploy/compose: `docker compose up -d mlflow`), or point "
                    "tracking.uri at a running one: NORIA_TRACKING__URI=http://HOST:5000, or a profile "
                    "whose tracking.uri is reachable from here (--profile local uses SQLite)"
                ),
            ) from None
    _check_credentials(parts, uri, configured_in, timeout)
    _REACHABLE.add(uri)


AUTH_FIX = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an MLflow user's name and password "
    "(or MLFLOW_TRACKING_TOKEN); on Kubernetes they come from the Secret noria-secrets (keys "
    "mlflow-username, mlflow-password), in deploy/compose from MLFLOW_ADMIN_PASSWORD in .env "
    "(docs/deploying.md, 'Who may talk to what')"
)


def _auth_header() -> dict[str, str]:
    """The ``Authorization`` header MLflow's own client sends, from the same environment variables."""
    import base64

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def _check_credentials(parts: ParseResult, uri: str, configured_in: str, timeout: float) -> None:
    """Raise ExternalToolError when a server with authentication (``mlflow server --app-name
    basic-auth``) refuses the credentials, naming the variables to set; MLflow's own client would
    report it as an opaque error code on the first call. Any other answer passes: a server without
    authentication, a permission error on one resource (403, reported by the call itself), TLS."""
    search = parts.path.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    url = urlunparse(parts._replace(netloc=_host(parts), path=search, query="max_results=1"))
    header = _auth_header()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=header), timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code != 401:
            return
    except (urllib.error.URLError, OSError):
        return  # the server answered /health: anything else is MLflow's client's to report
    if not header:
        what = "asks for a user name and password, and none is set"
    elif "Bearer" in header["Authorization"]:
        what = "rejected the token in MLFLOW_TRACKING_TOKEN"
    else:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        what = f"rejected the user {user!r} (MLFLOW_TRACKING_USERNAME) with MLFLOW_TRACKING_PASSWORD"
    raise ExternalToolError(
        f"the MLflow tracking server at {redact(uri)} ({configured_in}) {what} (HTTP 401)", fix=AUTH_FIX
    )


def _unreachable(reason: object, timeout: float) -> str | None:
    """Why nothing answered, or None when something did (a TLS handshake is an answer)."""
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return None
    if isinstance(reason, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (nothing listens on that port)"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError):
        return reason.strerror or type(reason).__name__
    return str(reason)


def get_client(project: Project) -> MlflowClient:
    """An MlflowClient for the project's tracking server and registry (the same store).

    A tracking server (``http(s)://``) must answer first, see :func:`check_server`.
    """
    disable_telemetry()
    uri = tracking_uri(project)
    check_server(uri, configured_in=_where(project, ("tracking", "uri")))
    from mlflow import MlflowClient

    if is_remote(uri):
        load_request_header_providers()
    if uri.startswith(_SQLITE) and uri not in _CREATED:
        with _sqlite_creation_lock(uri):
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # creates or migrates the database
            with mlflow_errors("open the model registry"):
                client.search_registered_models(max_results=1)  # the registry's side of it too
        _CREATED.add(uri)
        return client
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def file_lock(path: Path, timeout_s: float, busy: Callable[[], NoriaError]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing), waiting at most ``timeout_s``;
    past that, raise ``busy()``. Used for the promotion lock and the SQLite creation lock."""
    import fcntl
    import time

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise busy() from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _sqlite_creation_lock(uri: str) -> Iterator[None]:
    """Hold a file lock beside a SQLite tracking database while this process first opens it.

    MLflow creates (and migrates) a new SQLite database on first use; two processes doing that at
    once collide (``table _alembic_tmp_experiments already exists``), e.g. two pipelines started
    together. Under the lock one creates it and the others find it made.
    """
    rest = uri[len(_SQLITE) :]
    if not rest or rest == ":memory:":
        yield
        return
    db = Path(rest)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock = db.with_name(db.name + ".lock")

    def busy() -> NoriaError:
        return ExternalToolError(
            f"another process held {lock} for over {SQLITE_LOCK_TIMEOUT_S:g} s while opening the MLflow database {db}",
            fix="wait for the other noria command to finish, then retry",
        )

    with file_lock(lock, SQLITE_LOCK_TIMEOUT_S, busy):
        yield


def load_request_header_providers() -> None:
    """Load MLflow's request-header plugins now, leaving Feast's out unless Feast is loaded already.

    Feast registers an ``mlflow.request_header_provider`` plugin, and MLflow loads every such
    plugin on its first REST call: that imports all of Feast (about 10 s of CPU, its typeguard
    decorators recompile hundreds of functions) into every process that talks to a tracking
    server, each pipeline step included, though nothing there uses Feast. Feast's provider
    only adds a header inside Feast's own MLflow data source, which Noria does not use. In a
    process that has imported Feast already (a service with an online store) it loads as usual.
    """
    import sys

    if "mlflow.tracking.request_header.registry" in sys.modules or "feast" in sys.modules:
        return
    from mlflow.utils import plugins

    original = plugins.get_entry_points

    def without_feast(group: str) -> list[EntryPoint]:
        found = list(original(group))
        if group != "mlflow.request_header_provider":
            return found
        return [entry for entry in found if not entry.value.startswith("feast.")]

    plugins.get_entry_points = without_feast
    try:
        import mlflow.tracking.request_header.registry  # noqa: F401  (registers the providers, once)
    finally:
        plugins.get_entry_points = original


def _where(project: Project, loc: tuple[str, ...]) -> str:
    """``tracking.uri from noria.yaml:120`` / ``... from environment variable NORIA_TRACKING__URI``."""
    key = ".".join(loc)
    source = getattr(project, "sources", {}).get(loc)
    profile = f", profile {project.profile!r}" if getattr(project, "profile", "local") != "local" else ""
    return f"{key} from {source}{profile}" if source else f"{key}{profile}"


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
        if error_code(exc) in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            raise ExternalToolError(
                f"MLflow refused to {action}: {exc.message}",
                fix=AUTH_FIX
                if error_code(exc) == "UNAUTHENTICATED"
                else "give the MLflow user of MLFLOW_TRACKING_USERNAME the EDIT or MANAGE permission on "
                "the project's experiment and registered models (MLflow's permissions API), or use the admin user",
            ) from exc
        raise ExternalToolError(
            f"MLflow failed to {action}: {exc.message}",
            fix="check tracking.uri in noria.yaml and that the MLflow server or database is reachable",
        ) from exc
