"""The errors the pipeline engine raises; each is a :mod:`noria.errors` subclass."""

from __future__ import annotations

from noria.errors import ConfigError, DataError, NoriaError, NotFoundError


class PipelineDefinitionError(ConfigError):
    """A pipeline's graph is wrong: a cycle, a missing input, a duplicate name, a bad parameter."""


class PipelineNotFoundError(NotFoundError):
    """No pipeline is registered (or importable) under the given name."""


class ArtifactNotFoundError(NotFoundError):
    """An artifact or the record of an upstream step is missing from the artifact store."""


class ArtifactTypeError(DataError):
    """A step returned a value no serializer knows how to store (pickle is never used)."""


class StepFailedError(NoriaError):
    """A step's own code raised; the original exception is chained as ``__cause__``."""

    exit_code = 8


__all__ = [
    "ArtifactNotFoundError",
    "ArtifactTypeError",
    "PipelineDefinitionError",
    "PipelineNotFoundError",
    "StepFailedError",
]
