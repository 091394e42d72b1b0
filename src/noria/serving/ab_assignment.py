"""A/B assignment: which model answers a request, the same one every time for the same key.

The key (a request field such as a customer or store id, or a header) is hashed with
the experiment name (BLAKE2b, not Python's per-process ``hash``): the result is a number in
[0, 1) that does not depend on the process, the worker or the day, so a key keeps its arm for
the whole experiment, across restarts and replicas (maturity item 60). Renaming the
experiment reshuffles the keys. Requests without a key go to the champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import blake2b
from typing import Any, Literal

from noria.serving.config import ABConfig

Arm = Literal["champion", "challenger"]
CHAMPION: Arm = "champion"
CHALLENGER: Arm = "challenger"
_SCALE = float(1 << 64)


def bucket(experiment: str, key: str) -> float:
    """The key's fixed position in [0, 1) for this experiment."""
    digest = blake2b(f"{experiment}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class Router:
    def __init__(self, config: ABConfig, fields: dict[str, str] | None = None) -> None:
        """``fields`` maps request field names (on the wire) to the request model's attributes."""
        self.fraction = config.challenger_fraction
        self.experiment = config.experiment
        key = config.sticky_key or ""
        self.header = key[len("header:") :].lower() if key.startswith("header:") else None
        self.field = None if self.header or not key else (fields or {}).get(key, key)
        self._cache: dict[str, Arm] = {}

    @property
    def active(self) -> bool:
        return self.fraction > 0

    def key(self, request: Any, headers: Mapping[str, str]) -> str | None:
        if self.header is not None:
            value = headers.get(self.header)
            return value if value else None
        if self.field is None:
            return None
        value = getattr(request, self.field, None)
        return None if value is None else str(value)

    def arm(self, key: str | None) -> Arm:
        if key is None or self.fraction <= 0:
            return CHAMPION
        if self.fraction >= 1:
            return CHALLENGER
        found = self._cache.get(key)
        if found is None:
            found = CHALLENGER if bucket(self.experiment, key) < self.fraction else CHAMPION
            if len(self._cache) < 100_000:  # bounded: keys may be customer ids
                self._cache[key] = found
        return found


__all__ = ["CHALLENGER", "CHAMPION", "Arm", "Router", "bucket"]
