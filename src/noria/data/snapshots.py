"""Versioned data snapshots: the dataset folder, its lineage records, and reading old versions.

Layout inside the project's data folder::

    data/dataset/<table>/month=YYYY-MM/part-0.parquet   partitioned tables (flights, weather)
    data/dataset/<table>/part-0.parquet                  small dimension tables (planes, ...)
    data/dataset.dvc                                     DVC's pointer to the current version
    data/snapshots/<snapshot id>.json                    one lineage record per version
    data/quarantine/<table>/<ingest id>.parquet          rejected rows with their rule

The snapshot id is DVC's md5 of the dataset folder. Records are small JSON files meant to
be committed with the ``.dvc`` file; the data itself lives in DVC's cache and remote.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria import atomic
from noria.config import Project
from noria.errors import AmbiguousReferenceError, DataError, SnapshotNotFoundError
from noria.periods import is_month

if TYPE_CHECKING:
    import pandas as pd

    from noria.data.versioning import TrackedVersion

DATASET = "dataset"
RECORDS = "snapshots"
QUARANTINE = "quarantine"
MONTH_DIR = "month="  # a partition folder: month=YYYY-MM


@dataclass
class TableAccount:
    """Row accounting for one table in one ingest: read == accepted + quarantined, and over the
    whole source file file_rows == read + outside_range (the valid rows of months not asked for)."""

    read: int
    accepted: int
    quarantined: int
    rows_in_snapshot: int
    schema_hash: str
    source_file: str
    months: list[str] = field(default_factory=list)
    quarantine_file: str | None = None
    rules: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    # None in records written before the whole file was accounted for.
    file_rows: int | None = None
    outside_range: int = 0
    # Quality gates this table failed with on_fail: warn (a refused gate makes no snapshot).
    warnings: list[str] = field(default_factory=list)


@dataclass
class SnapshotRecord:
    """The lineage record of one snapshot version."""

    id: str
    created_at: str
    source: str
    range_from: str | None
    range_to: str | None
    months: list[str]
    tables: dict[str, TableAccount]
    schema_hash: str
    git_commit: str | None
    git_dirty: bool
    parent: str | None
    dvc: dict[str, Any]
    ingest_id: str
    noria_version: str
    reingested_at: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def totals(self) -> dict[str, int]:
        return {
            key: sum(getattr(t, key) for t in self.tables.values())
            for key in ("read", "accepted", "quarantined", "rows_in_snapshot")
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotRecord:
        tables = {name: TableAccount(**t) for name, t in data["tables"].items()}
        return cls(**(data | {"tables": tables}))


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write a snapshot record's JSON (indent 2, sorted keys) atomically (:mod:`noria.atomic`)."""
    atomic.write_json(path, payload, indent=2, sort_keys=True, default=str)


def records_dir(project: Project) -> Path:
    return project.data_dir / RECORDS


def list_snapshots(project: Project) -> list[SnapshotRecord]:
    """Every snapshot record of the project, oldest first."""
    folder = records_dir(project)
    if not folder.is_dir():
        return []
    records = []
    for file in folder.glob("*.json"):
        try:
            records.append(SnapshotRecord.from_dict(json.loads(file.read_text(encoding="utf-8"))))
        except (ValueError, TypeError, KeyError) as exc:
            raise DataError(
                f"snapshot record {file} is damaged: {exc}",
                fix="restore it from git (`git checkout -- FILE`)",
            ) from None
    return sorted(records, key=lambda r: (r.created_at, r.id))


def get_record(project: Project, ref: str | None = None) -> SnapshotRecord:
    """The record whose id starts with ``ref`` (the newest when ``ref`` is None or 'latest')."""
    records = list_snapshots(project)
    if not records:
        raise SnapshotNotFoundError(
            f"project {project.config.project!r} has no data snapshot yet",
            fix="run `noria data ingest` first",
        )
    if ref is None or ref == "latest":
        return records[-1]
    if not re.fullmatch(r"[0-9a-f]{1,32}", ref):
        raise SnapshotNotFoundError(
            f"{ref!r} is not a snapshot id (ids are hexadecimal, e.g. {records[-1].short_id})",
            fix="see `noria data list` for the ids",
        )
    matches = [r for r in records if r.id.startswith(ref)]
    if not matches:
        raise SnapshotNotFoundError(f"no snapshot {ref!r}", fix="see `noria data list` for the ids")
    if len(matches) > 1:
        raise AmbiguousReferenceError(
            f"{ref!r} matches {len(matches)} snapshots ({', '.join(m.short_id for m in matches)})",
            fix="give more characters of the id",
        )
    return matches[0]


