"""Project configuration: one pydantic model for ``noria.yaml``.

Loading order (later wins): the file's top level, then the active profile's section under
``profiles:`` (``local`` unless ``--profile``/``NORIA_PROFILE`` says otherwise), then
``NORIA_<SECTION>__<KEY>`` environment variables (``__`` separates nesting levels; values are
parsed as YAML scalars, so ``NORIA_TRAINING__TRIALS=5`` is the integer 5).

Every error names the key and where it came from: ``noria.yaml:12`` for the file, the
profile's line for a profile override, the variable name for the environment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from noria.errors import ConfigError, ProjectNotFoundError
from noria.features.config import FeaturesConfig
from noria.monitoring.config import MonitoringConfig
from noria.names import MODEL_NAME_FIX, model_name_problem
from noria.periods import MonthRange, Period
from noria.pipelines.config import PipelinesConfig
from noria.pipelines.orchestrators.config import OrchestratorsConfig
from noria.registry.config import RegistryConfig
from noria.serving.config import ServingConfig
from noria.training.settings import TASK_BASELINES, TUNE_METRICS, TrainingSettings
from noria.windows import WindowsConfig, label_problem

CONFIG_FILE = "noria.yaml"
DEFAULT_PROFILE = "local"
# Variables Noria reads itself; everything else starting with NORIA_ is a config override.
RESERVED_ENV = frozenset(
    {
        "NORIA_PROFILE",
        "NORIA_PROJECT_DIR",
        "NORIA_DEBUG",
        "NORIA_API_KEYS",
        "NORIA_ADMIN_KEYS",  # the console's admin keys (noria.console.auth)
        "NORIA_LOG_LEVEL",
        "NORIA_SERVE_CONFIG",
        "NORIA_AIRFLOW_USERNAME",  # monitoring.policy.airflow_username_env's default
        "NORIA_AIRFLOW_PASSWORD",  # monitoring.policy.airflow_password_env's default
        # the data remote's own endpoint and (read-only in pre-production) identity: noria.s3.DATA_VARIABLES
        "NORIA_DATA_S3_ENDPOINT_URL",
        "NORIA_DATA_S3_ACCESS_KEY_ID",
        "NORIA_DATA_S3_SECRET_ACCESS_KEY",
    }
)
# What `project:` may be; the validator checks it, the JSON Schema gives it to editors as a pattern.
PROJECT_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --- data --------------------------------------------------------------------------------

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


# --- everything else -----------------------------------------------------------------------


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


TaskName = Literal["binary", "multiclass", "regression"]
_FUNCTION_REF = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^\d+\s*(s|m|h|d|w)$")


class TargetConfig(_Section):
    """What the model predicts: a column of the request table with a rule, or a label function.

    Column: ``column`` (in ``table``, default the request table) and, for a binary task,
    ``threshold`` (label = column > threshold; without it the column must hold booleans or
    0/1); for a multi-class task the values are among ``classes``; for regression the column
    is the number. Function: ``function`` (``module:function``, like a feature source) reads
    ``tables`` and returns the request ids, ``label`` and optionally ``label_time``.
    ``mature_after``: how long after the event time a label can be trusted (rows whose label is
    not known yet count as unlabelled).
    """

    # A column of the request table holding the outcome (or the label itself).
    column: str | None = None
    # The column's table (default: features.request.table, the only one allowed).
    table: str | None = None
    # Binary: label = column > threshold (missing column value: no label).
    threshold: float | None = None
    # Multiclass: the class values, in order (a label outside them is an error).
    classes: list[str] | None = None
    # Or: a label function module:function(tables, **params) returning the request ids, label
    # and optionally label_time (when the label became known).
    function: str | None = None
    # The label function's snapshot tables and the columns it reads from each.
    tables: dict[str, list[str]] = Field(default_factory=dict)
    # Keyword arguments for the label function.
    params: dict[str, Any] = Field(default_factory=dict)
    # How long after the event time a label can be trusted (30m, 2h, 30d); a row whose label is
    # not known yet counts as unlabelled.
    mature_after: str | None = None
    # Binary: the name of the decision in responses (e.g. late); otherwise what is predicted, in
    # words (explanations: "raised the predicted glucose in 30 min by 12 mg/dL").
    name: str | None = Field(default=None, max_length=60)
    # Regression: the target's unit (mg/dL), shown in responses and explanations.
    unit: str = ""
    # What the label means, for the model card.
    description: str = ""

    @field_validator("classes", mode="before")
    @classmethod
    def _class_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_source(self) -> TargetConfig:
        if (self.column is None) == (self.function is None):
            raise ValueError("give either column: (a column of the request table) or function: (module:function)")
        if self.function is not None:
            if not _FUNCTION_REF.match(self.function):
                raise ValueError(f"{self.function!r} is not a function reference: write module:function")
            if not self.tables:
                raise ValueError("a label function needs tables: {table: [columns it reads]}")
            if self.threshold is not None:
                raise ValueError("threshold applies to a target column; a label function returns the label itself")
        elif self.tables or self.params:
            raise ValueError("tables: and params: belong to a label function (function:)")
        if self.mature_after is not None and not _DURATION.match(str(self.mature_after).strip()):
            raise ValueError(f"mature_after {self.mature_after!r} is not a duration: write e.g. 30m, 2h, 30d")
        if self.classes is not None and (len(self.classes) < 2 or len(set(self.classes)) != len(self.classes)):
            raise ValueError("classes must list at least two distinct values")
        return self

    def rule(self, task: str) -> str:
        """The labelling rule in words (training-set lineage, model card)."""
        if self.function is not None:
            return f"{self.function}({', '.join(self.tables)})"
        where = f"{self.table}.{self.column}" if self.table else str(self.column)
        if task == "binary":
            return f"{where} > {self.threshold:g}" if self.threshold is not None else f"{where} (true/1)"
        if task == "multiclass":
            return f"{where} in {', '.join(self.classes or [])}"
        return where


class ModelConfig(_Section):
    """What the model is: its registry name, its task and what it predicts."""

    # The registered model's name in MLflow (default: the project's name).
    name: str = ""
    # binary, multiclass or regression: objective, metrics, gate, responses and monitoring follow it.
    task: TaskName = "binary"
    # What the model predicts (required to train).
    target: TargetConfig | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # Model names end up in paths and URLs: the registry's rule (noria.names), checked at load.
        problem = model_name_problem(value) if value else None
        if problem:
            raise ValueError(f"model name {value!r} is not allowed: {problem}; {MODEL_NAME_FIX}")
        return value

    @model_validator(mode="after")
    def _target_fits_task(self) -> ModelConfig:
        target = self.target
        if target is None:
            return self
        if target.threshold is not None and self.task != "binary":
            raise ValueError(f"target.threshold applies to binary tasks only (task is {self.task}): remove it")
        if self.task == "multiclass" and not target.classes:
            raise ValueError("a multiclass task needs target.classes: [the class values, in order]")
        if self.task != "multiclass" and target.classes:
            raise ValueError(f"target.classes applies to multiclass tasks only (task is {self.task}): remove it")
        if self.task == "binary" and target.name and not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", target.name):
            raise ValueError(
                f"target.name {target.name!r} names the decision field of responses: use lower-case letters,"
                " digits and '_' (e.g. late)"
            )
        if target.unit and self.task != "regression":
            raise ValueError(f"target.unit applies to regression tasks (task is {self.task})")
        return self

    def require_target(self) -> TargetConfig:
        """The target, or a clear error naming the key to add."""
        if self.target is None:
            raise ConfigError(
                "noria.yaml has no model.target: nothing says what the model predicts",
                fix="add model: {task: binary|multiclass|regression, target: {column: ...} or {function: ...}}",
            )
        return self.target


class ReplayConfig(Period):
    """``noria replay``'s default windows (``{from: A, to: B}``) and request batch size."""

    # Requests per call to the service.
    batch: int = Field(default=250, ge=1, le=100_000)


