"""``noria ui``: run the console under uvicorn, after the access rules are checked."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from noria.config import Project

DEFAULT_PORT = 5000


def console_app(
    project: Project,
    *,
    host: str = "127.0.0.1",
    insecure_local: bool = False,
    serving_url: str | None = None,
    mlflow_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    warm: bool = False,
) -> FastAPI:
    """The console app for ``project``; ConfigError if it would be open to anyone without a key."""
    from noria.console.app import create_app
    from noria.console.auth import access_from
    from noria.registry.mlflow_client import is_remote, tracking_uri
    from noria.serving.config import serving_config

    env = dict(os.environ if environ is None else environ)
    access = access_from(serving_config(project), env, host, insecure_local=insecure_local)
    uri = tracking_uri(project)
    if mlflow_url is None and is_remote(uri):
        mlflow_url = uri  # the project's MLflow server is its UI
    return create_app(project, access, serving_url=serving_url, mlflow_url=mlflow_url, warm=warm)


def serve_console(
    project: Project,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    insecure_local: bool = False,
    serving_url: str | None = None,
    mlflow_url: str | None = None,
    log_level: str = "warning",
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the console until stopped (Ctrl-C); ``announce`` gets its URL once the keys are checked."""
    import uvicorn

    app = console_app(
        project, host=host, insecure_local=insecure_local, serving_url=serving_url, mlflow_url=mlflow_url, warm=True
    )
    if announce is not None:
        announce(console_url(host, port))
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def console_url(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> str:
    return f"http://{host}:{port}/"


__all__ = ["DEFAULT_PORT", "console_app", "console_url", "serve_console"]
