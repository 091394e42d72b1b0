"""Noria: the MLOps loop - data, features, training, registry, serving, monitoring,
retraining - on a laptop and on existing engines with the same code.

The public API is re-exported here and imported lazily, so that ``import noria`` (and
``noria --help``) stays fast: pandas, DVC, MLflow and Feast load only when used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# LightGBM's OpenMP threads spin while they wait unless told otherwise, and on a shared or busy
# machine spinning threads make more threads far slower (an order of magnitude measured on a
# loaded 2-core host). Noria sets the passive policy for its own processes, before anything
# loads LightGBM, unless the user chose one (OpenMP reads it once, when LightGBM is loaded).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# public name -> module that defines it
from noria._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
