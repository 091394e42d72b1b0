"""S3 for every Noria client: parse ``s3://bucket/prefix``, build a boto3 client, turn failures into Noria errors.

The artifact store (``noria.pipelines``), the prediction log in object storage
(``noria.remote_log``), the monitoring records (``noria.monitoring.remote``) and the published
snapshot records (``noria.data.published``) all talk to S3 through this module, under one rule:

- **URL.** :func:`parse_url` splits ``s3://bucket/prefix`` (prefix without slashes at either
  end); anything else is a :class:`~noria.errors.ConfigError` naming the config key it came from.
- **Endpoint.** :func:`endpoint_url` picks it in this order: the value from config (e.g.
  ``pipelines.s3_endpoint_url``), then ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``,
  ``MLFLOW_S3_ENDPOINT_URL`` (:data:`ENDPOINT_VARIABLES`, the first set wins); none means AWS
  itself. The AWS variables are the ones boto3 and DVC read; ``MLFLOW_S3_ENDPOINT_URL`` is what
  MLflow deployments (and Noria's Kubernetes manifests) often set alone.
- **Credentials and region** are never read here: each client gets a boto3 session of its own
  (:func:`client`), which reads boto3's usual chain when it is created (``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, the pod's role; ``AWS_DEFAULT_REGION``), not one
  frozen in boto3's default session. Timeouts are short and bounded, so a silent endpoint fails
  within seconds.
- **The data remote's own identity.** The DVC remote and the snapshot records beside it may live
  on another server, read with other keys, than every other S3 store: pre-production reads
  production's data remote with a read-only identity while its MLflow artifacts, pipeline store,
  prediction log and monitoring records stay on its own store (which the ``AWS_*`` variables
  name). :func:`data_endpoint` and :func:`data_identity` read :data:`DATA_VARIABLES`
  (``NORIA_DATA_S3_ENDPOINT_URL``, ``NORIA_DATA_S3_ACCESS_KEY_ID``,
  ``NORIA_DATA_S3_SECRET_ACCESS_KEY``); unset, the data remote is one more store like the others.
- **Errors.** :func:`error` maps a failure to a Noria error naming the store, its URL and
  endpoint, and the fix: no credentials, a missing bucket (``NoSuchBucket``), refused
  credentials (``AccessDenied``, ``InvalidAccessKeyId``, ...: :data:`DENIED`), an unreachable
  endpoint, anything else; :func:`errors` does it for a block.

boto3 is imported only when a client is made (it is the ``cluster`` extra); the module itself
needs the standard library and ``noria.errors`` only, so every layer may import it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from noria.errors import ConfigError, ExternalToolError, MissingExtraError, NoriaError

# Variables naming an S3-compatible endpoint, in the order they win (after the config value).
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
MAX_ATTEMPTS = 4  # per request, boto3's "standard" retry mode
# Error codes of credentials S3 refused (a missing key, a wrong secret, an expired token, a policy).
DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "403"}
)
MISSING = frozenset({"404", "NoSuchKey", "NotFound"})  # an object that is not there
INSTALL = "pip install 'noria[cluster]'"
_ENDPOINT_FIX_VARIABLES = "AWS_ENDPOINT_URL / MLFLOW_S3_ENDPOINT_URL"
# The data remote's own endpoint and keys (reserved names, see noria.config.RESERVED_ENV): set, they are
# used for the DVC remote and the snapshot records only; every other S3 user keeps reading AWS_*.
DATA_ENDPOINT_VARIABLE = "NORIA_DATA_S3_ENDPOINT_URL"
DATA_KEY_VARIABLE = "NORIA_DATA_S3_ACCESS_KEY_ID"
DATA_SECRET_VARIABLE = "NORIA_DATA_S3_SECRET_ACCESS_KEY"
DATA_VARIABLES = (DATA_ENDPOINT_VARIABLE, DATA_KEY_VARIABLE, DATA_SECRET_VARIABLE)


@dataclass(frozen=True)
class Identity:
    """An S3 access key and its secret (the secret is kept out of ``repr``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)