class Snapshot:
    """A read-only view of one snapshot version, served from DVC's cache.

    Reading never touches the workspace copy of the dataset, so old versions stay readable
    after newer ingests, and a reader never sees a half-written version.
    """

    def __init__(self, project: Project, record: SnapshotRecord) -> None:
        self.project = project
        self.record = record
        self._files: dict[str, Path] | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def tables(self) -> list[str]:
        return sorted(self.record.tables)

    def _all_files(self) -> dict[str, Path]:
        if self._files is None:
            from noria.data.versioning import TrackedVersion, project_remote, version_files

            version = TrackedVersion(**{k: self.record.dvc[k] for k in ("md5", "size", "nfiles", "path")})
            # The configured remote, not .dvc/config's: a clone in a pod reads from its profile's S3.
            remote = project_remote(self.project)
            self._files = version_files(self.project.root, dataset_dvc_file(self.project), version, remote)
        return self._files

    def table_paths(self, table: str, months: list[str] | None = None) -> list[Path]:
        """The Parquet files of a table (optionally only some months), in partition order."""
        if table not in self.record.tables:
            raise SnapshotNotFoundError(
                f"snapshot {self.record.short_id} has no table {table!r} (it has: {', '.join(self.tables)})",
                fix="check the table name in noria.yaml data.tables",
            )
        wanted = set(months) if months is not None else None
        paths = []
        for rel, path in sorted(self._all_files().items()):
            parts = Path(rel).parts
            if parts[0] != table:
                continue
            month = _dir_month(parts[1]) if len(parts) > 2 else None
            if wanted is not None and (month is None or month not in wanted):
                continue
            paths.append(path)
        return paths

    def read(self, table: str, columns: list[str] | None = None, months: list[str] | None = None) -> pd.DataFrame:
        """One table as a typed DataFrame (all months unless ``months`` names some)."""
        import pandas as pd
        import pyarrow.parquet as pq

        paths = self.table_paths(table, months)
        if not paths:
            spec = self.project.config.data.tables.get(table)
            names = columns or (list(spec.columns) if spec else [])
            return pd.DataFrame({c: pd.Series(dtype=object) for c in names})
        frames = [pq.read_table(p, columns=columns).to_pandas() for p in paths]
        frame: pd.DataFrame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return frame


def open_snapshot(project: Project, snapshot_id: str | None = None) -> Snapshot:
    """Open a snapshot by id or id prefix; the newest one when ``snapshot_id`` is None."""
    return Snapshot(project, get_record(project, snapshot_id))


def quarantined_rows(
    project: Project,
    record: SnapshotRecord,
    *,
    table: str | None = None,
    limit: int | None = None,
    rule: str | None = None,
) -> list[dict[str, Any]]:
    """The rows the ingest that made ``record`` quarantined: table, source line, every rule the
    row broke, and the row as the source file wrote it (missing cells left out). ``rule`` keeps
    the rows whose reasons contain that text (a rule's name, a column)."""
    import pandas as pd

    from noria.data.validate import ROW_COLUMN, RULE_COLUMN

    if table is not None and table not in record.tables:
        raise DataError(
            f"snapshot {record.short_id} has no table {table!r}", fix=f"choose one of {', '.join(record.tables)}"
        )
    out: list[dict[str, Any]] = []
    for name, account in record.tables.items():
        if (table is not None and name != table) or not account.quarantine_file:
            continue
        path = project.root / account.quarantine_file
        if not path.is_file():
            raise DataError(
                f"the quarantined rows of {name} ({account.quarantine_file}) are gone",
                fix="they stay on the machine that ran the ingest; re-run that ingest to quarantine them again",
            )
        frame = pd.read_parquet(path)
        if rule:
            frame = frame[frame[RULE_COLUMN].astype(str).str.contains(rule, regex=False)]
        if limit is not None:
            frame = frame.head(limit - len(out))
        values = [c for c in frame.columns if not c.startswith("_")]
        for rec in frame.to_dict("records"):
            row = {c: rec[c] for c in values if rec[c] is not None and not pd.isna(rec[c])}
            out.append({"table": name, "line": int(rec[ROW_COLUMN]), "reasons": str(rec[RULE_COLUMN]), "row": row})
        if limit is not None and len(out) >= limit:
            break
    return out


def count_rows(folder: Path) -> int:
    """Rows of every Parquet file under ``folder``, from the files' footers (no data read)."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(f).num_rows for f in folder.rglob("*.parquet"))


def month_dirs(dataset: Path, table: str) -> dict[str, Path]:
    """month -> partition folder, for a partitioned table in a dataset folder."""
    folder = dataset / table
    if not folder.is_dir():
        return {}
    found = {}
    for child in folder.iterdir():
        month = _dir_month(child.name)
        if month and child.is_dir():
            found[month] = child
    return found


def _dir_month(name: str) -> str | None:
    """The month of a partition folder's name (``month=2013-07`` -> "2013-07"); None for any other name."""
    month = name.removeprefix(MONTH_DIR)
    return month if name.startswith(MONTH_DIR) and is_month(month) else None


def dataset_dir(project: Project) -> Path:
    return project.data_dir / DATASET


def dataset_dvc_file(project: Project) -> Path:
    return project.data_dir / f"{DATASET}.dvc"


def tracked_version(project: Project) -> TrackedVersion | None:
    from noria.data.versioning import read_dvc_file

    dvc_file = dataset_dvc_file(project)
    return read_dvc_file(dvc_file) if dvc_file.is_file() else None
