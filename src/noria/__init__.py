"""Noria: the MLOps loop - data, features, training, registry, serving, monitoring,
retraining - on a laptop and on existing engines with the same code.

The public API is re-exported here and imported lazily, so that ``import noria`` (and
``noria --help``) stays fast: pandas, DVC, MLflow and Feast load only when used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "NoriaConfig": "noria.config",
    "Project": "noria.config",
    "load_project": "noria.config",
    "NoriaError": "noria.errors",
    "ConfigError": "noria.errors",
    "DataError": "noria.errors",
    "NotFoundError": "noria.errors",
    "IngestResult": "noria.data.ingest",
    "ingest": "noria.data.ingest",
    "Snapshot": "noria.data.snapshots",
    "SnapshotRecord": "noria.data.snapshots",
    "list_snapshots": "noria.data.snapshots",
    "open_snapshot": "noria.data.snapshots",
    "init_project": "noria.scaffold",
}

__all__ = [
    "ConfigError",
    "DataError",
    "IngestResult",
    "NoriaConfig",
    "NoriaError",
    "NotFoundError",
    "Project",
    "Snapshot",
    "SnapshotRecord",
    "__version__",
    "ingest",
    "init_project",
    "list_snapshots",
    "load_project",
    "open_snapshot",
]

if TYPE_CHECKING:
    from noria.config import NoriaConfig, Project, load_project
    from noria.data.ingest import IngestResult, ingest
    from noria.data.snapshots import Snapshot, SnapshotRecord, list_snapshots, open_snapshot
    from noria.errors import ConfigError, DataError, NoriaError, NotFoundError
    from noria.scaffold import init_project


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'noria' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
