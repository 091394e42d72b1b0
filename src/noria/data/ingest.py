"""Ingest: read sources, validate, quarantine, write a new snapshot version, track it with DVC.

The new version is built complete in a staging folder (new months written, unchanged
months hard-linked from the current version), then swapped in with two renames; DVC
tracks it and the lineage record is written last. A crash at any point leaves either
the old version or the new one, never a mixture: stale staging folders are removed and a
swap cut in half is undone by the next ingest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria import atomic
from noria.config import Project, TableSpec
from noria.data.scan import partition_keys as partition_keys  # noria.replay imports it from here
from noria.data.snapshots import (
    DATASET,
    QUARANTINE,
    SnapshotRecord,
    TableAccount,
    count_rows,
    dataset_dir,
    get_record,
    list_snapshots,
    month_dirs,
    records_dir,
    tracked_version,
    write_json_atomic,
)
from noria.errors import ConfigError, DataError
from noria.periods import is_month

if TYPE_CHECKING:
    from rich.progress import Progress

    from noria.data.scan import ScannedTable


@dataclass
class IngestResult:
    record: SnapshotRecord
    unchanged: bool  # the data equalled an existing snapshot (same id)

    @property
    def snapshot_id(self) -> str:
        return self.record.id


def _check_month(value: str | None, flag: str) -> str | None:
    if value is not None and not is_month(value):
        raise ConfigError(f"{flag} {value!r} is not a month", fix=f"write it as YYYY-MM, e.g. {flag} 2013-01")
    return value


def ingest(
    project: Project, start: str | None = None, end: str | None = None, progress: Progress | None = None
) -> IngestResult:
    """Ingest the months ``start``..``end`` (inclusive, ``YYYY-MM``) as a new snapshot.

    Without either, ``data.default_range`` when the project declares one, else every month.
    """
    default = project.config.data.default_range
    if start is None and end is None and default is not None:
        start, end = default.start, default.end
    _check_month(start, "--from")
    _check_month(end, "--to")
    if start and end and start > end:
        raise ConfigError(f"--from {start} is after --to {end}", fix="swap the two months")
    data_dir = project.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with _lock(data_dir / ".ingest.lock"):
        _recover(data_dir)
        return _ingest_locked(project, start, end, progress)


def _ingest_locked(project: Project, start: str | None, end: str | None, progress: Progress | None) -> IngestResult:
    from noria import __version__
    from noria.data import versioning
    from noria.data.published import check_writable, publish
    from noria.data.sources import source_folder
    from noria.data.validate import schema_hash
    from noria.provenance import git_stage, git_state, utc_now

    cfg = project.config.data
    check_writable(project)  # a read-only data remote (pre-production) fails here, before any work
    git = git_state(project.root)  # the code that runs this ingest, before anything is written
    folder = source_folder(cfg.source, project)
    ingest_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    task = progress.add_task("ingest", total=len(cfg.tables) + 2) if progress else None

    def step(description: str) -> None:
        if progress is not None and task is not None:
            progress.update(task, description=description)

    def done() -> None:
        if progress is not None and task is not None:
            progress.advance(task)

    parent = _parent(project)  # before anything is written
    current = dataset_dir(project)
    staging = project.data_dir / f".staging-{ingest_id}"
    target = staging / current.name
    accounts: dict[str, TableAccount] = {}
    try:
        # 1. read, validate and write every table into staging (a partitioned one month by month)
        scanned = {}
        for name, spec in cfg.tables.items():
            step(f"read {name}")
            scanned[name] = _scan_table(project, name, spec, folder, staging, (start, end), step)
            done()
        warnings = _judge_quality(project, scanned, ingest_id)

        # 2. complete the new version in staging, keep the quarantined rows, swap it in
        remote = versioning.project_remote(project)
        versioning.ensure_repo(project.root, remote)
        step("write snapshot")
        for name, spec in cfg.tables.items():
            table = scanned[name]
            if spec.partition is not None:
                _link_untouched(current / name, target / name, table.months)
            accounts[name] = TableAccount(
                read=table.stats.read,
                accepted=table.stats.accepted,
                quarantined=table.stats.quarantined,
                rows_in_snapshot=count_rows(target / name),
                schema_hash=schema_hash(spec),
                source_file=str(table.file),
                months=sorted(month_dirs(target, name)) if spec.partition is not None else [],
                quarantine_file=_keep_quarantine(project, name, ingest_id, table.quarantine),
                rules=table.stats.rules,
                ignored_columns=table.ignored_columns,
                file_rows=table.file_rows,
                outside_range=table.outside_range,
                warnings=warnings.get(name, []),
            )
        done()
        step("version with DVC")
        _swap(target, current)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    version = versioning.track(project.root, current, remote)
    done()

    # 3. the lineage record, last
    existing = records_dir(project) / f"{version.md5}.json"
    if existing.is_file():
        record = get_record(project, version.md5)
        record.reingested_at.append(utc_now())
        write_json_atomic(existing, record.to_dict())
        publish(project, record)  # again: an earlier run may have stopped before publishing it
        return IngestResult(record=record, unchanged=True)
    all_months = sorted({m for a in accounts.values() for m in a.months})
    record = SnapshotRecord(
        id=version.md5,
        # microseconds: snapshots are listed in creation order, and two can come in one second
        created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        source=f"{cfg.source.kind}:{folder}",
        range_from=start,
        range_to=end,
        months=all_months,
        tables=accounts,
        schema_hash=hashlib.sha256("".join(a.schema_hash for a in accounts.values()).encode()).hexdigest()[:16],
        git_commit=git.commit,
        git_dirty=git.dirty,
        parent=parent if parent != version.md5 else None,
        dvc=version.dvc_out() | {"md5": version.md5},
        ingest_id=ingest_id,
        noria_version=__version__,
    )
    write_json_atomic(existing, record.to_dict())
    git_stage(project.root, existing)
    # With an S3 remote, the record goes beside the data: a pod with an empty folder finds it (noria data pull).
    publish(project, record)
    return IngestResult(record=record, unchanged=False)


def _parent(project: Project) -> str | None:
    """The snapshot this ingest builds on: the version ``data/dataset.dvc`` tracks when it has a
    lineage record; else the newest record (a run killed after ``dvc add`` rewrote dataset.dvc
    leaves it naming a version that has none, and the re-run must not lose the lineage)."""
    tracked = tracked_version(project)
    if tracked is not None and (records_dir(project) / f"{tracked.md5}.json").is_file():
        return tracked.md5
    records = list_snapshots(project)
    return records[-1].id if records else None


def _scan_table(
    project: Project,
    name: str,
    spec: TableSpec,
    folder: Path,
    staging: Path,
    months: tuple[str | None, str | None],
    step: Any,
) -> ScannedTable:
    """Read, validate and write one table into ``staging``; its accounting and quarantined rows.

    A partitioned table streams month by month (:mod:`noria.data.scan`); one without
    partitions (a small dimension table) is read and validated whole."""
    from noria.data import scan
    from noria.data.quality import TableStats
    from noria.data.scan import ScannedTable, scan_partitioned, write_text
    from noria.data.sources import read_table
    from noria.data.validate import validate_table

    work = staging / f".work-{name}"
    target = staging / DATASET / name
    if spec.partition is None:
        raw = read_table(name, spec, folder)
        step(f"validate {name} ({len(raw.frame):,} rows)")
        result = validate_table(spec, raw.frame, project.root)
        frame = result.accepted.sort_values(spec.primary_key, kind="stable").reset_index(drop=True)
        scan.write_parquet(frame, target / "part-0.parquet")
        kept = []
        if len(result.quarantined):
            kept.append(work / "quarantine.parquet")
            write_text(result.quarantined, kept[0])
        return ScannedTable(raw.file, raw.ignored_columns, len(raw.frame), 0, TableStats.of(result), [], kept)

    start, end = months

    def on_rows(rows: int) -> None:
        step(f"read and validate {name} ({rows:,} rows read)")

    table = scan_partitioned(
        name,
        spec,
        folder,
        work,
        target,
        (_month_key(start), _month_key(end)),
        root=project.root,
        chunk_rows=project.config.data.chunk_rows,
        on_rows=on_rows,
    )
    if table.stats.read == 0:
        raise DataError(
            f"table {name!r}: {table.file.name} has no rows between {start or 'the start'} and {end or 'the end'}",
            fix="choose --from/--to months that the source covers",
        )
    return table


def _month_key(month: str | None) -> int | None:
    return None if month is None else int(month[:4]) * 100 + int(month[5:])


def _keep_quarantine(project: Project, table: str, ingest_id: str, parts: list[Path]) -> str | None:
    """Join a table's quarantined rows (original text, one file per month) into its quarantine
    file for this ingest, atomically; the file's project path (None without rows)."""
    import pyarrow.parquet as pq

    if not parts:
        return None
    path = project.data_dir / QUARANTINE / table / f"{ingest_id}.parquet"
    with (
        atomic.temp_path(path) as tmp,
        pq.ParquetWriter(tmp, pq.read_schema(parts[0]), compression="zstd") as writer,
    ):
        for part in parts:  # one month in memory at a time
            writer.write_table(pq.read_table(part))
    return str(path.relative_to(project.root))


