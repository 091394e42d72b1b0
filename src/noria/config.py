"""Project configuration: one pydantic model for ``noria.yaml``, and loading it.

:class:`NoriaConfig` composes the section models each package keeps in its own ``config.py``
(``data``/``storage``, ``model``/``training``, ``registry``/``tracking``, ``features``,
``serving``, ``monitoring``, ``pipelines``, ``orchestrators``); the sections without a package
(``replay``, ``cost``) are defined here. Every section class is importable from this module.

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

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from noria.config_yaml import Loc, apply_env, apply_profile, config_error, dotted, load_yaml_text, read_yaml
from noria.data.config import (
    CheckSpec,
    ColumnSpec,
    ColumnType,
    DataConfig,
    DateParts,
    PartitionSpec,
    QualitySpec,
    SourceConfig,
    StorageConfig,
    TableSpec,
)
from noria.errors import ConfigError, ProjectNotFoundError
from noria.features.config import FeaturesConfig
from noria.monitoring.config import MonitoringConfig
from noria.periods import Period
from noria.pipelines.config import PipelinesConfig
from noria.pipelines.orchestrators.config import OrchestratorsConfig
from noria.registry.config import RegistryConfig, TrackingConfig
from noria.serving.config import ServingConfig
from noria.training.config import (
    TASK_BASELINES,
    TUNE_METRICS,
    ModelConfig,
    TargetConfig,
    TaskName,
    TrainingSettings,
)
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
        "NORIA_SHARED_METRICS_DIR",  # the workers' shared metrics folder (noria.serving.metrics.SHARED_ENV)
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


# --- sections without a package of their own ---------------------------------------------


class ReplayConfig(Period):
    """``noria replay``'s default windows (``{from: A, to: B}``) and request batch size."""

    # Requests per call to the service.
    batch: int = Field(default=250, ge=1, le=100_000)


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
    data, sources = read_yaml(file)
    chosen = profile or env.get("NORIA_PROFILE") or DEFAULT_PROFILE
    data, sources = apply_profile(data, sources, chosen, file, DEFAULT_PROFILE)
    data, sources = apply_env(data, sources, env, set(NoriaConfig.model_fields) - {"profiles"}, RESERVED_ENV)
    try:
        config = NoriaConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise config_error(exc, sources, file) from None
    _cross_check(config, sources, file.name)
    return Project(root=folder, config=config, profile=chosen, sources=sources)


def parse_config(text: str, name: str = CONFIG_FILE) -> NoriaConfig:
    """Validate configuration text (no profile, no environment); used by tests and tools."""
    data, sources = load_yaml_text(text, name)
    try:
        config = NoriaConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise config_error(exc, sources, Path(name)) from None
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
        lines.append(f"{where}: {dotted(loc)}: {message}")
    head = lines[0] if len(lines) == 1 else f"{len(lines)} problems in {name}: " + "; ".join(lines)
    raise ConfigError(head, fix=f"edit {name} at the place named")


__all__ = [
    "CONFIG_FILE",
    "CheckSpec",
    "ColumnSpec",
    "ColumnType",
    "CostConfig",
    "CostEnvironment",
    "CostPrices",
    "DataConfig",
    "DateParts",
    "ModelConfig",
    "NoriaConfig",
    "PartitionSpec",
    "Project",
    "QualitySpec",
    "ReplayConfig",
    "SourceConfig",
    "StorageConfig",
    "TableSpec",
    "TargetConfig",
    "TaskName",
    "TrackingConfig",
    "TrainingSettings",
    "find_project_root",
    "load_project",
    "parse_config",
]
