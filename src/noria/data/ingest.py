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
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noria.config import Project, TableSpec
from noria.data.snapshots import (
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

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass
class IngestResult:
    record: SnapshotRecord
    unchanged: bool  # the data equalled an existing snapshot (same id)

    @property
    def snapshot_id(self) -> str:
        return self.record.id


def _check_month(value: str | None, flag: str) -> str | None:
    if value is not None and not _MONTH.match(value):
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
    from noria.data.sources import read_table, source_folder
    from noria.data.validate import schema_hash, validate_table
    from noria.provenance import git_stage, git_state, utc_now

    cfg = project.config.data
    git = git_state(project.root)  # the code that runs this ingest, before anything is written
    folder = source_folder(cfg.source, project)
    ingest_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    task = progress.add_task("ingest", total=len(cfg.tables) * 2 + 2) if progress else None

    def step(description: str) -> None:
        if progress is not None and task is not None:
            progress.update(task, description=description)

    def done() -> None:
        if progress is not None and task is not None:
            progress.advance(task)

    parent = _parent(project)  # before anything is written
    # 1. read and validate everything before writing anything
    validated = {}
    outside: dict[str, int] = {}  # valid rows of months this ingest was not asked for
    for name, spec in cfg.tables.items():
        step(f"read {name}")
        raw = read_table(name, spec, folder)
        frame = _in_range(raw.frame, spec, start, end)
        outside[name] = len(raw.frame) - len(frame)
        if spec.partition is not None and frame.empty:
            raise DataError(
                f"table {name!r}: {raw.file.name} has no rows between {start or 'the start'} and {end or 'the end'}",
                fix="choose --from/--to months that the source covers",
            )
        done()
        step(f"validate {name} ({len(frame):,} rows)")
        validated[name] = (raw, validate_table(spec, frame, project.root))
        done()
    warnings = _judge_quality(project, validated, ingest_id)

    # 2. build the new version in staging, quarantine beside it
    remote = versioning.project_remote(project)
    versioning.ensure_repo(project.root, remote)
    current = dataset_dir(project)
    staging = project.data_dir / f".staging-{ingest_id}"
    accounts: dict[str, TableAccount] = {}
    step("write snapshot")
    try:
        target = staging / current.name
        for name, spec in cfg.tables.items():
            raw, result = validated[name]
            months = _write_table(result.accepted, spec, target / name, current / name)
            quarantine_file = _write_quarantine(project, name, ingest_id, result.quarantined)
            accounts[name] = TableAccount(
                read=result.read,
                accepted=len(result.accepted),
                quarantined=len(result.quarantined),
                rows_in_snapshot=count_rows(target / name),
                schema_hash=schema_hash(spec),
                source_file=str(raw.file),
                months=months,
                quarantine_file=quarantine_file,
                rules=result.rule_counts,
                ignored_columns=raw.ignored_columns,
                file_rows=len(raw.frame),
                outside_range=outside[name],
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


def _write_quarantine(project: Project, table: str, ingest_id: str, rows: pd.DataFrame) -> str | None:
    """Write a table's quarantined rows (original text) for this ingest; their project path."""
    from noria.data.sources import as_text

    if not len(rows):
        return None
    path = project.data_dir / QUARANTINE / table / f"{ingest_id}.parquet"
    _write_parquet(as_text(rows), path)
    return str(path.relative_to(project.root))


def _judge_quality(project: Project, validated: dict[str, Any], ingest_id: str) -> dict[str, list[str]]:
    """Run every table's quality gates; refuse (raise) or return the warnings per table.

    A refused ingest writes nothing but the quarantined rows, so the user can see why."""
    from noria.data import quality

    current = dataset_dir(project)
    failures: list[quality.GateFailure] = []
    for name, spec in project.config.data.tables.items():
        _, result = validated[name]
        keys = partition_keys(result.accepted, spec) if spec.partition is not None else None
        failures += quality.judge(project, name, spec, result, current / name, keys)
    refusing = dict.fromkeys(f.table for f in failures if f.refuse)
    kept = [_write_quarantine(project, name, ingest_id, validated[name][1].quarantined) for name in refusing]
    quality.refuse(failures, [k for k in kept if k])
    warnings: dict[str, list[str]] = {}
    for failure in failures:
        warnings.setdefault(failure.table, []).append(f"gate {failure.gate}: {failure.message}")
    return warnings


def _in_range(frame: pd.DataFrame, spec: TableSpec, start: str | None, end: str | None) -> pd.DataFrame:
    """Rows of the months asked for, and every row whose month cannot be read (month 13, a
    timestamp that does not parse): those are quarantined by whichever ingest reads the file,
    never silently left out of every range."""
    import pandas as pd

    if spec.partition is None or (start is None and end is None):
        return frame
    key = partition_keys(frame, spec, raw=True)
    inside = pd.Series(True, index=frame.index)
    if start:
        inside &= key >= int(start[:4]) * 100 + int(start[5:])
    if end:
        inside &= key <= int(end[:4]) * 100 + int(end[5:])
    return frame[inside | key.isna()]


def partition_keys(frame: pd.DataFrame, spec: TableSpec, *, raw: bool = False) -> pd.Series:
    """Each row's partition month as ``year * 100 + month`` (NaN where it cannot be read).

    ``raw``: the frame still holds the source text (before validation). A timestamp partition
    is the UTC month of the timestamp.
    """
    import pandas as pd

    part = spec.partition
    assert part is not None
    if part.timestamp is not None:
        values = frame[part.timestamp]
        if raw:
            from noria.data.validate import coerce_column

            values = coerce_column(values, spec.columns[part.timestamp])
        stamps = values.dt.tz_convert("UTC")
        keys: pd.Series = (stamps.dt.year * 100 + stamps.dt.month).astype("float64")
        return keys
    year = pd.to_numeric(frame[str(part.year)], errors="coerce")
    month = pd.to_numeric(frame[str(part.month)], errors="coerce")
    month = month.where(month.between(1, 12) & (month % 1 == 0))  # month 13 is no partition
    return (year * 100 + month).astype("float64")


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Atomic, deterministic Parquet (same rows -> same bytes -> same DVC hash)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # Microseconds: Spark and other engines reject nanosecond Parquet timestamps.
        pq.write_table(table, tmp, compression="zstd", coerce_timestamps="us", allow_truncated_timestamps=False)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_table(accepted: pd.DataFrame, spec: TableSpec, target: Path, current: Path) -> list[str]:
    """Write a table's new partitions into ``target``; link the untouched ones from ``current``."""
    frame = accepted.sort_values(spec.primary_key, kind="stable").reset_index(drop=True)
    if spec.partition is None:
        _write_parquet(frame, target / "part-0.parquet")
        return []
    keys = partition_keys(frame, spec).astype("int64")
    written = []
    for key, rows in frame.groupby(keys, sort=True):
        month = f"{int(key) // 100:04d}-{int(key) % 100:02d}"
        _write_parquet(rows.reset_index(drop=True), target / f"month={month}" / "part-0.parquet")
        written.append(month)
    for month, folder in month_dirs(current.parent, current.name).items():
        if month not in written:
            _link_tree(folder, target / folder.name)
    return sorted(set(written) | set(month_dirs(target.parent, target.name)))


def _link_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for file in src.iterdir():
        try:
            os.link(file, dst / file.name)
        except OSError:
            shutil.copy2(file, dst / file.name)


def _swap(new: Path, current: Path) -> None:
    """Replace ``current`` by ``new`` with two renames (undone by :func:`_recover` if cut)."""
    previous = current.with_name(f".previous-{current.name}")
    if current.exists():
        current.replace(previous)
    new.replace(current)
    shutil.rmtree(previous, ignore_errors=True)


def _recover(data_dir: Path) -> None:
    """Clean up after a crashed ingest: drop staging folders, undo a half-done swap."""
    for stale in data_dir.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for previous in data_dir.glob(".previous-*"):
        current = previous.with_name(previous.name.removeprefix(".previous-"))
        if current.exists():
            shutil.rmtree(previous, ignore_errors=True)
        else:
            previous.replace(current)


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
