"""Everything monitoring knows about the project's model, as one JSON-ready dict.

What ``noria monitor show --json`` prints and the console's monitoring page draws: the windows of
the prediction log (with their row counts), every drift and delayed-label performance record of
the model, every retraining decision, and the review queues on disk (rows per window).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noria.monitoring.store import MonitoringStore

if TYPE_CHECKING:
    from noria.config import Project


def monitoring_summary(project: Project) -> dict[str, Any]:
    """The model's windows, drift, performance, decisions and review queues (oldest first)."""
    import pyarrow.parquet as pq

    from noria.monitoring.window import windows_in_log

    name = project.config.model.name
    store = MonitoringStore.of(project)
    folder = store.root / "review"
    queues = {
        path.stem: pq.ParquetFile(path).metadata.num_rows
        for path in sorted(folder.glob("*.parquet") if folder.is_dir() else [])
    }
    return {
        "model_name": name,
        "windows": windows_in_log(project),
        "drift": [r for r in store.records("drift") if r.get("model_name") == name],
        "performance": [r for r in store.records("performance") if r.get("model_name") == name],
        "decisions": [d for d in store.decisions() if d.get("model_name", name) in (name, "")],
        "review_queues": queues,
    }


__all__ = ["monitoring_summary"]