def _judge_quality(project: Project, scanned: dict[str, ScannedTable], ingest_id: str) -> dict[str, list[str]]:
    """Run every table's quality gates; refuse (raise) or return the warnings per table.

    A refused ingest writes nothing but the quarantined rows, so the user can see why."""
    from noria.data import quality

    current = dataset_dir(project)
    failures: list[quality.GateFailure] = []
    for name, spec in project.config.data.tables.items():
        failures += quality.judge(project, name, spec, scanned[name].stats, current / name)
    refusing = dict.fromkeys(f.table for f in failures if f.refuse)
    kept = [_keep_quarantine(project, name, ingest_id, scanned[name].quarantine) for name in refusing]
    quality.refuse(failures, [k for k in kept if k])
    warnings: dict[str, list[str]] = {}
    for failure in failures:
        warnings.setdefault(failure.table, []).append(f"gate {failure.gate}: {failure.message}")
    return warnings


def _link_untouched(current: Path, target: Path, written: list[str]) -> None:
    """Link the months of the current version this ingest did not write into ``target``."""
    for month, folder in month_dirs(current.parent, current.name).items():
        if month not in written:
            _link_tree(folder, target / folder.name)


def _link_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for file in src.iterdir():
        try:
            os.link(file, dst / file.name)
        except OSError:
            shutil.copy2(file, dst / file.name)


def _swap(new: Path, current: Path) -> None:
    """Replace ``current`` by ``new``: synced, then two renames (undone by :func:`_recover` if cut)."""
    atomic.replace_dir(new, current)


def _recover(data_dir: Path) -> None:
    """Clean up after a crashed ingest: drop staging folders, undo a half-done swap."""
    for stale in data_dir.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    atomic.recover_dirs(data_dir)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One ingest at a time per project (an advisory lock, released if the process dies)."""
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                "another `noria data ingest` is running in this project",
                fix="wait for it to finish, then retry",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def summary_rows(record: SnapshotRecord) -> list[dict[str, Any]]:
    """Per-table accounting rows for printing."""
    return [
        {
            "table": name,
            "in file": t.file_rows if t.file_rows is not None else "",
            "other months": t.outside_range,
            "read": t.read,
            "accepted": t.accepted,
            "quarantined": t.quarantined,
            "rows in snapshot": t.rows_in_snapshot,
            "rules": ", ".join(f"{k} x{v}" for k, v in sorted(t.rules.items())),
        }
        for name, t in record.tables.items()
    ]
