"""The ``serving:`` section of noria.yaml: where the service listens, what it serves, and how.

Every field has a default and can be set from the environment like any other key
(``NORIA_SERVING__PORT=9000``, ``NORIA_SERVING__AB__CHALLENGER_FRACTION=0.1``), so one image
runs anywhere. API keys never live in the file in clear: raw keys come from the variable
named by ``api_keys_env`` (comma-separated, hashed at start-up), or the file holds their
``sha256:<hex>`` digests under ``api_key_hashes``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from noria.names import is_env_name

if TYPE_CHECKING:
    from noria.config import Project

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_FUNCTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ABDecisionConfig(_Section):
    """The decision rule of ``noria ab report``: when an A/B test ends, and which arm wins.

    The challenger wins when the confidence interval of its gain on the task's primary metric
    lies above zero and the gain is at least ``min_effect``; the champion stays when even the
    interval's best end is below ``min_effect``, or when ``max_days`` have passed without a win.
    """

    # Labelled requests each arm needs before the test can conclude.
    min_samples_per_arm: int = Field(default=1000, ge=1)
    # The smallest gain on the primary metric worth a promotion, in the metric's own units
    # (e.g. 0.005 of ROC AUC; for log loss and RMSE a decrease); 0 = any significant gain.
    min_effect: float = Field(default=0.0, ge=0.0)
    # Days after the challenger's first request with no conclusive win: the champion stays.
    max_days: float = Field(default=28.0, gt=0.0)
    # Confidence level of the interval of the difference (bootstrap percentiles).
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    # Bootstrap resamples of the requests of each arm.
    resamples: int = Field(default=1000, ge=100, le=100_000)
    # Seed of the bootstrap: the same log and labels give the same interval.
    seed: int = 0


class ABConfig(_Section):
    """Traffic split between @champion and @challenger, sticky per key."""

    # Share of keys (0-1) whose requests @challenger answers; 0 = no split.
    challenger_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    # A field of the request (e.g. a customer or store id) or "header:<Name>": the same key always
    # gets the same arm. Required when challenger_fraction > 0.
    sticky_key: str | None = None
    # Salt of the hash: a new experiment name reshuffles who gets which arm.
    experiment: str = Field(default="default", min_length=1, max_length=100)
    # Score every request with @challenger too, log it, never return it.
    shadow: bool = False
    # The registry alias of the challenger model.
    challenger_alias: str = "challenger"
    # How `noria ab report` decides between the arms (minimum sample, minimum effect, maximum days).
    decision: ABDecisionConfig = ABDecisionConfig()

    @field_validator("sticky_key")
    @classmethod
    def _known_key(cls, value: str | None) -> str | None:
        if value is None or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value):
            return value
        if value.startswith("header:") and re.fullmatch(r"[A-Za-z0-9-]{1,64}", value[7:]):
            return value
        raise ValueError(f"sticky_key {value!r} must be a request field name or 'header:<Header-Name>'")

    @model_validator(mode="after")
    def _key_when_split(self) -> ABConfig:
        if self.challenger_fraction > 0 and self.sticky_key is None:
            raise ValueError(
                "an A/B split needs sticky_key: a request field (e.g. a customer id) or header:<Name>,"
                " so each key keeps its arm"
            )
        return self

    @property
    def uses_challenger(self) -> bool:
        return self.challenger_fraction > 0 or self.shadow


class RequestConfig(_Section):
    """The request the service takes: generated from the request columns, or the project's own.

    Without ``model`` the request is generated from ``features.request`` (its ids and columns,
    with their declared types and rules). ``model`` (``module:Class``, a pydantic model in the
    project folder) and ``mapping`` (``module:function``: its fields as arrays -> request columns
    and ids as arrays) declare a public API of the project's own; ``inverse`` (request-table rows
    as a DataFrame -> a list of request bodies) lets Noria build requests from data (the OpenAPI
    example, ``noria replay``). ``example``: the OpenAPI example body (default: taken from data).
    """

    # A pydantic model of the project's own public API (module:Class); default: generated.
    model: str | None = None
    # Its fields (as arrays) -> the request columns and ids (module:function).
    mapping: str | None = None
    # Request-table rows (a DataFrame) -> request bodies (module:function), for examples and replays.
    inverse: str | None = None
    # A batch is {"<batch_key>": [request, ...]}.
    batch_key: str = Field(default="requests", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    # The OpenAPI document's example body (default: a row of the newest snapshot).
    example: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _model_with_mapping(self) -> RequestConfig:
        if (self.model is None) != (self.mapping is None):
            raise ValueError(
                "a project's own request model needs both model: module:Class and mapping: module:function"
            )
        if self.inverse is not None and self.model is None:
            raise ValueError("inverse: belongs to a project's own request model (model: and mapping:)")
        for ref in (self.model, self.mapping, self.inverse):
            if ref is not None and not _FUNCTION.match(ref):
                raise ValueError(f"{ref!r} is not a reference: write module:name")
        return self


class PredictionLogConfig(_Section):
    """The prediction log: Parquet files written off the request path, rolled by rows or age."""

    # Log every request and answer (monitoring reads the log: keep it on).
    enabled: bool = True
    # Where the Parquet files go (date=YYYY-MM-DD/ folders), relative to the project.
    dir: str = ".noria/predictions"
    # A file is written once this many rows wait ...
    roll_rows: int = Field(default=10_000, ge=1)
    # ... or once the oldest has waited this long (seconds).
    roll_seconds: float = Field(default=60.0, gt=0)
    # Rows waiting for the writer beyond this are dropped (and counted) rather than grow memory.
    max_queue_rows: int = Field(default=200_000, ge=100)
    # Object storage for the log (s3://bucket/prefix): each rolled file is shipped there and then
    # deleted locally, and monitoring reads the log from there. Endpoint and credentials come from the
    # environment (AWS_ENDPOINT_URL or MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    remote: str | None = None
    # Where monitoring keeps its local copy of the remote log's files, relative to the project.
    remote_cache: str = ".noria/cache/predictions"

    @field_validator("remote")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        bucket = value.strip().removeprefix("s3://").partition("/")[0]
        if not value.strip().startswith("s3://") or not bucket:
            raise ValueError(
                f"remote must be s3://BUCKET/PREFIX (e.g. s3://noria-data/predictions), got {value!r};"
                " leave it unset for a local log"
            )
        return value.strip().rstrip("/")


class FeatureText(_Section):
    """How one feature reads in an explanation: ``{label} {value}{unit}``."""

    # The words for the feature (default: from its description, else its name).
    label: str | None = None
    # The unit after its value (mi, °F, mg/dL).
    unit: str = ""
    # Decimals of its value.
    decimals: int = Field(default=1, ge=0, le=6)


class ExplanationConfig(_Section):
    """Reasons in words with every answer: the largest contributions, in the task's terms."""

    # Explain by default (a request may say ?explain=false).
    enabled: bool = True
    # How many contributions each answer lists.
    top: int = Field(default=3, ge=0, le=50)
    # "shap": LightGBM's native SHAP values (pred_contrib; exact, but costs milliseconds on a model of
    # a few hundred deep trees); "path": contributions along each tree's decision path from LightGBM's
    # own leaf assignment (same additivity, ~100x cheaper). See noria.serving.explain.
    method: Literal["shap", "path"] = "shap"
    # Per feature overrides of the wording; the default comes from the feature's description.
    features: dict[str, FeatureText] = Field(default_factory=dict)