class TrackingConfig(_Section):
    """MLflow: a local SQLite store by default, any tracking URI (an MLflow server) by config."""

    # The MLflow tracking URI: a SQLite file by default, or an MLflow server (http://...).
    uri: str = "sqlite:///.noria/mlflow.db"
    # Where a local tracking store keeps run artifacts (a server decides its own).
    artifact_location: str = ".noria/mlartifacts"


PriceName = Literal["cpu_hour", "gib_memory_hour", "gib_storage_month", "object_storage_gib_month"]


class CostPrices(_Section):
    """What a unit of each resource costs, in ``cost.currency`` (list prices of a typical cloud by default)."""

    # One CPU core requested for one hour (Kubernetes resources.requests.cpu).
    cpu_hour: float = Field(default=0.035, ge=0)
    # One GiB of memory requested for one hour (resources.requests.memory).
    gib_memory_hour: float = Field(default=0.0045, ge=0)
    # One GiB of persistent volume (PersistentVolumeClaim, StatefulSet volume claim) for a month.
    gib_storage_month: float = Field(default=0.1, ge=0)
    # One GiB kept in object storage (snapshots, artifacts, prediction logs) for a month.
    object_storage_gib_month: float = Field(default=0.02, ge=0)


class CostEnvironment(_Section):
    """One environment's differences from the ``cost`` section's top level."""

    # Prices that differ in this environment (cpu_hour, gib_memory_hour, gib_storage_month, object_storage_gib_month).
    prices: dict[PriceName, float] = Field(default_factory=dict)
    # The environment's kustomize folder, if it is not where cost.manifests says.
    manifests: str | None = None
    # GiB the environment keeps in object storage, if it differs from cost.object_storage_gib.
    object_storage_gib: float | None = Field(default=None, ge=0)


