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
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from noria.errors import ConfigError, ProjectNotFoundError
from noria.features.config import FeaturesConfig
from noria.monitoring.config import MonitoringConfig
from noria.periods import MonthRange, Period
from noria.pipelines._project import PipelinesConfig
from noria.pipelines.orchestrators._config import OrchestratorsConfig
from noria.registry.config import RegistryConfig
from noria.serving.config import ServingConfig
from noria.training.settings import TrainingSettings
from noria.windows import WindowsConfig, label_problem

CONFIG_FILE = "noria.yaml"
DEFAULT_PROFILE = "local"
# Variables Noria reads itself; everything else starting with NORIA_ is a config override.
RESERVED_ENV = frozenset({"NORIA_PROFILE", "NORIA_PROJECT_DIR", "NORIA_DEBUG", "NORIA_API_KEYS", "NORIA_LOG_LEVEL"})
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --- data --------------------------------------------------------------------------------

ColumnType = Literal["int", "float", "str", "bool", "timestamp"]


class ColumnSpec(_Section):
    """One column of a source table: its type and the rules a value must follow."""

    type: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    pattern: str | None = None
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
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {self.timezone!r} (use an IANA name such as Europe/Berlin)"
                ) from None
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

    year: str | None = None
    month: str | None = None
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


class TableSpec(_Section):
    """A source table: where it comes from, its key, its partitioning and its columns."""

    file: str
    primary_key: list[str] = Field(min_length=1)
    partition: PartitionSpec | None = None
    description: str = ""
    columns: dict[str, ColumnSpec] = Field(min_length=1)

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
        renamed = [c.source_column for c in self.columns.values() if c.source_column]
        if len(renamed) != len(set(renamed)):
            raise ValueError("two columns name the same source_column")
        return self

    def file_column(self, name: str) -> str:
        """The name column ``name`` has in the source file."""
        return self.columns[name].source_column or name


class SourceConfig(_Section):
    """Where raw tables are read from: a folder (``directory``) or a folder or archive inside an
    installed Python distribution (``package``). ``path`` may name a .zip/.tar/.tar.gz/.tgz
    archive; each table's ``file`` is then a member path inside it."""

    kind: Literal["package", "directory"]
    path: str
    package: str | None = None  # kind: package -> the distribution's name (importlib.metadata)
    install: str | None = None  # the command that installs the package, named when it is missing

    @model_validator(mode="after")
    def _package_named(self) -> SourceConfig:
        if self.kind == "package" and not self.package:
            raise ValueError("a 'package' source needs package: <distribution name> (and path inside it)")
        return self


class DataConfig(_Section):
    source: SourceConfig
    # The months a bare `noria data ingest` takes (without --from/--to); None: every month.
    default_range: MonthRange | None = None
    tables: dict[str, TableSpec] = Field(min_length=1)


# --- everything else -----------------------------------------------------------------------


class StorageConfig(_Section):
    """Paths are relative to the project folder unless absolute (or a URL for dvc_remote)."""

    data_dir: str = "data"
    dvc_remote: str = "data/dvc-remote"
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

    column: str | None = None
    table: str | None = None
    threshold: float | None = None
    classes: list[str] | None = None
    function: str | None = None
    tables: dict[str, list[str]] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    mature_after: str | None = None
    # Binary: the name of the decision in responses (e.g. late); otherwise what is predicted, in
    # words (explanations: "raised the predicted glucose in 30 min by 12 mg/dL").
    name: str | None = Field(default=None, max_length=60)
    # Regression: the target's unit (mg/dL), shown in responses and explanations.
    unit: str = ""
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
    # Default: the project's name.
    name: str = ""
    task: TaskName = "binary"
    target: TargetConfig | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # Model names end up in paths and URLs: refuse anything that could traverse.
        if value and (not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", value) or ".." in value):
            raise ValueError(
                f"model name {value!r} may only hold letters, digits, '.', '_' and '-' (no path separators or '..')"
            )
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

    batch: int = Field(default=250, ge=1, le=100_000)


class TrackingConfig(_Section):
    """MLflow: a local SQLite store by default, any tracking URI (an MLflow server) by config."""

    uri: str = "sqlite:///.noria/mlflow.db"
    artifact_location: str = ".noria/mlartifacts"


class NoriaConfig(_Section):
    """The whole of ``noria.yaml``."""

    project: str
    description: str = ""
    data: DataConfig
    storage: StorageConfig = StorageConfig()
    model: ModelConfig = ModelConfig()
    windows: WindowsConfig = WindowsConfig()
    training: TrainingSettings = TrainingSettings()
    tracking: TrackingConfig = TrackingConfig()
    registry: RegistryConfig = RegistryConfig()
    # Usually declared in features.yaml (or features/*.yaml) next to noria.yaml; see docs/features.md.
    features: FeaturesConfig = FeaturesConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    pipelines: PipelinesConfig = PipelinesConfig()
    orchestrators: OrchestratorsConfig = OrchestratorsConfig()
    # The windows `noria replay` (and the demo's loop) replays by default.
    replay: ReplayConfig | None = None
    # Named overrides; merged over the top level before validation, kept for reference.
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", value):
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
    from noria.training.settings import TASK_BASELINES, TUNE_METRICS

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
