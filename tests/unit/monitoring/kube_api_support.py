"""A stand-in for the Kubernetes API server's two endpoints a kubernetes-job retrain calls.

Mocked: the Kubernetes API server cannot run here (no cluster, no kind: no privileges for it).
It serves, over real HTTPS with a self-signed certificate, ``GET .../cronjobs/NAME`` and
``POST .../jobs`` the way the API server does (Status objects for 403 and 404, the created Job
with a uid and creationTimestamp), records every request, and writes the pod's service-account
folder (token, ca.crt, namespace) that the code reads.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "test-service-account-token"
USER = "system:serviceaccount:{ns}:noria-monitoring"


def _self_signed(folder: Path, addresses: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@dataclass
class FakeApi:
    """What the stand-in serves and what it was asked."""

    namespace: str
    cronjobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    forbid: set[str] = field(default_factory=set)  # "get cronjobs" / "create jobs": answered 403
    requests: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    account: Path = Path()
    environ: dict[str, str] = field(default_factory=dict)

    def status(self, code: int, reason: str, message: str) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    prefix = f"/apis/batch/v1/namespaces/{api.namespace}/"
    user = USER.format(ns=api.namespace)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body: Any = None) -> bool:
            api.requests.append(
                {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
            )
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, api.status(401, "Unauthorized", "Unauthorized"))
                return False
            return True

        def do_GET(self) -> None:
            if not self._record():
                return
            name = self.path.removeprefix(prefix + "cronjobs/")
            if not self.path.startswith(prefix + "cronjobs/"):
                self._reply(404, api.status(404, "NotFound", "the server could not find the requested resource"))
            elif "get cronjobs" in api.forbid:
                message = (
                    f'cronjobs.batch "{name}" is forbidden: User "{user}" cannot get resource "cronjobs" in API group '
                    f'"batch" in the namespace "{api.namespace}"'
                )
                self._reply(403, api.status(403, "Forbidden", message))
            elif name not in api.cronjobs:
                self._reply(404, api.status(404, "NotFound", f'cronjobs.batch "{name}" not found'))
            else:
                self._reply(200, api.cronjobs[name])

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
            if not self._record(body):
                return
            if self.path != prefix + "jobs":
                self._reply(404, api.status(404, "NotFound", "the server could not find the requested resource"))
            elif "create jobs" in api.forbid:
                message = (
                    f'jobs.batch is forbidden: User "{user}" cannot create resource "jobs" in API group "batch" '
                    f'in the namespace "{api.namespace}"'
                )
                self._reply(403, api.status(403, "Forbidden", message))
            else:
                created = copy.deepcopy(body)
                created["metadata"] |= {
                    "uid": str(uuid.uuid4()),
                    "creationTimestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                api.jobs.append(created)
                self._reply(201, created)

    return Handler


@contextmanager
def fake_api(folder: Path, namespace: str = "noria", addresses: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[FakeApi]:
    """The stand-in, listening on 127.0.0.1 over HTTPS, with the pod's service-account folder.

    ``addresses``: the IPs its certificate is for (a pod reaches it at the API service's address).
    """
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = _self_signed(folder, addresses)
    account = folder / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)
    (account / "ca.crt").write_bytes(cert.read_bytes())
    (account / "namespace").write_text(namespace)
    api = FakeApi(namespace=namespace, account=account)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    api.environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.server_address[1])}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