class CostConfig(_Section):
    """``noria cost``: the price table and where each environment's manifests are."""

    # ISO 4217 code the prices are in (EUR, USD, GBP, ...).
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    # The price table (per environment overrides under environments).
    prices: CostPrices = CostPrices()
    # Each environment's kustomize folder ({env} is the environment's name), looked up in the
    # project folder, then in its parents up to the repository's root.
    manifests: str = "deploy/k8s/overlays/{env}"
    # GiB kept in object storage (manifests do not say): snapshots, artifacts, prediction logs.
    object_storage_gib: float = Field(default=0, ge=0)
    # Typical minutes one run of a Job or CronJob takes, by workload name (else its activeDeadlineSeconds).
    job_minutes: dict[str, float] = Field(default_factory=dict)
    # Per environment overrides (prices, manifests, object_storage_gib), by environment name.
    environments: dict[str, CostEnvironment] = Field(default_factory=dict)


class NoriaConfig(_Section):
    """The whole of ``noria.yaml``."""

    # The project's name: lower-case letters, digits, '-' and '_'.
    project: str = Field(json_schema_extra={"pattern": f"^{PROJECT_NAME}$"})
    # One sentence on what the project predicts and for whom (OpenAPI, model card, demo).
    description: str = ""
    # The raw data and its schema.
    data: DataConfig
    # Where snapshots, their DVC remote and built artifacts live.
    storage: StorageConfig = StorageConfig()
    # The model's name, task and target.
    model: ModelConfig = ModelConfig()
    # The unit of training periods and monitoring windows.
    windows: WindowsConfig = WindowsConfig()
    # Periods, tuning, slices and baselines of the training pipeline.
    training: TrainingSettings = TrainingSettings()
    # MLflow: where runs and the registry live.
    tracking: TrackingConfig = TrackingConfig()
    # The promotion gate and its lock.
    registry: RegistryConfig = RegistryConfig()
    # Usually declared in features.yaml (or features/*.yaml) next to noria.yaml; see docs/features.md.
    features: FeaturesConfig = FeaturesConfig()
    # The HTTP service: request, responses, keys, A/B, prediction log, explanations, batch scoring.
    serving: ServingConfig = ServingConfig()
    # Drift, delayed-label feedback, the KPI and the retraining policy.
    monitoring: MonitoringConfig = MonitoringConfig()
    # Where pipeline steps keep artifacts, cache and run records.
    pipelines: PipelinesConfig = PipelinesConfig()
    # Airflow, Kubeflow Pipelines and Mage renderings of the pipelines.
    orchestrators: OrchestratorsConfig = OrchestratorsConfig()
    # The windows `noria replay` (and the demo's loop) replays by default.
    replay: ReplayConfig | None = None
    # `noria cost`: prices per environment and where the manifests are.
    cost: CostConfig = CostConfig()
    # Named overrides; merged over the top level before validation, kept for reference.
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not re.fullmatch(PROJECT_NAME, value):
            raise ValueError("project names are lower-case letters, digits, '-' and '_' (at most 63)")
        return value

    @model_validator(mode="after")
    def _model_name(self) -> NoriaConfig:
        if not self.model.name:
            self.model.name = self.project
        return self


