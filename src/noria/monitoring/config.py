"""Settings for reference profiles and drift checks (the ``monitoring.drift`` section).

Every threshold has a default that works on monthly windows of a few thousand rows or more;
``noria.yaml`` overrides them under ``monitoring: drift:``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DriftConfig(BaseModel):
    """How profiles are built and how drift statistics become verdicts and alerts.

    PSI sets the level (``warn`` from ``psi_warn``, ``drift`` from ``psi_alert``); a level above
    ``ok`` also needs the feature's test (Kolmogorov-Smirnov for numeric features, chi-square for
    categorical ones) to reject "same distribution" at ``p_value``, so that noise in a small
    window does not raise a warning. A rise of the missing rate by ``missing_warn`` /
    ``missing_alert`` (absolute) is drift too. ``alert`` is raised only for drift on features
    whose share of the total feature importance is at least ``min_importance``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # verdicts
    psi_warn: float = Field(default=0.1, ge=0)
    psi_alert: float = Field(default=0.25, ge=0)
    p_value: float = Field(default=0.05, gt=0, le=1)
    missing_warn: float = Field(default=0.05, ge=0, le=1)
    missing_alert: float = Field(default=0.2, ge=0, le=1)
    min_importance: float = Field(default=0.05, ge=0, le=1)
    alert_on_score: bool = True
    # profiles
    bins: int = Field(default=10, ge=2, le=100)
    ecdf_points: int = Field(default=5000, ge=16, le=1_000_000)
    max_categories: int = Field(default=200, ge=1, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError(f"psi_warn ({self.psi_warn}) is greater than psi_alert ({self.psi_alert})")
        if self.missing_warn > self.missing_alert:
            raise ValueError(f"missing_warn ({self.missing_warn}) is greater than missing_alert ({self.missing_alert})")
        return self


__all__ = ["DriftConfig"]
