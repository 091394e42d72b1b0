"""One pure-ASGI middleware for every request: request id, body size limit, metrics.

Starlette's ``BaseHTTPMiddleware`` costs tens of microseconds a request; this one costs a
few. It gives each request an id (the client's ``X-Request-ID`` if it is a short safe token,
else a fresh random one), refuses bodies over the limit with 413 (by ``Content-Length`` before
reading, and by counting for chunked bodies), and records latency and status per endpoint.
The endpoints in ``direct`` ((method, path) -> ASGI callable; POST /predict) it calls itself,
skipping Starlette's exception middleware and router; every other request goes down the stack.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from noria.serving.errors import ServingHTTPError, error_response
from noria.serving.metrics import ServingMetrics

if TYPE_CHECKING:
    from starlette.requests import Request

REQUEST_ID = "noria.request_id"
STARTED = "noria.started"
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def new_request_id() -> str:
    # 64 random bits from the process's Mersenne Twister (seeded from the OS, reseeded in forked
    # workers): an id, not a secret. os.urandom is a system call that lets go of the GIL, and with
    # the online lookup running Python in a worker thread, taking it back could stall the request.
    return f"{random.getrandbits(64):016x}"


class ServingMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServingMetrics,
        max_body_bytes: int,
        direct: Mapping[tuple[str, str], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.direct = direct if direct is not None else {}
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id: str | None = None
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _SAFE_ID.match(value):
                request_id = value.decode("ascii")
            elif name == b"content-length":
                length = value
        request_id = request_id or new_request_id()
        scope[REQUEST_ID] = request_id
        scope[STARTED] = started
        path: str = scope["path"]
        status_holder = [500]
        id_header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            response = error_response(
                413,
                f"the body is larger than {self.max_body} bytes",
                request_id,
                fix="send fewer rows per request (serving.max_body_bytes sets the limit)",
            )
            await response(scope, receive, send_with_id)
            self.metrics.observe_request(path, 413, time.perf_counter() - started)
            return

        seen = [0]
        limit = self.max_body

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise ServingHTTPError(413, f"the body is larger than {limit} bytes")
            return message

        app = self.direct.get((scope["method"], path), self.app)
        try:
            await app(scope, counting_receive if length is None else receive, send_with_id)
        finally:
            self.metrics.observe_request(path, status_holder[0], time.perf_counter() - started)


def request_id_of(request: Request) -> str:
    """The request's id (set by the middleware; a new one if it did not run)."""
    return str(request.scope.get(REQUEST_ID) or new_request_id())


__all__ = ["REQUEST_ID", "STARTED", "ServingMiddleware", "new_request_id", "request_id_of"]
