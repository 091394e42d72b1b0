"""Who may read the console and who may act through it.

Reading needs one of the service's API keys (serving's own check, :class:`noria.serving.auth.ApiKeys`:
``NORIA_API_KEYS`` or ``serving.api_key_hashes``) or an admin key. Actions that change state
(promote, rollback, reload, mark a review item) need an admin key, from the environment variable
``NORIA_ADMIN_KEYS`` (comma-separated, at least 16 characters each, hashed at start-up like the
service's keys). A browser presents its key once on ``/login``; it is kept in an HttpOnly,
SameSite=Strict cookie, so another site cannot send it. Scripts send ``Authorization: Bearer KEY``.

Without any key the console refuses to start unless ``insecure_local`` is asked for, and then it
listens on a loopback address only: every page is open to this machine, actions still need an
admin key (and are off when there is none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from noria.errors import ConfigError
from noria.serving.auth import ApiKeys
from noria.serving.config import ServingConfig

if TYPE_CHECKING:
    from fastapi import Request

ADMIN_KEYS_ENV = "NORIA_ADMIN_KEYS"
COOKIE = "noria_console_key"


@dataclass(frozen=True)
class Access:
    """The keys the console accepts."""

    read: ApiKeys
    admin: ApiKeys
    open_read: bool  # --insecure-local without keys: pages need no key

    def can_read(self, authorization: str | None) -> bool:
        return self.open_read or self.read.check(authorization) or self.admin.check(authorization)

    def can_act(self, authorization: str | None) -> bool:
        return self.admin.check(authorization)

    @property
    def actions_enabled(self) -> bool:
        return bool(self.admin)


def access_from(serving: ServingConfig, environ: Mapping[str, str], host: str, *, insecure_local: bool) -> Access:
    """The console's keys; ConfigError if it would show the project to anyone without one."""
    from noria.serving.server import is_loopback

    read = ApiKeys.from_config(serving, environ)
    admin = ApiKeys.from_config(ServingConfig(api_keys_env=ADMIN_KEYS_ENV), environ)
    if read or admin:
        return Access(read, admin, open_read=False)
    if not insecure_local:
        raise ConfigError(
            f"no API key configured: set {serving.api_keys_env} (read-only keys) or {ADMIN_KEYS_ENV} (admin keys)",
            fix=f"export {serving.api_keys_env}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
            "or pass --insecure-local to browse on this machine only",
        )
    if not is_loopback(host):
        raise ConfigError(
            f"--insecure-local serves on a loopback address only, not on {host!r}",
            fix="use --host 127.0.0.1, or configure API keys to listen on other addresses",
        )
    return Access(read, admin, open_read=True)


def presented(authorization: str | None, cookie: str | None) -> str | None:
    """The Authorization header to check: the request's own, or the login cookie's key as one."""
    if authorization:
        return authorization
    return f"Bearer {cookie}" if cookie else None


def request_key(request: Request) -> str | None:
    """The key a console request presents: its Authorization header, or the login cookie's."""
    return presented(request.headers.get("authorization"), request.cookies.get(COOKIE))


async def read_form(request: Request) -> Mapping[str, str]:
    """A posted form's fields (the login key, an action's choices; the first 64 KiB of the body)."""
    from urllib.parse import parse_qsl

    body = (await request.body())[:65536].decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


__all__ = ["ADMIN_KEYS_ENV", "COOKIE", "Access", "access_from", "presented", "read_form", "request_key"]