# --- loading -------------------------------------------------------------------------------

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Project:
    """A loaded project: its folder, active profile and validated configuration."""

    root: Path
    config: NoriaConfig
    profile: str = DEFAULT_PROFILE
    sources: dict[Loc, str] = field(default_factory=dict, repr=False, compare=False)

    def path(self, relative: str) -> Path:
        """Resolve a configured path against the project folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def data_dir(self) -> Path:
        return self.path(self.config.storage.data_dir)


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding a noria.yaml."""
    env = os.environ.get("NORIA_PROJECT_DIR")
    here = Path(env) if env and start is None else (start or Path.cwd())
    here = here.resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise ProjectNotFoundError(
        f"no {CONFIG_FILE} in {here} or any folder above it",
        fix="run inside a Noria project, pass --project DIR, or create one with `noria init DIR`",
    )


def load_project(
    root: Path | str | None = None,
    profile: str | None = None,
    environ: dict[str, str] | None = None,
) -> Project:
    """Read, merge and validate a project's configuration."""
    env = dict(os.environ if environ is None else environ)
    folder = find_project_root(Path(root) if root is not None else None)
    file = folder / CONFIG_FILE
    data, sources = _read_yaml(file)
    chosen = profile or env.get("NORIA_PROFILE") or DEFAULT_PROFILE
    data, sources = _apply_profile(data, sources, chosen, file)
    data, sources = _apply_env(data, sources, env)
    try:
        config = NoriaConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise _config_error(exc, sources, file) from None
    _cross_check(config, sources, file.name)
    return Project(root=folder, config=config, profile=chosen, sources=sources)


def parse_config(text: str, name: str = CONFIG_FILE) -> NoriaConfig:
    """Validate configuration text (no profile, no environment); used by tests and tools."""
    data, sources = _load_yaml_text(text, name)
    try:
        config = NoriaConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise _config_error(exc, sources, Path(name)) from None
    _cross_check(config, sources, name)
    return config


def _cross_check(config: NoriaConfig, sources: dict[Loc, str], name: str) -> None:
    """Rules that span sections: period labels fit the window unit, settings fit the task."""
    problems: list[tuple[Loc, str]] = []
    unit = config.windows.unit
    training = config.training
    periods: list[tuple[tuple[str, ...], Any]] = [(("training", p), getattr(training, p)) for p in ("train", "test")]
    periods.append((("replay",), config.replay))
    for where_key, period in periods:
        for key, label in (("from", period.start if period else None), ("to", period.end if period else None)):
            problem = None if label is None else label_problem(unit, label)
            if problem:
                problems.append(((*where_key, key), f"{problem} (windows.unit is {unit})"))
    task = config.model.task
    allowed = TASK_BASELINES[task]
    for i, baseline in enumerate(training.baselines or []):
        if isinstance(baseline, str) and baseline not in allowed:
            problems.append(
                (("training", "baselines", i), f"{baseline} is not a {task} baseline (use {', '.join(allowed)})")
            )
    metrics = TUNE_METRICS[task]
    if training.tune_metric is not None and training.tune_metric not in metrics:
        problems.append(
            (("training", "tune_metric"), f"{training.tune_metric!r} is not a {task} metric (use {', '.join(metrics)})")
        )
    if not problems:
        return
    lines = []
    for loc, message in problems:
        where = next((sources[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in sources), name)
        lines.append(f"{where}: {_dotted(loc)}: {message}")
    head = lines[0] if len(lines) == 1 else f"{len(lines)} problems in {name}: " + "; ".join(lines)
    raise ConfigError(head, fix=f"edit {name} at the place named")


def _read_yaml(file: Path) -> tuple[dict[str, Any], dict[Loc, str]]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}", fix="check the file exists and is readable") from None
    return _load_yaml_text(text, file.name)


