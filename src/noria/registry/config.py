"""The ``registry:`` and ``tracking:`` sections of noria.yaml: the promotion gate, the promotion lock,
and where MLflow keeps runs and the registry (pydantic models only: importing this loads no MLflow)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from noria.errors import ConfigError
from noria.tasks import BinaryTask, MulticlassTask, RegressionTask, Task, make_task

if TYPE_CHECKING:
    from noria.config import Project


class GateConfig(BaseModel):
    """When a new model version may replace the champion (all checks use the same holdout).

    Unset (None) fields take the project's task's values (:meth:`for_task`): the primary metric
    and its direction (binary ``roc_auc`` higher, multi-class ``log_loss`` lower, regression
    ``rmse`` lower) and the prediction range (probabilities in [0, 1] for binary and multi-class,
    any finite value for regression).
    """

    model_config = ConfigDict(extra="forbid")

    # The metric the candidate must beat the champion on (default: the task's).
    primary_metric: str | None = None
    # Its direction (default: known for the task's metrics).
    higher_is_better: bool | None = None
    # The candidate must beat the champion's primary metric by at least this much.
    min_delta: float = Field(default=0.002, ge=0.0)
    # No slice's primary metric may be worse than the champion's on that slice by more than this.
    max_slice_drop: float = Field(default=0.05, ge=0.0)
    # Every holdout prediction must be finite and inside [prediction_min, prediction_max] (None: no bound).
    prediction_min: float | None = None
    prediction_max: float | None = None
    # Changing fields the model must ignore may move a prediction by at most this much.
    invariance_tolerance: float = Field(default=1e-6, ge=0.0)
    # Columns of the training set the model must ignore (e.g. an id): the gate shuffles them on the
    # holdout and checks no prediction moves beyond invariance_tolerance.
    invariance_fields: list[str] = Field(default_factory=list)
    # Refuse a version whose evaluation lacks predictions / invariance results.
    require_behaviour_checks: bool = True

    @model_validator(mode="after")
    def _range_ordered(self) -> GateConfig:
        lo, hi = self.prediction_min, self.prediction_max
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"prediction_min ({lo}) is above prediction_max ({hi})")
        return self

    def for_task(self, task: Task | str | None = None) -> GateConfig:
        """This gate with every unset field filled in from ``task`` (default binary)."""
        resolved: Task = task if isinstance(task, Task) else BinaryTask() if task is None else make_task(task)
        metric = self.primary_metric or resolved.primary_metric
        higher = self.higher_is_better
        if higher is None:
            higher = resolved.higher_is_better if self.primary_metric is None else metric_direction(metric, resolved)
        if higher is None:
            raise ConfigError(
                f"registry.gate.primary_metric {metric!r}: whether higher is better is not known",
                fix="set registry.gate.higher_is_better (true or false)",
            )
        lo, hi = self.prediction_min, self.prediction_max
        if resolved.name != "regression":  # probabilities
            lo = 0.0 if lo is None else lo
            hi = 1.0 if hi is None else hi
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(
                f"registry.gate: prediction_min ({lo}) is above prediction_max ({hi}) for a {resolved.name} model",
                fix="set a prediction range that holds the model's outputs",
            )
        update = {"primary_metric": metric, "higher_is_better": higher, "prediction_min": lo, "prediction_max": hi}
        return self.model_copy(update=update)


def metric_direction(metric: str, task: Task | None = None) -> bool | None:
    """Whether a higher ``metric`` is better: the task's metrics first, then any task's; None if unknown."""
    tables = [task.metric_directions] if task is not None else []
    tables += [BinaryTask.metric_directions, MulticlassTask.metric_directions, RegressionTask.metric_directions]
    tables.append({"calibration_ece": False})  # the binary holdout's name for its calibration error
    for known in tables:
        if metric in known:
            return known[metric]
    return None


class RegistryConfig(BaseModel):
    """Hangs at ``NoriaConfig.registry``; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    gate: GateConfig = GateConfig()
    # Promotions and rollbacks of one model take a file lock here. On a shared MLflow
    # server, point it at a folder every promoting machine sees (or promote from one place).
    lock_dir: str = ".noria/locks"
    # How long a promotion waits for the lock (seconds).
    lock_timeout_s: float = Field(default=60.0, gt=0.0)


class TrackingConfig(BaseModel):
    """MLflow: a local SQLite store by default, any tracking URI (an MLflow server) by config."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # The MLflow tracking URI: a SQLite file by default, or an MLflow server (http://...).
    uri: str = "sqlite:///.noria/mlflow.db"
    # Where a local tracking store keeps run artifacts (a server decides its own).
    artifact_location: str = ".noria/mlartifacts"


def registry_config(project: Project) -> RegistryConfig:
    """The project's registry section (``project.config.registry``; the defaults where keys are absent)."""
    return project.config.registry
