"""The ``registry:`` section of noria.yaml: the promotion gate and the promotion lock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from noria.config import Project


class GateConfig(BaseModel):
    """When a new model version may replace the champion (all checks use the same holdout)."""

    model_config = ConfigDict(extra="forbid")

    primary_metric: str = "roc_auc"
    higher_is_better: bool = True
    # The candidate must beat the champion's primary metric by at least this much.
    min_delta: float = Field(default=0.002, ge=0.0)
    # No slice's primary metric may fall more than this below the champion's on that slice.
    max_slice_drop: float = Field(default=0.05, ge=0.0)
    # Every holdout prediction must be finite and inside this closed interval.
    prediction_min: float = 0.0
    prediction_max: float = 1.0
    # Changing fields the model must ignore may move a prediction by at most this much.
    invariance_tolerance: float = Field(default=1e-6, ge=0.0)
    # Columns of the training set the model must ignore (e.g. an id): the gate shuffles them on the
    # holdout and checks no prediction moves beyond invariance_tolerance.
    invariance_fields: list[str] = Field(default_factory=list)
    # Refuse a version whose evaluation lacks predictions / invariance results.
    require_behaviour_checks: bool = True

    @model_validator(mode="after")
    def _range_ordered(self) -> GateConfig:
        if self.prediction_min > self.prediction_max:
            raise ValueError(f"prediction_min ({self.prediction_min}) is above prediction_max ({self.prediction_max})")
        return self


class RegistryConfig(BaseModel):
    """Hangs at ``NoriaConfig.registry``; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    gate: GateConfig = GateConfig()
    # Promotions and rollbacks of one model take a file lock here. On a shared MLflow
    # server, point it at a folder every promoting machine sees (or promote from one place).
    lock_dir: str = ".noria/locks"
    lock_timeout_s: float = Field(default=60.0, gt=0.0)


def registry_config(project: Project) -> RegistryConfig:
    """The project's registry section, or the defaults while noria.yaml has none."""
    section: Any = getattr(project.config, "registry", None)
    if section is None:
        return RegistryConfig()
    if isinstance(section, RegistryConfig):
        return section
    return RegistryConfig.model_validate(section.model_dump() if isinstance(section, BaseModel) else section)
