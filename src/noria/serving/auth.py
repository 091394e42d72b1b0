"""API keys: bearer tokens compared by their SHA-256 digest, in constant time.

Raw keys are read once at start-up from the variable named by ``serving.api_keys_env``
(default ``NORIA_API_KEYS``, comma-separated) and kept only as digests; ``serving.api_key_hashes``
holds digests written as ``sha256:<hex>`` (make one with :func:`hash_key`). A presented
token is hashed and compared with every digest using :func:`hmac.compare_digest`, so neither
the comparison nor the number of keys checked leaks which bytes matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from noria.errors import ConfigError
from noria.serving.config import ServingConfig

MIN_KEY_LENGTH = 16


def hash_key(raw: str) -> str:
    """``sha256:<hex>`` of a raw key, the form ``serving.api_key_hashes`` holds."""
    return "sha256:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiKeys:
    """The accepted keys, as digests only."""

    def __init__(self, digests: list[bytes]) -> None:
        self._digests = list(digests)

    @classmethod
    def from_config(cls, config: ServingConfig, environ: Mapping[str, str]) -> ApiKeys:
        digests = [bytes.fromhex(h.removeprefix("sha256:")) for h in config.api_key_hashes]
        raw = environ.get(config.api_keys_env, "")
        for key in (k.strip() for k in raw.split(",")):
            if not key:
                continue
            if len(key) < MIN_KEY_LENGTH:
                raise ConfigError(
                    f"an API key in {config.api_keys_env} is {len(key)} characters long; "
                    f"keys must have at least {MIN_KEY_LENGTH}",
                    fix='make a strong key, e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"',
                )
            digests.append(hashlib.sha256(key.encode("utf-8")).digest())
        return cls(digests)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, authorization: str | None) -> bool:
        """True if ``Authorization: Bearer <key>`` carries one of the keys."""
        if not authorization or not self._digests:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        presented = hashlib.sha256(token.strip().encode("utf-8")).digest()
        found = False
        for digest in self._digests:  # no early exit: the time does not depend on which key matched
            found |= hmac.compare_digest(presented, digest)
        return found


__all__ = ["MIN_KEY_LENGTH", "ApiKeys", "hash_key"]