def _load_yaml_text(text: str, name: str) -> tuple[dict[str, Any], dict[Loc, str]]:
    """Parse YAML keeping, for every key path, the ``file:line`` it was written on."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}", fix="fix the syntax at that line") from None
    if node is None:
        raise ConfigError(f"{name} is empty", fix="start from `noria init DIR` or the flights example")
    sources: dict[Loc, str] = {}
    data = _construct(node, (), name, sources)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}:1: the top level must be a mapping of sections", fix="see examples/flights/noria.yaml"
        )
    return data, sources


def _construct(node: yaml.Node, loc: Loc, name: str, sources: dict[Loc, str]) -> Any:
    sources[loc] = f"{name}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(stream="").construct_object(key_node, deep=True)
            if key in out:
                raise ConfigError(
                    f"{name}:{key_node.start_mark.line + 1}: key {_dotted((*loc, key))!r} is given twice",
                    fix="keep one of the two entries",
                )
            out[key] = _construct(value_node, (*loc, key), name, sources)
            sources[(*loc, key)] = f"{name}:{key_node.start_mark.line + 1}"
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), name, sources) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(stream="").construct_object(node, deep=True)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_profile(
    data: dict[str, Any], sources: dict[Loc, str], profile: str, file: Path
) -> tuple[dict[str, Any], dict[Loc, str]]:
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{sources.get(('profiles',), file.name)}: 'profiles' must be a mapping of name -> overrides")
    if profile not in profiles:
        if profile == DEFAULT_PROFILE:
            return data, sources
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"profile {profile!r} is not defined in {file.name} (defined: {known})",
            fix=f"add it under 'profiles:' in {file.name} or choose another with --profile",
        )
    overrides = profiles[profile] or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{sources.get(('profiles', profile), file.name)}: profile {profile!r} must be a mapping")
    if "profiles" in overrides:
        raise ConfigError(
            f"{sources.get(('profiles', profile, 'profiles'), file.name)}: a profile cannot define profiles"
        )
    merged_sources = dict(sources)
    prefix = ("profiles", profile)
    for loc, where in sources.items():
        if loc[:2] == prefix and len(loc) > 2:
            merged_sources[loc[2:]] = where
    return _deep_merge(data, overrides), merged_sources


def _apply_env(
    data: dict[str, Any], sources: dict[Loc, str], environ: dict[str, str]
) -> tuple[dict[str, Any], dict[Loc, str]]:
    sections = set(NoriaConfig.model_fields) - {"profiles"}
    for var in sorted(environ):
        if not var.startswith("NORIA_") or var in RESERVED_ENV:
            continue
        path = tuple(part.lower() for part in var[len("NORIA_") :].split("__"))
        if not path[0] or path[0] not in sections or any(not p for p in path):
            raise ConfigError(
                f"environment variable {var} does not name a config key",
                fix=f"use NORIA_<SECTION>__<KEY> with a section among {', '.join(sorted(sections))}, or unset it",
            )
        try:
            value = yaml.safe_load(environ[var]) if environ[var] != "" else ""
        except yaml.YAMLError:
            value = environ[var]
        data = _deep_merge(data, _nest(path, value))
        sources[path] = f"environment variable {var}"
    return data, sources


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return dict(out)


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


def _config_error(exc: PydanticValidationError, sources: dict[Loc, str], file: Path) -> ConfigError:
    """Turn pydantic's report into one line per problem, each naming the key and its line."""
    lines = []
    for err in exc.errors():
        loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = next((sources[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in sources), file.name)
        key = _dotted(loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see examples/flights/noria.yaml for every section)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg}, got {err['input']!r}"
        lines.append(f"{where}: {key}: {msg}")
    head = lines[0] if len(lines) == 1 else f"{len(lines)} problems in {file.name}: " + "; ".join(lines)
    return ConfigError(head, fix=f"edit {file.name} (or the variable) at the place named")


__all__ = [
    "CONFIG_FILE",
    "ColumnSpec",
    "DataConfig",
    "ModelConfig",
    "NoriaConfig",
    "Project",
    "TableSpec",
    "TargetConfig",
    "find_project_root",
    "load_project",
    "parse_config",
]