def data_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The data remote's own endpoint (``NORIA_DATA_S3_ENDPOINT_URL``), None when unset."""
    env = os.environ if environ is None else environ
    return env.get(DATA_ENDPOINT_VARIABLE, "").strip() or None


def data_identity(environ: Mapping[str, str] | None = None) -> Identity | None:
    """The data remote's own keys (``NORIA_DATA_S3_ACCESS_KEY_ID`` / ``..._SECRET_ACCESS_KEY``), None when unset.

    One of the two without the other is a :class:`ConfigError` naming both.
    """
    env = os.environ if environ is None else environ
    key = env.get(DATA_KEY_VARIABLE, "").strip()
    secret = env.get(DATA_SECRET_VARIABLE, "").strip()
    if not key and not secret:
        return None
    if not key or not secret:
        given, missing = (DATA_KEY_VARIABLE, DATA_SECRET_VARIABLE) if key else (DATA_SECRET_VARIABLE, DATA_KEY_VARIABLE)
        raise ConfigError(
            f"{given} is set but {missing} is not: the data remote's identity needs both",
            fix=f"set {missing} too (the noria-secrets keys s3-data-access-key-id / s3-data-secret-access-key), "
            "or unset both to read the data remote with the AWS_* credentials",
        )
    return Identity(key, secret)


def parse_url(url: str, key: str, example: str = "s3://noria-data/PREFIX") -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; a :class:`ConfigError` naming the config ``key`` otherwise."""
    text = url.strip()
    if not text.startswith("s3://"):
        raise ConfigError(
            f"{key}: {url!r} is not an s3:// URL",
            fix=f"write s3://BUCKET/PREFIX (e.g. {example}), or leave it unset to keep the files local",
        )
    bucket, _, prefix = text.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"{key}: {url!r} names no bucket", fix="write s3://BUCKET/PREFIX")
    return bucket, prefix.strip("/")


def endpoint_url(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint to use: ``explicit`` (config), else the first of :data:`ENDPOINT_VARIABLES` set; None: AWS."""
    if explicit and explicit.strip():
        return explicit.strip()
    env = os.environ if environ is None else environ
    for var in ENDPOINT_VARIABLES:
        value = env.get(var, "").strip()
        if value:
            return value
    return None


def require_boto3(purpose: str) -> None:
    """Fail now, naming the extra, if boto3 is not installed (``purpose``: "the prediction log in s3://...")."""
    import importlib.util

    if importlib.util.find_spec("boto3") is None:
        raise MissingExtraError(f"{purpose} needs boto3", fix=INSTALL)