class BatchConfig(_Section):
    """``noria predict``: the engine, chunk size and where delivery records go (read by continuity monitoring).

    ``engine: spark`` runs the scoring as a Spark job (``mapInPandas`` over the input's
    partitions, the same model and scoring code), with the Spark session of ``features.spark``;
    it needs pyspark and Java 17+, and an input that holds every model feature unless the
    online store is off (see docs/serving.md, Batch scoring on Spark).
    """

    # local: stream the file in chunks in this process; spark: a Spark job (needs pyspark).
    engine: Literal["local", "spark"] = "local"
    # Rows scored at a time (memory stays flat whatever the file's size); on Spark, rows per Arrow batch.
    chunk_size: int = Field(default=10_000, ge=1, le=1_000_000)
    # Where each run's delivery record goes.
    deliveries_dir: str = ".noria/deliveries"
    # A scheduled batch is overdue when no delivery succeeded for this long: its schedule plus slack
    # (93600 = 26 h for a daily run). 0: no schedule declared, no overdue-delivery alert.
    late_after_seconds: int = Field(default=0, ge=0, le=366 * 86_400)
    # A successful delivery is short when it has fewer rows than this share of the median of the
    # previous successful ones (0: no alert on short deliveries).
    short_ratio: float = Field(default=0.5, ge=0.0, le=1.0)


