"""``noria serve``: run the service under uvicorn (uvloop + httptools, no access log).

Before anything listens, the security rules are checked: without an API key the service
refuses to start unless ``insecure_local`` is asked for explicitly, and then it listens on a
loopback address only. The model alias is resolved first too, so a typo fails at once with
the registry's message instead of an unready service.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from noria.errors import ConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from noria.config import Project
    from noria.serving.config import ServingConfig

log = logging.getLogger("noria.serving")
CONFIG_ENV = "NORIA_SERVE_CONFIG"  # the resolved serving config, for worker processes
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's shared folder of several workers' metrics


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_security(config: ServingConfig, environ: Mapping[str, str], *, insecure_local: bool) -> ServingConfig:
    """The config to serve with, or ConfigError if it would expose the model without a key."""
    from noria.serving.auth import ApiKeys

    keys = ApiKeys.from_config(config, environ)
    if keys:
        return config
    if not insecure_local:
        raise ConfigError(
            f"no API key configured: set {config.api_keys_env} (comma-separated keys) or serving.api_key_hashes",
            fix=f"export {config.api_keys_env}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
            "or pass --insecure-local to try it out on this machine only",
        )
    if not is_loopback(config.host):
        raise ConfigError(
            f"--insecure-local serves on a loopback address only, not on {config.host!r}",
            fix="use --host 127.0.0.1, or configure API keys to listen on other addresses",
        )
    log.warning("serving WITHOUT API keys on %s (--insecure-local): /predict is open, /reload is off", config.host)
    return config.model_copy(update={"require_key_for_predict": False})


def serve(
    project: Project,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    insecure_local: bool = False,
    environ: Mapping[str, str] | None = None,
    log_level: str = "info",
    config: ServingConfig | None = None,
) -> None:
    """Start the service for ``project`` and block until it is stopped (SIGINT/SIGTERM flush the log).

    ``config`` replaces the project's ``serving:`` section (library use); the arguments override both.
    """
    import uvicorn

    from noria.serving.config import serving_config
    from noria.serving.sources import RegistryModelSource

    env = dict(os.environ if environ is None else environ)
    updates: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None}
    cfg = (config or serving_config(project)).model_copy(update=updates)
    cfg = check_security(cfg, env, insecure_local=insecure_local)
    RegistryModelSource(project, cfg.model or project.config.model.name).resolve(cfg.alias)  # fail fast
    options: dict[str, Any] = {
        "host": cfg.host,
        "port": cfg.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": log_level,
        "timeout_graceful_shutdown": 30,
    }
    if cfg.workers == 1:
        from noria.serving.app import create_app

        uvicorn.run(create_app(project, config=cfg, environ=env), **options)
        return
    # Several processes: each builds the app from the environment: the project folder, profile
    # and overrides, and the very serving config resolved here (a library caller's ``config``,
    # the command's options, --insecure-local), so every worker serves what this one checked.
    os.environ["NORIA_PROJECT_DIR"] = str(project.root)
    os.environ["NORIA_PROFILE"] = project.profile
    os.environ[CONFIG_ENV] = cfg.model_dump_json()
    with _shared_metrics():
        uvicorn.run("noria.serving.server:app_from_environment", factory=True, workers=cfg.workers, **options)


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """One /metrics for all workers: prometheus_client's multi-process mode, in a fresh folder the
    workers inherit and that is removed when they have stopped. Without it each worker answered a
    scrape with its own counts, so the service's counters jumped back and forth between workers.
    A PROMETHEUS_MULTIPROC_DIR already set is not reused: importing Feast sets one of its own."""
    from noria.serving.metrics import SHARED_ENV

    if os.environ.get(SHARED_ENV):  # serve() inside a worker of another serve(): its folder holds
        yield
        return
    from unittest import mock  # patch.dict: the standard library's set-and-restore of a mapping

    folder = tempfile.mkdtemp(prefix="noria-metrics-")
    try:
        with mock.patch.dict(os.environ, {MULTIPROC_ENV: folder, SHARED_ENV: folder}):
            yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def app_from_environment() -> FastAPI:
    """The app for the project named by NORIA_PROJECT_DIR / NORIA_PROFILE (a uvicorn factory),
    with the serving config in NORIA_SERVE_CONFIG when ``serve`` put it there."""
    from noria.config import load_project
    from noria.serving.app import create_app
    from noria.serving.config import ServingConfig

    raw = os.environ.get(CONFIG_ENV)
    config = ServingConfig.model_validate_json(raw) if raw else None
    return create_app(load_project(), config=config)


__all__ = ["app_from_environment", "check_security", "is_loopback", "serve"]