def client(
    endpoint: str | None,
    *,
    purpose: str,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
    max_attempts: int = MAX_ATTEMPTS,
    identity: Identity | None = None,
) -> Any:
    """A boto3 S3 client for ``endpoint`` (None: AWS), in a session of its own (credentials read now).

    ``purpose`` names what needs it, for the error when boto3 is missing; ``identity``: keys to use
    instead of boto3's chain (the data remote's own, :func:`data_identity`).
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise MissingExtraError(f"{purpose} needs boto3", fix=INSTALL) from None
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )
    keys = (
        {"aws_access_key_id": identity.access_key_id, "aws_secret_access_key": identity.secret_access_key}
        if identity is not None
        else {}
    )
    return boto3.session.Session(**keys).client("s3", endpoint_url=endpoint, config=config)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError (also when wrapped by boto3's upload helper); "" if none."""
    for candidate in (exc, exc.__cause__, exc.__context__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
    text = str(exc)  # S3UploadFailedError keeps only the message: "... (NoSuchBucket) when calling ..."
    for code in ("NoSuchBucket", *sorted(DENIED)):
        if f"({code})" in text:
            return code
    return ""


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says the object is not there (a 404 of ``head_object`` / ``get_object``)."""
    return error_code(exc) in MISSING


@dataclass(frozen=True)
class Store:
    """One ``s3://bucket/prefix`` a Noria component uses, as its errors name it.

    ``what``: the store in words ("the artifact store"); ``key``: the config key holding the URL;
    ``endpoint_key``: the config key of the endpoint, if there is one; ``access``: what the
    component needs the credentials to do ("read", "read and write"); ``credentials``: the variables
    its keys come from.
    """

    url: str
    bucket: str
    prefix: str
    endpoint: str | None
    what: str
    key: str
    endpoint_key: str | None = None
    access: str = "read and write"
    credentials: str = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"  # where its keys come from, for the fix

    def where(self) -> str:
        return f"{self.url} (endpoint {self.endpoint or 'AWS'})"


def error(exc: BaseException, store: Store, action: str, *, config_errors: bool = True) -> NoriaError:
    """``exc`` (raised while trying to ``action``) as a Noria error naming ``store`` and the fix.

    - no credentials: a :class:`ConfigError` (set the AWS variables);
    - ``NoSuchBucket``: a :class:`ConfigError` (create the bucket or fix the config key);
    - refused credentials (:data:`DENIED`): an :class:`ExternalToolError` naming the code;
    - an unreachable endpoint (connection refused, timeout, bad URL): an :class:`ExternalToolError`
      naming the endpoint and where it is set;
    - anything else: an :class:`ExternalToolError` with S3's message.

    ``config_errors=False`` makes the first two :class:`ExternalToolError` as well, for a caller
    that treats every S3 failure alike (a command a CronJob retries).
    """
    from botocore.exceptions import BotoCoreError, NoCredentialsError, PartialCredentialsError

    setting: type[NoriaError] = ConfigError if config_errors else ExternalToolError
    where = store.where()
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return setting(
            f"no S3 credentials to {action} in {store.what} {where}",
            fix="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or give the pod an IAM role)",
        )
    code = error_code(exc)
    if code == "NoSuchBucket":
        return setting(
            f"the bucket {store.bucket!r} of {store.what} {where} does not exist",
            fix=f"create it (`aws s3 mb s3://{store.bucket}`, or the stack's s3-init job) "
            f"or point {store.key} at an existing bucket",
        )
    if code in DENIED:
        return ExternalToolError(
            f"S3 refused to {action} in {store.what} {where}: {code}",
            fix=f"check {store.credentials} and that they may {store.access} s3://{store.bucket}/{store.prefix}",
        )
    if isinstance(exc, BotoCoreError):  # endpoint unreachable, timeouts, a bad endpoint URL
        settings = (
            f"{store.endpoint_key} (or {_ENDPOINT_FIX_VARIABLES})" if store.endpoint_key else _ENDPOINT_FIX_VARIABLES
        )
        return ExternalToolError(
            f"cannot reach the S3 endpoint {store.endpoint or 'of AWS'} to {action} in {store.url}: {exc}",
            fix=f"start the S3 server, or set {settings} to one this machine reaches",
        )
    return ExternalToolError(
        f"S3 failed to {action} in {store.what} {where}: {type(exc).__name__}: {exc}",
        fix="see the S3 server's message; retry once the server is healthy",
    )


@contextmanager
def errors(store: Store, action: str, *, config_errors: bool = True) -> Iterator[None]:
    """Raise S3 and network failures inside the block as :func:`error` maps them (other errors pass)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, S3UploadFailedError, BotoCoreError) as exc:
        raise error(exc, store, action, config_errors=config_errors) from exc


__all__ = [
    "CONNECT_TIMEOUT_S",
    "DATA_ENDPOINT_VARIABLE",
    "DATA_KEY_VARIABLE",
    "DATA_SECRET_VARIABLE",
    "DATA_VARIABLES",
    "DENIED",
    "ENDPOINT_VARIABLES",
    "MAX_ATTEMPTS",
    "MISSING",
    "READ_TIMEOUT_S",
    "Identity",
    "Store",
    "client",
    "data_endpoint",
    "data_identity",
    "endpoint_url",
    "error",
    "error_code",
    "errors",
    "is_missing",
    "parse_url",
    "require_boto3",
]
