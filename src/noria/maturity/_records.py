"""The records a project's loop has left: registry, monitoring store, logs, deliveries, usage, snapshots.

Each view is read once, on first use, and never written. The registry is opened only when it
exists (a local SQLite file is not created by looking at it); MLflow is imported then and only
then. A record that cannot be read becomes an ``error`` text the checks show as evidence, never
an exception that stops the assessment.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.errors import NoriaError

if TYPE_CHECKING:
    from noria.config import Project
    from noria.data.snapshots import SnapshotRecord
    from noria.features.usage import UsageRecord
    from noria.registry import LineageReport, ModelVersionInfo


@dataclass(frozen=True)
class RegistryView:
    """The project's registered model: its versions, the champion, its history and one version's lineage."""

    model: str
    exists: bool = False  # the registry (and the model in it) could be read
    error: str = ""  # why not, when it could not
    versions: tuple[ModelVersionInfo, ...] = ()
    champion: int | None = None
    events: tuple[dict[str, Any], ...] = ()  # champion history: promote, rollback, ...
    lineage: LineageReport | None = None  # of the champion, else of the newest version
    lineage_error: str = ""

    @property
    def subject(self) -> str:
        """The version the lineage is about, as people write it."""
        if self.lineage is None:
            return self.model
        v = self.lineage.model.version
        return f"{self.model}/{v}" + (" (@champion)" if v == self.champion else "")


@dataclass
class Records:
    project: Project
    _errors: dict[str, str] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return self.project.config.model.name or self.project.config.project

    @functools.cached_property
    def registry(self) -> RegistryView:
        from noria.monitoring.report import registry_exists

        name = self.model_name
        if not registry_exists(self.project):
            return RegistryView(name, error="no registry yet (no model trained)")
        from noria.registry import champion_history, lineage_of, list_models

        try:
            (summary,) = list_models(self.project, name)
            history = champion_history(self.project, name)
        except NoriaError as exc:
            return RegistryView(name, error=exc.message)
        versions = tuple(sorted(summary.versions, key=lambda v: v.version))
        champion = summary.aliases.get("champion")
        subject = champion if champion is not None else (versions[-1].version if versions else None)
        lineage, lineage_error = None, ""
        if subject is not None:
            try:
                lineage = lineage_of(self.project, f"{name}/{subject}")
            except NoriaError as exc:
                lineage_error = exc.message
        return RegistryView(
            name,
            exists=True,
            versions=versions,
            champion=champion,
            events=tuple(history.events),
            lineage=lineage,
            lineage_error=lineage_error,
        )

    # --- monitoring store ---------------------------------------------------------------------

    @functools.cached_property
    def monitoring_dir(self) -> Path:
        return self.project.path(self.project.config.monitoring.dir)

    def monitoring(self, kind: str) -> list[dict[str, Any]]:
        """Drift or performance records of the project's model, oldest window first."""
        from noria.monitoring.store import MonitoringStore

        try:
            found = MonitoringStore(self.monitoring_dir).records(kind)  # type: ignore[arg-type]
        except (OSError, ValueError) as exc:
            self._errors[kind] = str(exc)
            return []
        return [r for r in found if r.get("model_name") in (self.model_name, None)]

    @functools.cached_property
    def drift(self) -> list[dict[str, Any]]:
        return self.monitoring("drift")

    @functools.cached_property
    def performance(self) -> list[dict[str, Any]]:
        return self.monitoring("performance")

    @functools.cached_property
    def decisions(self) -> list[dict[str, Any]]:
        from noria.monitoring.store import MonitoringStore

        try:
            return MonitoringStore(self.monitoring_dir).decisions()
        except (OSError, ValueError) as exc:
            self._errors["decisions"] = str(exc)
            return []

    @functools.cached_property
    def review_files(self) -> list[Path]:
        return sorted((self.monitoring_dir / "review").glob("*.parquet"))

    # --- serving ------------------------------------------------------------------------------

    @functools.cached_property
    def prediction_log_files(self) -> list[Path]:
        folder = self.project.path(self.project.config.serving.prediction_log.dir)
        return sorted(folder.rglob("*.parquet")) if folder.is_dir() else []

    @functools.cached_property
    def deliveries(self) -> list[dict[str, Any]]:
        """Batch delivery records (``noria predict``), oldest first."""
        folder = self.project.path(self.project.config.serving.batch.deliveries_dir)
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")) | {"_path": str(path)})
            except (OSError, ValueError):
                continue
        return out

    # --- features and data --------------------------------------------------------------------

    @functools.cached_property
    def usage(self) -> list[UsageRecord]:
        from noria.features.usage import list_usage

        try:
            return list_usage(self.project)
        except NoriaError as exc:
            self._errors["usage"] = exc.message
            return []

    @functools.cached_property
    def snapshots(self) -> list[SnapshotRecord]:
        from noria.data.snapshots import list_snapshots

        try:
            return list_snapshots(self.project)
        except NoriaError as exc:
            self._errors["snapshots"] = exc.message
            return []

    def error(self, what: str) -> str:
        return self._errors.get(what, "")


__all__ = ["Records", "RegistryView"]