class FeatureCacheConfig(_Section):
    """A read-through cache of online feature reads, by feature view and entity key.

    ``until_changed`` (on by default): on a store that says when its data changed (SQLite), a
    read is reused until the store changes, so an answer from the cache is exactly what reading
    the store would give. With ``seconds: 5`` a key is read from any online store (Redis too) at
    most once per 5 s: a value materialized meanwhile is served up to 5 s later (a key absent
    from the store likewise). The rule "stamped at or before the prediction time and within the
    view's TTL" is applied at every request's own time. ``max_entries`` bounds the memory (the
    oldest read goes first).
    """

    # Reuse reads until the store changes, where the store says when (SQLite); exact, never stale.
    until_changed: bool = True
    # How long a read is reused, on any store (stale up to that long); 0 = no time-limited cache.
    seconds: float = Field(default=0.0, ge=0.0, le=86_400.0)
    # At most this many cached reads (the oldest goes first).
    max_entries: int = Field(default=100_000, ge=1, le=10_000_000)


class ServingConfig(_Section):
    """The HTTP service (``noria serve``), batch scoring (``noria predict``) and their records."""

    # The address to listen on (0.0.0.0 in a container).
    host: str = "127.0.0.1"
    # The port to listen on.
    port: int = Field(default=8000, ge=1, le=65535)
    # uvicorn worker processes.
    workers: int = Field(default=1, ge=1, le=64)
    # Registry reference of the served model: "<name>@<alias>"; the name defaults to model.name.
    model: str | None = None
    # The registry alias served.
    alias: str = "champion"
    # Binary: the decision is probability >= this.
    decision_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Most requests in one call.
    max_batch: int = Field(default=256, ge=1, le=100_000)
    # Larger bodies are refused (413) before they are read.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The request the service takes (generated from the request columns, or the project's own).
    request: RequestConfig = RequestConfig()
    # Online feature store: "auto" uses it when the project's feature store is applied,
    # "on" refuses to start without it, "off" serves inline features only.
    online_features: Literal["auto", "on", "off"] = "auto"
    # The feature service the model uses (needed when the project declares several).
    feature_service: str | None = None
    # A read-through cache of online reads.
    feature_cache: FeatureCacheConfig = FeatureCacheConfig()
    # How often to ask the registry where the aliases point (seconds); 0 = only on POST /reload.
    poll_seconds: float = Field(default=10.0, ge=0.0)
    # Whether /predict needs an API key (/reload always does).
    require_key_for_predict: bool = True
    # The environment variable holding the raw keys (comma-separated).
    api_keys_env: str = "NORIA_API_KEYS"
    # Or the keys' sha256:<hex> digests, safe to commit.
    api_key_hashes: list[str] = Field(default_factory=list)
    # A/B split and shadow scoring between @champion and @challenger.
    ab: ABConfig = ABConfig()
    # The prediction log monitoring reads.
    prediction_log: PredictionLogConfig = PredictionLogConfig()
    # Reasons in words with every answer.
    explanations: ExplanationConfig = ExplanationConfig()
    # noria predict.
    batch: BatchConfig = BatchConfig()

    @field_validator("api_key_hashes")
    @classmethod
    def _hashes(cls, values: list[str]) -> list[str]:
        for value in values:
            if not _HASH.fullmatch(value):
                raise ValueError(
                    "api_key_hashes holds 'sha256:<64 lower-case hex digits>' digests, not raw keys "
                    "(make one with: python -c \"from noria.serving import hash_key; print(hash_key('KEY'))\")"
                )
        return values

    @field_validator("api_keys_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not is_env_name(value):
            raise ValueError(f"api_keys_env must be an environment variable name (noria.names.ENV_NAME), got {value!r}")
        return value

    @model_validator(mode="after")
    def _aliases_differ(self) -> ServingConfig:
        if self.ab.uses_challenger and self.ab.challenger_alias == self.alias:
            raise ValueError(f"ab.challenger_alias and alias are both {self.alias!r}: they must name different models")
        return self


def serving_config(project: Project) -> ServingConfig:
    """The project's serving section (``project.config.serving``; the defaults where keys are absent)."""
    return project.config.serving


__all__ = [
    "ABConfig",
    "ABDecisionConfig",
    "BatchConfig",
    "ExplanationConfig",
    "FeatureCacheConfig",
    "FeatureText",
    "PredictionLogConfig",
    "RequestConfig",
    "ServingConfig",
    "serving_config",
]
