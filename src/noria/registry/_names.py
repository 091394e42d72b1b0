"""Model names and references (``name``, ``name@alias``, ``name/version``), checked before use.

A model name ends up in file paths (lock files, download folders) and URLs, so it is
validated before it reaches any of them, by the rule :func:`noria.names.model_name_problem`
states (also applied to ``model.name`` in noria.yaml): letters, digits, ``.``, ``_`` and ``-``
only, no path separators, no ``..``, no leading dot, no control characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from noria.errors import ValidationError
from noria.names import MAX_MODEL_NAME_LENGTH, MODEL_NAME_FIX, model_name_problem

MAX_NAME_LENGTH = MAX_MODEL_NAME_LENGTH
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}")
CHAMPION = "champion"
CHALLENGER = "challenger"


class ModelNameError(ValidationError):
    """A model name, alias or version reference is malformed."""


def validate_model_name(name: str) -> str:
    """Return ``name`` unchanged if it is a safe model name, else raise :class:`ModelNameError`."""
    if not isinstance(name, str):
        raise ModelNameError(f"model name must be text, got {type(name).__name__}", fix=MODEL_NAME_FIX)
    problem = model_name_problem(name)
    if problem:
        raise ModelNameError(f"model name {name!r} is not allowed: {problem}", fix=MODEL_NAME_FIX)
    return name


def validate_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias) or re.fullmatch(r"v\d+|latest", alias, re.IGNORECASE):
        raise ModelNameError(
            f"alias {alias!r} is not allowed",
            fix="use a letter, then letters, digits, '_' or '-' (not 'latest' or 'v<N>'), e.g. 'champion'",
        )
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A pointer at one model version: by number, by alias, or (name only) the champion."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_version(text: str | int, name: str = "") -> int:
    """A version number as a positive integer, or :class:`ModelNameError` saying what was wrong."""
    value = str(text).strip()
    if not value.isdigit() or int(value) < 1:
        where = f" of model {name!r}" if name else ""
        raise ModelNameError(
            f"version {value!r}{where} is not a positive integer",
            fix="versions are numbers (1, 2, ...); model names cannot contain '/'; see `noria models list`",
        )
    return int(value)


def parse_model_ref(text: str, default_alias: str | None = CHAMPION) -> ModelRef:
    """Parse ``name``, ``name@alias`` or ``name/version`` (an optional ``models:/`` prefix is allowed).

    A bare name means ``name@<default_alias>`` (the champion), or the name alone when
    ``default_alias`` is None.
    """
    ref = text.strip().removeprefix("models:/")
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return ModelRef(validate_model_name(name), alias=validate_alias(alias))
    if "/" in ref:
        name, _, version = ref.partition("/")
        return ModelRef(validate_model_name(name), version=parse_version(version, name))
    return ModelRef(validate_model_name(ref), alias=default_alias)
