"""One exception tree for Noria.

Every error a user can cause is a :class:`NoriaError` with a headline (what went wrong,
naming the file, field or value) and a ``fix`` (what to do about it). The edges map the
tree to their own vocabulary: the CLI to exit codes (``exit_code``), the serving app to HTTP
status codes (``http_status``). Library code raises; it never prints or exits.
"""

from __future__ import annotations


class NoriaError(Exception):
    """Base of every error Noria raises on purpose."""

    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class ConfigError(NoriaError):
    """noria.yaml, a profile or a NORIA_* variable is wrong."""

    exit_code = 3
    http_status = 500


class ProjectNotFoundError(ConfigError):
    """No noria.yaml where one was expected."""


class MissingExtraError(NoriaError):
    """An optional backend was asked for but its extra is not installed."""

    exit_code = 6
    http_status = 501


class DataError(NoriaError):
    """Input data cannot be used as it is."""

    exit_code = 4
    http_status = 422


class SourceError(DataError):
    """A source file is missing, unreadable, empty or lacks declared columns."""


class ValidationError(DataError):
    """Data broke a declared rule in a way quarantine cannot absorb."""


class NotFoundError(NoriaError):
    """A named thing (snapshot, model, version, run) does not exist."""

    exit_code = 5
    http_status = 404


class SnapshotNotFoundError(NotFoundError):
    """No data snapshot matches the given id."""


class AmbiguousReferenceError(NotFoundError):
    """A short id matches more than one thing."""


class ExternalToolError(NoriaError):
    """A tool Noria drives (git, DVC, MLflow, Feast) failed."""

    exit_code = 7
    http_status = 502


__all__ = [
    "AmbiguousReferenceError",
    "ConfigError",
    "DataError",
    "ExternalToolError",
    "MissingExtraError",
    "NoriaError",
    "NotFoundError",
    "ProjectNotFoundError",
    "SnapshotNotFoundError",
    "SourceError",
    "ValidationError",
]
