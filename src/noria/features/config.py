"""The ``features:`` section: entities, sources, feature views, request-time and derived features,
services and the online store, declared in configuration; transformation code lives in plain
Python functions the configuration names as ``module:function`` (module resolved relative to
the project folder).

The section comes from ``noria.yaml`` (``features:``), a ``features.yaml`` next to it, or a
``features/`` folder of YAML files next to it; :func:`noria.features.definitions.load_features_config`
merges them and refuses a name defined twice.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FeatureType = Literal["int", "float", "str", "bool"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Names Noria adds to entity rows and source tables itself.
RESERVED = frozenset({"event_timestamp", "label", "noria_day", "noria_row"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_duration(value: str | int | None) -> timedelta | None:
    """``"3h"``, ``"28d"``, ``"90m"``, ``"1w"``, seconds as an int; ``None``/``0``/``"forever"`` mean no limit."""
    if value is None or value == 0 or value in ("0", "forever", "none"):
        return None
    if isinstance(value, int):
        return timedelta(seconds=value)
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration: write e.g. 90m, 3h, 28d, 1w or 'forever'")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} name {value!r} must be lower-case letters, digits and '_' (starting with a letter)")
    if value in RESERVED:
        raise ValueError(f"{what} name {value!r} is reserved by Noria ({', '.join(sorted(RESERVED))})")
    return value


def _check_function(value: str) -> str:
    if not _FUNCTION.match(value):
        raise ValueError(f"{value!r} is not a function reference: write module:function, e.g. my_features:rolling_mean")
    return value


class FeatureSpec(_Section):
    """One feature: its type and what it means (shown by ``noria features list``)."""

    # int, float, str (a category) or bool.
    type: FeatureType = "float"
    # What the feature means, with its unit in parentheses: "Visibility (miles)." (explanations use it).
    description: str = ""


class EntitySpec(_Section):
    """A thing features are keyed by (an airport, a plane); ``join_key`` defaults to the entity name."""

    # The request column (or request-view feature) holding the key; default: the entity's name.
    join_key: str | None = None
    # The key's type.
    type: Literal["str", "int"] = "str"
    # What the entity is.
    description: str = ""

    def key(self, name: str) -> str:
        return self.join_key or name


class SourceSpec(_Section):
    """A feature table computed from snapshot tables by ``function(tables, **params) -> DataFrame``.

    ``tables`` names each snapshot table the function reads and the columns it reads from it:
    the function gets exactly those (so a missing column is caught before any code runs).
    """

    # module:function(tables, **params) -> DataFrame of entity keys, event_timestamp and features.
    function: str
    # The snapshot tables the function reads, each with the columns it reads.
    tables: dict[str, list[str]] = Field(min_length=1)
    # Keyword arguments for the function.
    params: dict[str, Any] = Field(default_factory=dict)
    # What the source computes.
    description: str = ""

    @field_validator("function")
    @classmethod
    def _fn(cls, value: str) -> str:
        return _check_function(value)


class FeatureViewSpec(_Section):
    """Features looked up by entity as of the prediction time (Feast FeatureView).

    The source function returns one row per entity key and ``event_timestamp`` (the time the
    values became known); a row is used for a prediction at time t only if
    ``t - ttl <= event_timestamp <= t``. ``bucket: day`` adds the UTC day to the join key (with
    a carried-in row per key and day) so an as-of join touches one day of rows per key instead
    of a whole year; results are identical.
    """

    # The source (under sources:) whose table holds the view's values.
    source: str
    # The entities the view is keyed by.
    entities: list[str] = Field(min_length=1)
    # How long a value stays usable after its event_timestamp (3h, 35d; none: forever).
    ttl: str | int | None = None
    # day: the as-of join touches one day of rows per key (for views with many rows per key).
    bucket: Literal["none", "day"] = "none"
    # Materialized into the online store for serving.
    online: bool = True
    # What the view holds.
    description: str = ""
    # The view's features (columns of the source's table).
    features: dict[str, FeatureSpec] = Field(min_length=1)

    @field_validator("ttl")
    @classmethod
    def _ttl_parses(cls, value: str | int | None) -> str | int | None:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _bucket_needs_ttl(self) -> FeatureViewSpec:
        if self.bucket == "day" and self.ttl_delta is None:
            raise ValueError("bucket: day needs a ttl (a row is carried into later days only while it is within it)")
        return self

    @property
    def ttl_delta(self) -> timedelta | None:
        return parse_duration(self.ttl)


class RequestViewSpec(_Section):
    """Features computed from the request row itself, by the same function offline and online.

    ``passthrough`` request columns are features as they are; ``function(columns, **params)``
    gets the ``inputs`` columns as numpy arrays and returns one array per declared feature.
    """

    # module:function(columns, **params) -> one array per declared feature.
    function: str | None = None
    # The request columns the function gets.
    inputs: list[str] = Field(default_factory=list)
    # Request columns that are features as they are.
    passthrough: list[str] = Field(default_factory=list)
    # Keyword arguments for the function.
    params: dict[str, Any] = Field(default_factory=dict)
    # What the view computes.
    description: str = ""
    # The features the function returns.
    features: dict[str, FeatureSpec] = Field(default_factory=dict)

    @field_validator("function")
    @classmethod
    def _fn(cls, value: str | None) -> str | None:
        return None if value is None else _check_function(value)

    @model_validator(mode="after")
    def _function_if_features(self) -> RequestViewSpec:
        if self.features and self.function is None:
            raise ValueError("computed features need a 'function' (module:function)")
        if self.function is not None and not self.features:
            raise ValueError("a 'function' must declare the features it returns under 'features'")
        if not self.features and not self.passthrough:
            raise ValueError("declare 'features' (with a function) or 'passthrough' columns")
        return self


class DerivedSpec(_Section):
    """A feature computed from other features (and request columns) after the lookups:
    ``function(columns, **params) -> array``. Derived features may use each other; Noria orders
    them and refuses a cycle."""

    # module:function(columns, **params) -> one array.
    function: str
    # The features and request columns it is computed from.
    inputs: list[str] = Field(min_length=1)
    # Keyword arguments for the function.
    params: dict[str, Any] = Field(default_factory=dict)
    # The feature's type.
    type: FeatureType = "float"
    # What the feature means (with its unit in parentheses).
    description: str = ""

    @field_validator("function")
    @classmethod
    def _fn(cls, value: str) -> str:
        return _check_function(value)


class RequestSpec(_Section):
    """What a prediction request carries, and the table the training entity rows come from.

    ``timestamp`` computes the prediction time (UTC) from the request columns; no feature value
    stamped after it may reach the row. ``ids`` are extra columns copied to training sets
    (default: the table's primary key).
    """

    # The table whose rows are the training entity rows (one row = one event to predict).
    table: str
    # Its columns known at prediction time (the request carries them).
    columns: list[str] = Field(min_length=1)
    # module:function(columns) -> the prediction time (UTC): the event time.
    timestamp: str
    # The event key labels join on (default: the table's primary key).
    ids: list[str] | None = None

    @field_validator("timestamp")
    @classmethod
    def _fn(cls, value: str) -> str:
        return _check_function(value)


class ServiceSpec(_Section):
    """The features a model uses: views (all their features) and derived features, by name."""

    # Views and derived features, by name.
    features: list[str] = Field(min_length=1)
    # What the service is for.
    description: str = ""


class OnlineStoreSpec(_Section):
    """SQLite file by default; Redis by ``type: redis`` + ``connection_string: host:port``."""

    # sqlite (a file, one machine) or redis.
    type: Literal["sqlite", "redis"] = "sqlite"
    # The SQLite file.
    path: str = ".noria/feast/online.db"
    # Redis: host:port (and options, as Feast takes them).
    connection_string: str | None = None

    @model_validator(mode="after")
    def _redis_needs_address(self) -> OnlineStoreSpec:
        if self.type == "redis" and not self.connection_string:
            raise ValueError("a redis online store needs connection_string, e.g. localhost:6379")
        return self


OfflineEngine = Literal["duckdb", "spark"]
# How training sets are computed, not what they hold: not part of the definition hash, and taken
# from noria.yaml (so a profile or NORIA_FEATURES__OFFLINE_ENGINE can switch the engine).
ENGINE_FIELDS = ("offline_engine", "spark", "duckdb", "build_chunk_rows")
# Where online values are kept is a deployment choice (SQLite on a laptop, Redis in a cluster): a
# profile or NORIA_FEATURES__ONLINE_STORE__* in noria.yaml overrides features.yaml key by key,
# and it is not part of the definition hash either.
DEPLOYMENT_FIELDS = ("online_store",)


class SparkSpec(_Section):
    """The Spark session the ``spark`` offline engine uses (when no session is active already).

    ``master``: ``local[2]`` runs Spark in-process; a cluster URL (``spark://host:7077``,
    ``k8s://https://...``, ``yarn``) runs it on a cluster, where ``features.repo_dir`` must be on
    storage every executor can read. ``null`` leaves it to ``spark-submit``. ``conf`` adds any
    other Spark setting (``spark.executor.memory``, ...).
    """

    # local[N] in-process, a cluster URL, or null (spark-submit decides).
    master: str | None = "local[2]"
    # The Spark application's name.
    app_name: str = "noria-training-set"
    # The driver's memory (512m, 4g).
    driver_memory: str = "1g"
    # spark.sql.shuffle.partitions.
    shuffle_partitions: int = Field(default=4, ge=1)
    # Any other Spark setting.
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("driver_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not re.match(r"^\d+[kmgt]?$", value.strip().lower()):
            raise ValueError(f"{value!r} is not a JVM memory size: write e.g. 512m, 1g, 4g")
        return value.strip().lower()


class DuckDBSpec(_Section):
    """How the ``duckdb`` offline engine runs a training set's join: within ``memory_limit``, spilling
    what does not fit to ``temp_directory``, so a build's memory does not grow with its rows."""

    # DuckDB's memory limit for the join (512MB, 2GB, 8GB); joins and sorts beyond it spill to disk.
    memory_limit: str = "2GB"
    # Where DuckDB spills (relative to the project); null: a temporary folder of the build, removed after it.
    temp_directory: str | None = None
    # Threads DuckDB joins with; null: one per core.
    threads: int | None = Field(default=None, ge=1)

    @field_validator("memory_limit")
    @classmethod
    def _limit(cls, value: str) -> str:
        if not re.match(r"^\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)$", value.strip().lower()):
            raise ValueError(f"{value!r} is not a DuckDB memory size: write e.g. 512MB, 2GB, 8GB")
        return value.strip().replace(" ", "").upper().replace("IB", "iB")


class FeaturesConfig(_Section):
    """The whole ``features:`` section (empty when a project declares no features)."""

    # Where Noria generates the Feast repository (never edit it by hand).
    repo_dir: str = ".noria/feast"
    # How training sets are joined: duckdb (one machine) or spark.
    offline_engine: OfflineEngine = "duckdb"
    # The Spark session of the spark engine.
    spark: SparkSpec = SparkSpec()
    # The duckdb engine's memory limit and spill folder.
    duckdb: DuckDBSpec = DuckDBSpec()
    # Entity rows a training-set build holds at once outside the join engine (memory grows with it, not the data).
    build_chunk_rows: int = Field(default=250_000, ge=1)
    # What a prediction request is, and where training rows come from.
    request: RequestSpec | None = None
    # Things features are keyed by.
    entities: dict[str, EntitySpec] = Field(default_factory=dict)
    # Feature tables computed from snapshot tables.
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    # Features looked up by entity as of the prediction time.
    feature_views: dict[str, FeatureViewSpec] = Field(default_factory=dict)
    # Features computed from the request itself.
    request_views: dict[str, RequestViewSpec] = Field(default_factory=dict)
    # Features computed from other features.
    derived: dict[str, DerivedSpec] = Field(default_factory=dict)
    # The feature sets models use.
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    # Where online values live.
    online_store: OnlineStoreSpec = OnlineStoreSpec()

    @model_validator(mode="after")
    def _names(self) -> FeaturesConfig:
        for what, names in (
            ("entity", self.entities),
            ("source", self.sources),
            ("feature view", self.feature_views),
            ("request view", self.request_views),
            ("derived feature", self.derived),
            ("service", self.services),
        ):
            for name in names:
                _check_name(name, what)
        for features in [v.features for v in self.feature_views.values()] + [
            v.features for v in self.request_views.values()
        ]:
            for feature in features:
                _check_name(feature, "feature")
        return self

    @property
    def declared(self) -> bool:
        return self.request is not None or bool(self.feature_views or self.request_views)


__all__ = [
    "DerivedSpec",
    "EntitySpec",
    "FeatureSpec",
    "FeatureType",
    "FeatureViewSpec",
    "FeaturesConfig",
    "OfflineEngine",
    "OnlineStoreSpec",
    "RequestSpec",
    "RequestViewSpec",
    "ServiceSpec",
    "SourceSpec",
    "SparkSpec",
    "parse_duration",
]
