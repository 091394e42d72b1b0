"""The ``data:`` and ``storage:`` sections of noria.yaml: source tables with their columns,
checks and quality gates, where the raw files are read from, and where snapshots and built
artifacts live (pydantic models only: importing this module loads no ingest code)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from noria.periods import MonthRange


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


ColumnType = Literal["int", "float", "str", "bool", "timestamp"]


class ColumnSpec(_Section):
    """One column of a source table: its type and the rules a value must follow."""

    # int, float, str, bool or timestamp; a value that does not convert is quarantined.
    type: ColumnType
    # Whether a value may be missing (empty, NA, null); a primary-key column never may.
    nullable: bool = False
    # Numbers below min or above max are quarantined.
    min: float | None = None
    max: float | None = None
    # The only values a text column may take.
    allowed: list[str] | None = None
    # A regular expression every text value must match (e.g. ^[A-Z]{2}$).
    pattern: str | None = None
    # What the column means (shown by `noria data`, used for feature descriptions).
    description: str = ""
    # The column's name in the source file when it differs (e.g. HomeTeam -> home_team).
    source_column: str | None = None
    # timestamp columns: the zone of values written without an offset (default UTC).
    timezone: str | None = None

    @model_validator(mode="after")
    def _bounds_make_sense(self) -> ColumnSpec:
        if self.timezone is not None:
            if self.type != "timestamp":
                raise ValueError(f"timezone applies to timestamp columns, not {self.type}")
            _check_zone(self.timezone)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min/max apply to int and float columns, not {self.type}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a valid regex: {exc}") from exc
        return self


class PartitionSpec(_Section):
    """How a table is split into monthly partitions: the columns holding year and month, or a
    timestamp column whose (UTC) month is the partition."""

    # The int columns holding the year and the month (1-12) of each row.
    year: str | None = None
    month: str | None = None
    # Or: a timestamp column whose UTC month is the row's partition.
    timestamp: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> PartitionSpec:
        if self.timestamp is not None and (self.year is not None or self.month is not None):
            raise ValueError("partition by timestamp or by year and month, not both")
        if self.timestamp is None and (self.year is None or self.month is None):
            raise ValueError("write partition: {year: COLUMN, month: COLUMN} or partition: {timestamp: COLUMN}")
        return self

    @property
    def columns(self) -> list[str]:
        return [self.timestamp] if self.timestamp is not None else [str(self.year), str(self.month)]


class DateParts(_Section):
    """A date (and time) written in parts: the int columns that compose it."""

    year: str  # The int column holding the year.
    month: str  # The int column holding the month (1-12).
    day: str  # The int column holding the day of the month.
    # An int column holding the clock time as HHMM (1530 is 15:30), checked as hhmm is.
    time: str | None = None
    # With time: the zone of the local time; a time that does not exist there (the hour the
    # clocks skip in spring) fails the check. Without: only the calendar date is checked.
    timezone: str | None = None

    @property
    def columns(self) -> list[str]:
        return [self.year, self.month, self.day, *([self.time] if self.time else [])]


_CHECK_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CHECK_KINDS = ("hhmm", "date", "requires", "not_before", "unique_within", "function")


class CheckSpec(_Section):
    """A rule a row must follow beyond its single columns' types and bounds; a failing row is
    quarantined with the check's name and reason. Exactly one of hhmm, date, requires,
    not_before, unique_within or function. A check passes where a column it compares is missing
    (nullability is the column's own rule), except ``requires``, which is about presence."""

    # Names the check in quarantine reasons and the ingest summary (lowercase, digits, _).
    name: str
    # Why the rule holds, shown with every quarantined row (a default is written per kind).
    reason: str | None = None
    # Int columns holding clock times as HHMM: hour 0-23 and minute 0-59 (2400, midnight at the
    # end of the day as some sources write it, is allowed): 1275, 1560 and 60 fail.
    hhmm: list[str] | None = None
    # The composed date (and time) exists: 30 February and 2013-13-01 fail.
    date: DateParts | None = None
    # Columns present together: all or none of them; with ``when``, all of them wherever the
    # ``when`` column is present (a start time needs its duration).
    requires: list[str] | None = None
    # With requires: the column whose presence makes the required columns required.
    when: str | None = None
    # With column: ``column`` is never less than this column where both are present (two
    # numbers, two timestamps or two texts).
    not_before: str | None = None
    # With not_before: the column that must not be less.
    column: str | None = None
    # No two rows share these columns' values (the first is kept): a key beside the primary key.
    unique_within: list[str] | None = None
    # A project function module:function(frame) -> boolean Series (True: the row passes),
    # given the typed columns of the table.
    function: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CheckSpec:
        if not _CHECK_NAME.match(self.name):
            raise ValueError(f"check name {self.name!r}: use lowercase letters, digits and _ (e.g. hhmm_times)")
        given = [k for k in _CHECK_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"check {self.name!r}: give exactly one of {', '.join(_CHECK_KINDS)}"
                + (f" (it has {', '.join(given)})" if given else "")
            )
        if self.when is not None and self.requires is None:
            raise ValueError(f"check {self.name!r}: when goes with requires")
        if (self.column is None) != (self.not_before is None):
            raise ValueError(f"check {self.name!r}: not_before needs column (column is never before not_before)")
        if self.function is not None and ":" not in self.function:
            raise ValueError(f"check {self.name!r}: function is module:function, got {self.function!r}")
        for kind in ("hhmm", "requires", "unique_within"):
            if getattr(self, kind) == []:
                raise ValueError(f"check {self.name!r}: {kind} lists no column")
        if self.date is not None and self.date.timezone is not None:
            if self.date.time is None:
                raise ValueError(f"check {self.name!r}: date.timezone applies to a date with a time")
            _check_zone(self.date.timezone)
        return self

    @property
    def kind(self) -> str:
        return next(k for k in _CHECK_KINDS if getattr(self, k) is not None)

    @property
    def columns(self) -> list[str]:
        """The declared columns the check reads (a function reads any)."""
        if self.date is not None:
            return self.date.columns
        if self.not_before is not None:
            return [str(self.column), self.not_before]
        return [
            *(self.hhmm or []),
            *(self.requires or []),
            *([self.when] if self.when else []),
            *(self.unique_within or []),
        ]


def _check_zone(zone: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r} (use an IANA name such as Europe/Berlin)") from None


class QualitySpec(_Section):
    """Gates on a whole table in one ingest, judged after validation and before anything is
    written. A failed gate refuses the snapshot (the error names the gate, the figure and the
    threshold) or, with ``on_fail: warn``, is recorded in the summary and the lineage record."""

    # What a failed gate does: refuse (no snapshot; the quarantined rows are kept for a look)
    # or warn (the snapshot is made and carries the warning).
    on_fail: Literal["refuse", "warn"] = "refuse"
    # The largest share of the rows read that may be quarantined (0.01: 1 %).
    max_quarantined: float | None = Field(default=None, ge=0, le=1)
    # The largest share of accepted rows that may be missing, per column ({amount: 0.05});
    # "*" sets it for every column not named.
    max_missing: dict[str, float] = Field(default_factory=dict)
    # Each month this ingest brings must hold at least this share of the rows of a typical
    # (median) month already in the snapshot; an unpartitioned table, of its rows there. A
    # truncated or half-exported file fails it.
    min_rows_vs_previous: float | None = Field(default=None, gt=0)

    @field_validator("max_missing")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for column, share in value.items():
            if not 0 <= share <= 1:
                raise ValueError(f"max_missing.{column} is {share}: a share between 0 and 1 (0.05 is 5 %)")
        return value


class TableSpec(_Section):
    """A source table: where it comes from, its key, its partitioning and its columns."""

    # The file in the source folder (or the member of the source archive): CSV (.csv, .csv.gz,
    # .csv.zip) or Parquet.
    file: str
    # Columns that identify a row; a repeated key is quarantined.
    primary_key: list[str] = Field(min_length=1)
    # Monthly partitions (ingest --from/--to picks months); none for small dimension tables.
    partition: PartitionSpec | None = None
    # What one row is.
    description: str = ""
    # Every column the project uses (others in the file are ignored and listed in the lineage).
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    # Rules across columns (HHMM times, dates that exist, columns present together, order,
    # uniqueness, project functions); failing rows are quarantined with the check's name.
    checks: list[CheckSpec] = Field(default_factory=list)
    # Gates on the whole table in one ingest (share quarantined, share missing per column, rows
    # vs the snapshot before); the label column, when it is this table's, must not be all missing.
    quality: QualitySpec = Field(default_factory=QualitySpec)

    @model_validator(mode="after")
    def _keys_are_columns(self) -> TableSpec:
        for key in self.primary_key:
            if key not in self.columns:
                raise ValueError(f"primary_key column {key!r} is not declared under columns")
        if self.partition is not None:
            if self.partition.timestamp is not None:
                col = self.partition.timestamp
                if col not in self.columns or self.columns[col].type != "timestamp":
                    raise ValueError(f"partition column {col!r} must be a declared timestamp column")
                if self.columns[col].nullable:
                    raise ValueError(f"partition column {col!r} may not be nullable")
            for col in self.partition.columns if self.partition.timestamp is None else []:
                if col not in self.columns or self.columns[col].type != "int":
                    raise ValueError(f"partition column {col!r} must be a declared int column")
        unknown = [c for c in self.quality.max_missing if c != "*" and c not in self.columns]
        if unknown:
            raise ValueError(f"quality.max_missing names {', '.join(map(repr, unknown))}, not declared under columns")
        renamed = [c.source_column for c in self.columns.values() if c.source_column]
        if len(renamed) != len(set(renamed)):
            raise ValueError("two columns name the same source_column")
        return self

    @field_validator("checks")
    @classmethod
    def _checks_fit(cls, checks: list[CheckSpec], info: ValidationInfo) -> list[CheckSpec]:
        """Checks read declared columns of the types they need (a field validator, so an error
        points at the ``checks:`` line)."""
        names = [c.name for c in checks]
        if len(names) != len(set(names)):
            raise ValueError(f"two checks are named {next(n for n in names if names.count(n) > 1)!r}")
        typed: dict[str, ColumnSpec] | None = info.data.get("columns")
        if typed is None:  # the columns themselves failed: that error is reported
            return checks
        for check in checks:
            unknown = [c for c in check.columns if c not in typed]
            if unknown:
                raise ValueError(
                    f"check {check.name!r} reads {', '.join(map(repr, unknown))}, not declared under columns"
                )
            ints = check.hhmm or (check.date.columns if check.date else [])
            wrong = [c for c in ints if typed[c].type != "int"]
            if wrong:
                raise ValueError(f"check {check.name!r}: {', '.join(map(repr, wrong))} must be int columns")
            if check.not_before is not None:
                kinds = {
                    "number" if typed[c].type in ("int", "float") else typed[c].type
                    for c in (str(check.column), check.not_before)
                }
                if len(kinds) != 1 or kinds & {"bool"}:
                    raise ValueError(
                        f"check {check.name!r}: {check.column!r} and {check.not_before!r} cannot be ordered"
                        " (compare two numbers, two timestamps or two texts)"
                    )
        return checks

    def file_column(self, name: str) -> str:
        """The name column ``name`` has in the source file."""
        return self.columns[name].source_column or name


class SourceConfig(_Section):
    """Where raw tables are read from: a folder (``directory``), a folder or archive inside an
    installed Python distribution (``package``), or an S3 prefix (``s3``: its objects are copied
    to a local folder first, then read as a directory). ``path`` may name a .zip/.tar/.tar.gz/.tgz
    archive; each table's ``file`` is then a member path inside it."""

    # directory: a folder (relative to the project); package: inside an installed distribution;
    # s3: an S3 prefix (s3://bucket/prefix, or the key of an archive), read with the AWS_* variables.
    kind: Literal["package", "directory", "s3"]
    # The folder or archive (directory: relative to the project; package: inside the distribution;
    # s3: the s3:// URL).
    path: str
    package: str | None = None  # kind: package -> the distribution's name (importlib.metadata)
    install: str | None = None  # the command that installs the package, named when it is missing

    @model_validator(mode="after")
    def _package_named(self) -> SourceConfig:
        if self.kind == "package" and not self.package:
            raise ValueError("a 'package' source needs package: <distribution name> (and path inside it)")
        if self.kind == "s3" and not self.path.startswith("s3://"):
            raise ValueError(f"an 's3' source needs path: s3://BUCKET/PREFIX (got {self.path!r})")
        return self


class DataConfig(_Section):
    """The raw data: where it is read from and the tables with their schemas."""

    # Where the raw files are.
    source: SourceConfig
    # The months a bare `noria data ingest` takes (without --from/--to); None: every month.
    default_range: MonthRange | None = None
    # One entry per source table, by the name features and labels refer to it with.
    tables: dict[str, TableSpec] = Field(min_length=1)
    # Rows read from a source file at a time: a partitioned table streams through ingest in chunks
    # of this size and is validated one month at a time, so memory does not grow with the file.
    chunk_rows: int = Field(default=100_000, ge=1_000)


class StorageConfig(_Section):
    """Paths are relative to the project folder unless absolute (or a URL for dvc_remote)."""

    # Snapshots (data/dataset, tracked by DVC), quarantine files and lineage records.
    data_dir: str = "data"
    # Where DVC pushes snapshot contents: a folder or an s3:// URL.
    dvc_remote: str = "data/dvc-remote"
    # Training sets and other files Noria builds.
    artifacts_dir: str = ".noria/artifacts"
    # An S3-compatible server for an s3:// dvc_remote (SeaweedFS, MinIO); None: AWS_ENDPOINT_URL or AWS.
    s3_endpoint_url: str | None = None


__all__ = [
    "CheckSpec",
    "ColumnSpec",
    "ColumnType",
    "DataConfig",
    "DateParts",
    "PartitionSpec",
    "QualitySpec",
    "SourceConfig",
    "StorageConfig",
    "TableSpec",
]
