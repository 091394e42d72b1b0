"""The service for a moment, in this process: what the demo and notebooks use.

    with running_service(project) as service:
        answer = service.predict(request)           # through HTTP, with the key
        print(describe(request, answer))

The server listens on 127.0.0.1 on a free port, with a fresh random API key that never leaves
the process; it stops (and flushes the prediction log) when the block ends.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from noria.errors import ExternalToolError

if TYPE_CHECKING:
    from noria.config import Project
    from noria.serving.config import ServingConfig


@dataclass
class LocalService:
    url: str
    key: str

    def predict(self, body: Mapping[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """POST /predict (one request or a batch) and return the JSON answer."""
        import httpx

        r = httpx.post(f"{self.url}/predict", json=dict(body), headers=self.headers, timeout=timeout)
        r.raise_for_status()
        return dict(r.json())

    def get(self, path: str) -> dict[str, Any]:
        import httpx

        return dict(httpx.get(f"{self.url}{path}", headers=self.headers, timeout=30).json())

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_service(
    project: Project, config: ServingConfig | None = None, *, ready_timeout: float = 120.0
) -> Iterator[LocalService]:
    """Run the service on 127.0.0.1 in a background thread until the block ends."""
    import httpx
    import uvicorn

    from noria.serving.app import create_app
    from noria.serving.config import serving_config

    key = secrets.token_urlsafe(24)
    cfg = (config or serving_config(project)).model_copy(update={"host": "127.0.0.1", "port": _free_port()})
    app = create_app(project, config=cfg, environ={cfg.api_keys_env: key})
    server = uvicorn.Server(
        uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False, loop="asyncio")
    )
    thread = threading.Thread(target=server.run, name="noria-local-service", daemon=True)
    thread.start()
    service = LocalService(f"http://{cfg.host}:{cfg.port}", key)
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            try:
                ready = httpx.get(f"{service.url}/ready", timeout=2)
                if ready.status_code == 200:
                    break
                problems = "; ".join(ready.json().get("problems", []))
            except httpx.HTTPError as exc:
                problems = str(exc)
            if time.monotonic() > deadline or not thread.is_alive():
                raise ExternalToolError(
                    f"the local service did not become ready: {problems}",
                    fix="check that the model alias exists (noria models list) and the online store is materialized",
                )
            time.sleep(0.2)
        yield service
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def describe(request: Mapping[str, Any], answer: Mapping[str, Any]) -> str:
    """A prediction as a few lines a person reads: the request, the answer, why, and any warning."""
    shown = ", ".join(f"{k}={v}" for k, v in request.items() if k != "features")
    if "probabilities" in answer:
        said = f"{answer['class']} ({100 * float(answer['probabilities'][answer['class']]):.0f}%)"
    elif "prediction" in answer:
        said = f"{float(answer['prediction']):.4g} {answer.get('unit') or ''}".rstrip()
    else:
        decision = next((k for k, v in answer.items() if isinstance(v, bool) and k != "flag"), "decision")
        said = f"{100 * float(answer['probability']):.0f}% ({decision}: {'yes' if answer.get(decision) else 'no'})"
    lines = [f"{shown}: {said}; model {answer['model_name']} v{answer['model_version']}"]
    for item in (answer.get("explanation") or {}).get("contributions", []):
        lines.append(f"    - {item['text']}")
    ood = answer.get("out_of_distribution") or {}
    if ood.get("flag"):
        lines.append("    ! unusual input: " + "; ".join(r["detail"] for r in ood.get("reasons", [])))
    return "\n".join(lines)


__all__ = ["LocalService", "describe", "running_service"]
